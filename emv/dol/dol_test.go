package dol_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv/dol"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// cdol1 is a common Visa/Mastercard CDOL1.
const cdol1 = "9F02 06 9F03 06 9F1A 02 95 05 5F2A 02 9A 03 9C 01 9F37 04"

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want dol.DOL
		err  error
	}{
		{"empty", "", nil, nil},
		{"cdol1", cdol1, dol.DOL{{0x9F02, 6}, {0x9F03, 6}, {0x9F1A, 2}, {0x95, 5}, {0x5F2A, 2}, {0x9A, 3}, {0x9C, 1}, {0x9F37, 4}}, nil},
		{"long_length", "9F4E 81 80", dol.DOL{{0x9F4E, 128}}, nil},
		{"truncated_tag", "9F", nil, dol.ErrMalformed},
		{"missing_length", "9F02", nil, dol.ErrMalformed},
		{"non_minimal_length", "9F02 81 06", nil, dol.ErrMalformed},
		{"bad_tag", "00 06", nil, dol.ErrMalformed},
		{"duplicate", "9F02 06 9F02 06", nil, dol.ErrDuplicateTag},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			got, err := dol.Parse(in)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("Parse error = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse = %v, want %v", got, tc.want)
			}
			if !bytes.Equal(got.Encode(), in) {
				t.Fatalf("Encode = %X, want %X", got.Encode(), in)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name  string
		dol   string
		value dol.Values
		want  string
	}{
		{"exact", cdol1, dol.Values{0x9F02: unhex(t, "000000001200"), 0x9F03: unhex(t, "000000000000"), 0x9F1A: unhex(t, "0392"), 0x95: unhex(t, "0000048000"), 0x5F2A: unhex(t, "0392"), 0x9A: unhex(t, "260121"), 0x9C: {0x00}, 0x9F37: unhex(t, "BBA4CD5B")},
			"000000001200 000000000000 0392 0000048000 0392 260121 00 BBA4CD5B"},
		{"missing_values_are_zero", "9F02 06 9F37 04", dol.Values{}, "000000000000 00000000"},
		{"numeric_left_padded", "9F02 06", dol.Values{0x9F02: unhex(t, "1200")}, "000000001200"},
		{"numeric_truncated_left", "9F02 04", dol.Values{0x9F02: unhex(t, "000000001200")}, "00001200"},
		{"cn_right_padded_ff", "5A 0A", dol.Values{0x5A: unhex(t, "4761739001010010")}, "4761739001010010FFFF"},
		{"binary_right_padded", "9F37 06", dol.Values{0x9F37: unhex(t, "BBA4CD5B")}, "BBA4CD5B0000"},
		{"binary_truncated_right", "9F37 02", dol.Values{0x9F37: unhex(t, "BBA4CD5B")}, "BBA4"},
		{"an_right_padded", "9F1E 0A", dol.Values{0x9F1E: []byte("12345678")}, "3132333435363738 0000"},
		{"unknown_as_binary", "DF01 03", dol.Values{0xDF01: {1}}, "010000"},
		{"constructed_zero", "77 02", dol.Values{0x77: {1, 2}}, "0000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := dol.Parse(unhex(t, tc.dol))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got, err := d.Build(tc.value)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("Build = %X, want %X", got, want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	d, err := dol.Parse(unhex(t, cdol1))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	data := unhex(t, "000000001200 000000000000 0392 0000048000 0392 260121 00 BBA4CD5B")
	got, err := d.Split(data)
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	if len(got) != 8 || got[7].Tag != 0x9F37 || !bytes.Equal(got[7].Value, unhex(t, "BBA4CD5B")) {
		t.Fatalf("split = %v", got)
	}
	if v, ok := d.Lookup(data, 0x95); !ok || !bytes.Equal(v, unhex(t, "0000048000")) {
		t.Fatalf("Lookup(95) = %X, %v", v, ok)
	}
	if _, ok := d.Lookup(data, 0x9F26); ok {
		t.Fatal("Lookup found a tag the DOL lacks")
	}
	for _, n := range []int{len(data) - 1, len(data) + 1} {
		if _, err := d.Split(make([]byte, n)); !errors.Is(err, dol.ErrDataLength) {
			t.Fatalf("split of %d bytes: %v, want ErrDataLength", n, err)
		}
	}
}

// FuzzParse checks that every DOL Parse accepts encodes back to the same
// bytes, and that data built for it splits into entries of the asked
// lengths whose concatenation is the data.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", cdol1, "9F4E8180", "9F66049F02069F03069F1A0295055F2A029A039C019F3704", "8A029F02069F03069F1A0295055F2A029A039C019F37049F4C08"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := dol.Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(d.Encode(), b) {
			t.Fatalf("Encode(Parse(x)) != x")
		}
		if d.DataLen() > 1<<16 {
			return
		}
		vals := dol.Values{}
		for i, e := range d {
			vals[e.Tag] = bytes.Repeat([]byte{byte(i + 1)}, e.Len)
		}
		data, err := d.Build(vals)
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		parts, err := d.Split(data)
		if err != nil {
			t.Fatalf("split: %v", err)
		}
		var cat []byte
		for i, p := range parts {
			if p.Tag != d[i].Tag || len(p.Value) != d[i].Len {
				t.Fatalf("part %d is %v, want %s of %d", i, p, d[i].Tag, d[i].Len)
			}
			if !p.Tag.Constructed() && !bytes.Equal(p.Value, vals[p.Tag]) {
				t.Fatalf("part %d value changed by an exact-length build", i)
			}
			cat = append(cat, p.Value...)
		}
		if !bytes.Equal(cat, data) {
			t.Fatal("split parts do not concatenate to the data")
		}
	})
}
