package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/posgate/posgate/hsm"
)

func TestSoftKCVKnownAnswers(t *testing.T) {
	// Expected values from OpenSSL (`openssl mac -cipher AES-128-CBC
	// -macopt hexkey:... CMAC` over 16 zero bytes; `openssl enc
	// -des-ede-ecb`; `openssl mac -digest SHA256 HMAC`), independent of
	// this package and of package hsm.
	tests := []struct {
		name string
		kind hsm.KeyKind
		key  string
		want string
	}{
		{"aes128_vector_bdk", hsm.KindAES, "FEDCBA9876543210F1F1F1F1F1F1F1F1", "FF0BD7"},
		{"aes128_component", hsm.KindAES, "FEDCBA9876543210F1F1F1F1F1F1F1F0", "716068"},
		{"aes128_one", hsm.KindAES, "00000000000000000000000000000001", "83FF66"},
		{"tdes_vector_bdk", hsm.KindTDES, "0123456789ABCDEFFEDCBA9876543210", "08D7B4"},
		{"hmac_zero_key", hsm.KindHMAC, strings.Repeat("00", 32), "853C74"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, _ := hex.DecodeString(tc.key)
			got, err := softKCV(tc.kind, k)
			if err != nil || got != tc.want {
				t.Fatalf("softKCV = %q, %v; want %s", got, err, tc.want)
			}
		})
	}
	if _, err := softKCV(hsm.KindECDSA, make([]byte, 32)); !errors.Is(err, hsm.ErrKeyType) {
		t.Fatalf("ECDSA KCV: %v, want ErrKeyType", err)
	}
	if _, err := softKCV(hsm.KindAES, make([]byte, 15)); !errors.Is(err, hsm.ErrKeyLength) {
		t.Fatalf("15-byte AES KCV: %v, want ErrKeyLength", err)
	}
}

func TestParseHex(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		out     string
		wantErr string
	}{
		{"plain", "00ff", nil, "00ff", ""},
		{"grouped_upper", "00FF 10AB\n", []int{4}, "00ff10ab", ""},
		{"second_length", "0011", []int{3, 2}, "0011", ""},
		{"odd", "abc", nil, "", "3 hex digits, want an even number"},
		{"wrong_length", "0011", []int{3}, "", "4 hex digits, want 6"},
		{"not_hex", "zz", nil, "", "not hexadecimal"},
		{"empty", "  ", nil, "", "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parseHex("x", tc.in, tc.want...)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errInput) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || hex.EncodeToString(b) != tc.out {
				t.Fatalf("= %x, %v; want %s", b, err, tc.out)
			}
		})
	}
}

// FuzzParseHex: whatever parses re-encodes (upper case, grouped) to the
// same bytes, and an error never quotes its input.
func FuzzParseHex(f *testing.F) {
	for _, s := range []string{"", "00", "0A0b", "FEDC BA98 7654", "zz", "abc", "00\n11\t22"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseHex("component", s)
		if err != nil {
			if len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Fatalf("error quotes its input")
			}
			return
		}
		h := strings.ToUpper(hex.EncodeToString(b))
		var grouped []string
		for i := 0; i < len(h); i += 4 {
			grouped = append(grouped, h[i:min(i+4, len(h))])
		}
		again, err := parseHex("component", strings.Join(grouped, " "), len(b))
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x -> %x, %v", b, again, err)
		}
	})
}

// FuzzParseFingerprintComponents: a parsed file marshals back to JSON that
// parses to the same value, and errors never carry component text.
func FuzzParseFingerprintComponents(f *testing.F) {
	f.Add([]byte(`{"label":"fingerprint","components":["` + strings.Repeat("ab", 32) + `","` + strings.Repeat("cd", 32) + `"],"kcvs":null,"kcv":"853C74"}`))
	f.Add([]byte(`{"label":"x","components":[],"kcvs":["0102"],"kcv":""}`))
	f.Add([]byte(`{"components":["00"]} {}`))
	f.Add([]byte(`{"key":"00"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fp, err := parseFingerprintComponents(raw)
		if err != nil {
			if !errors.Is(err, errInput) {
				t.Fatalf("error %v does not match errInput", err)
			}
			return
		}
		b, err := json.Marshal(fp)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := parseFingerprintComponents(b)
		if err != nil || !reflect.DeepEqual(norm(again), norm(fp)) {
			t.Fatalf("round trip: %v", err)
		}
		// assemble must not panic on anything parse accepts.
		if key, _, _, err := fp.assemble(); err == nil && len(key) != 32 {
			t.Fatalf("assembled a %d-byte key", len(key))
		}
	})
}

// norm makes empty and nil slices compare equal.
func norm(fp fingerprintComponents) fingerprintComponents {
	if len(fp.Components) == 0 {
		fp.Components = nil
	}
	if len(fp.KCVs) == 0 {
		fp.KCVs = nil
	}
	return fp
}

func BenchmarkSoftKCV(b *testing.B) {
	for _, bc := range []struct {
		name string
		kind hsm.KeyKind
		n    int
	}{{"aes128", hsm.KindAES, 16}, {"tdes", hsm.KindTDES, 16}, {"hmac256", hsm.KindHMAC, 32}} {
		b.Run(bc.name, func(b *testing.B) {
			k := bytes.Repeat([]byte{0x42}, bc.n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := softKCV(bc.kind, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
