package de55_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

var update = flag.Bool("update", false, "rewrite golden files")

const goldenHex = "../../testdata/emv/de55_request.hex"
const goldenDesc = "../../testdata/emv/de55_request.golden"

// readHexFile reads hex with # comments and whitespace.
func readHexFile(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(s), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("hex in %s: %v", path, err)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func TestGoldenRequest(t *testing.T) {
	raw := readHexFile(t, goldenHex)
	req, err := de55.ParseRequest(raw)
	if err != nil {
		t.Fatalf("parse golden DE 55: %v", err)
	}
	if req.Cryptogram() != [8]byte(unhex(t, "C2C12B1AD1A3A5BC")) || req.ATC() != 1 || req.CID().Type().String() != "ARQC" || req.PSN() != 0x01 {
		t.Fatalf("fields: cryptogram %X ATC %d CID %v PSN %02X", req.Cryptogram(), req.ATC(), req.CID().Flags(), req.PSN())
	}
	if got, want := req.ACData(), unhex(t, "000000001200 000000000000 0392 0000048000 0392 260121 00 BBA4CD5B 3900 0001"); !bytes.Equal(got, want) {
		t.Fatalf("ACData = %X, want %X", got, want)
	}
	rebuilt, err := de55.Build(req.Values())
	if err != nil {
		t.Fatalf("build from parsed values: %v", err)
	}
	if !bytes.Equal(rebuilt, raw) {
		t.Fatalf("Build(ParseRequest(golden)) differs from golden:\n%X\n%X", rebuilt, raw)
	}
	var sb strings.Builder
	if err := tags.Describe(&sb, req.TLVs()); err != nil {
		t.Fatalf("describe: %v", err)
	}
	fmt.Fprintf(&sb, "TVR: %q\nAIP: %q\nCID: %q\n", req.TVR().Flags(), req.AIP().Flags(), req.CID().Flags())
	if *update {
		if err := os.WriteFile(goldenDesc, []byte(sb.String()), 0o644); err != nil {
			t.Fatalf("update golden: %v", err)
		}
	}
	want, err := os.ReadFile(goldenDesc)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if sb.String() != string(want) {
		t.Fatalf("description differs from %s:\n%s", goldenDesc, sb.String())
	}
}

func typicalValues(t testing.TB) dol.Values {
	raw := readHexFile(t, goldenHex)
	req, err := de55.ParseRequest(raw)
	if err != nil {
		t.Fatalf("parse golden DE 55: %v", err)
	}
	return req.Values()
}

// TestBuildErrors covers every refusal of Build but ErrTooLong: with
// RequestTags at their dictionary maximum lengths a request stays under 255
// bytes (the check guards future additions to RequestTags).
func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(v dol.Values)
		want error
	}{
		{"missing_cryptogram", func(v dol.Values) { delete(v, tags.ApplicationCryptogram) }, de55.ErrMissing},
		{"missing_atc", func(v dol.Values) { delete(v, tags.ATC) }, de55.ErrMissing},
		{"pan_refused", func(v dol.Values) { v[tags.PAN] = unhex(t, "4761739001010010") }, de55.ErrForbidden},
		{"track2_refused", func(v dol.Values) { v[tags.Track2Equivalent] = unhex(t, "4761739001010010D25120") }, de55.ErrForbidden},
		{"unknown_refused", func(v dol.Values) { v[0xDF01] = []byte{1} }, de55.ErrForbidden},
		{"bad_length", func(v dol.Values) { v[tags.ATC] = []byte{1} }, tags.ErrLength},
		{"bad_format", func(v dol.Values) { v[tags.TransactionDate] = unhex(t, "26012A") }, tags.ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := typicalValues(t)
			tc.edit(v)
			_, err := de55.Build(v)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Build = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "476173") {
				t.Fatal("error carries PAN digits")
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	raw := readHexFile(t, goldenHex)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"truncated", raw[:len(raw)-1], tlv.ErrTruncated},
		{"with_pan", append(bytes.Clone(raw), unhex(t, "5A084761739001010010")...), de55.ErrForbidden},
		{"with_template", append(bytes.Clone(raw), unhex(t, "7100")...), de55.ErrForbidden},
		{"missing_required", raw[11:], de55.ErrMissing},
		{"duplicate", append(bytes.Clone(raw), unhex(t, "9F36020002")...), tlv.ErrDuplicateTag},
		{"too_long", make([]byte, 256), de55.ErrTooLong},
		{"bad_value", bytes.Replace(bytes.Clone(raw), unhex(t, "9A03260121"), unhex(t, "9A032601FF"), 1), tags.ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := de55.ParseRequest(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("ParseRequest = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestResponse(t *testing.T) {
	script := tlv.Template(tags.IssuerScript2, tlv.New(0x9F18, unhex(t, "00000001")), tlv.New(tags.IssuerScriptCommand, unhex(t, "8424000008 1122334455667788")))
	tests := []struct {
		name string
		r    de55.Response
		want string
	}{
		{"arpc_method1", de55.Response{IssuerAuthData: de55.IssuerAuthDataMethod1([8]byte(unhex(t, "78A372523FA35A03")), [2]byte{'0', '0'})}, "910A78A372523FA35A033030"},
		{"arpc_method2_with_arc", de55.Response{IssuerAuthData: de55.IssuerAuthDataMethod2([4]byte(unhex(t, "4962B76C")), [4]byte{}, unhex(t, "1234567890ABCDEF")), ARC: []byte("00")}, "91104962B76C000000001234567890ABCDEF8A023030"},
		{"scripts", de55.Response{IssuerAuthData: make([]byte, 10), Scripts: []tlv.TLV{script, script}}, "910A00000000000000000000" + strings.Repeat("72169F180400000001860D84240000081122334455667788", 2)},
		{"empty", de55.Response{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := de55.BuildResponse(tc.r)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if got := fmt.Sprintf("%X", b); got != tc.want {
				t.Fatalf("BuildResponse = %s, want %s", got, tc.want)
			}
			r, err := de55.ParseResponse(b)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !bytes.Equal(r.IssuerAuthData, tc.r.IssuerAuthData) || !bytes.Equal(r.ARC, tc.r.ARC) || len(r.Scripts) != len(tc.r.Scripts) {
				t.Fatalf("ParseResponse = %+v", r)
			}
		})
	}
	for name, in := range map[string]string{
		"short_91":     "910700000000000000",
		"other_tag":    "9F3602001",
		"duplicate_91": "910800000000000000009108000000000000000000",
		"truncated":    "910A0000",
	} {
		t.Run("reject_"+name, func(t *testing.T) {
			if len(in)%2 == 1 {
				in += "0"
			}
			if _, err := de55.ParseResponse(unhex(t, in)); err == nil {
				t.Fatal("ParseResponse accepted it")
			}
		})
	}
	if _, err := de55.BuildResponse(de55.Response{Scripts: []tlv.TLV{tlv.New(0x86, nil)}}); !errors.Is(err, de55.ErrForbidden) {
		t.Fatalf("build with a non-template script: %v", err)
	}
}

// FuzzParseRequest checks that an accepted request rebuilds (in Build's
// order) into bytes that parse to the same values.
func FuzzParseRequest(f *testing.F) {
	f.Add(readHexFile(f, goldenHex))
	f.Add(unhex(f, "9F2608C2C12B1AD1A3A5BC9F270180"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := de55.ParseRequest(b)
		if err != nil {
			return
		}
		out, err := de55.Build(req.Values())
		if err != nil {
			t.Fatalf("build from accepted request: %v", err)
		}
		again, err := de55.ParseRequest(out)
		if err != nil {
			t.Fatalf("parse of rebuilt request: %v", err)
		}
		if !reflect.DeepEqual(again.Values(), req.Values()) {
			t.Fatal("values changed in the round trip")
		}
		if len(out) != len(b) {
			t.Fatalf("rebuilt %d bytes from %d", len(out), len(b))
		}
	})
}

// FuzzParseResponse checks that an accepted response rebuilds into bytes
// that parse to the same response.
func FuzzParseResponse(f *testing.F) {
	f.Add(unhex(f, "910A78A372523FA35A033030"))
	f.Add(unhex(f, "91104962B76C000000001234567890ABCDEF8A023030"))
	f.Add(unhex(f, "72169F180400000001860D84240000081122334455667788"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := de55.ParseResponse(b)
		if err != nil {
			return
		}
		out, err := de55.BuildResponse(r)
		if err != nil {
			t.Fatalf("build from accepted response: %v", err)
		}
		again, err := de55.ParseResponse(out)
		if err != nil {
			t.Fatalf("parse of rebuilt response: %v", err)
		}
		if !reflect.DeepEqual(again, r) || len(out) != len(b) {
			t.Fatal("response changed in the round trip")
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	raw := readHexFile(b, goldenHex)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := de55.ParseRequest(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTLV(b *testing.B) {
	raw := readHexFile(b, goldenHex)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tlv.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
