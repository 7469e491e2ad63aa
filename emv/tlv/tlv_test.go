package tlv_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv/tlv"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []tlv.TLV
	}{
		{"empty", "", nil},
		{"one_byte_tag", "82 02 5C 00", []tlv.TLV{tlv.New(0x82, []byte{0x5C, 0x00})}},
		{"two_byte_tag", "9F36 02 0001", []tlv.TLV{tlv.New(0x9F36, []byte{0, 1})}},
		{"three_byte_tag", "DF8101 01 AA", []tlv.TLV{tlv.New(0xDF8101, []byte{0xAA})}},
		{"zero_length", "9F03 00", []tlv.TLV{tlv.New(0x9F03, []byte{})}},
		{"long_form_81", "9F10 81 80 " + strings.Repeat("11", 128), []tlv.TLV{tlv.New(0x9F10, bytes.Repeat([]byte{0x11}, 128))}},
		{"long_form_82", "71 82 0100 " + strings.Repeat("22", 256), []tlv.TLV{tlv.New(0x71, nil)}}, // checked below
		{"constructed", "77 09 9F27 01 80 9F36 02 0001", []tlv.TLV{tlv.Template(0x77, tlv.New(0x9F27, []byte{0x80}), tlv.New(0x9F36, []byte{0, 1}))}},
		{"nested", "70 07 A5 05 88 01 02 5F 2D 00", nil}, // the inner 5F2D runs past A5: checked below
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			got, err := tlv.Decode(in)
			switch tc.name {
			case "long_form_82":
				// 71 is constructed: 256 bytes of 22 are not TLVs.
				if !errors.Is(err, tlv.ErrBadLength) && !errors.Is(err, tlv.ErrTruncated) {
					t.Fatalf("decode: %v, want a malformed-template error", err)
				}
				return
			case "nested":
				if !errors.Is(err, tlv.ErrTruncated) {
					t.Fatalf("decode: %v, want ErrTruncated", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decode = %v, want %v", got, tc.want)
			}
			enc, err := tlv.Encode(got)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(enc, in) {
				t.Fatalf("encode = %X, want %X", enc, in)
			}
		})
	}
}

func TestDecodeLongForms(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		n      int
	}{
		{"len_127_short", "7F", 127},
		{"len_128_81", "8180", 128},
		{"len_255_81", "81FF", 255},
		{"len_256_82", "820100", 256},
		{"len_65536_83", "83010000", 65536},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append(unhex(t, "DF01"+tc.prefix), bytes.Repeat([]byte{0x5A}, tc.n)...)
			got, err := tlv.Decode(in)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(got) != 1 || len(got[0].Value) != tc.n {
				t.Fatalf("decode = %v, want one value of %d bytes", got, tc.n)
			}
			enc, err := tlv.Encode(got)
			if err != nil || !bytes.Equal(enc, in) {
				t.Fatalf("encode round trip failed: %v", err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"value_past_end", "9F26 08 0102", tlv.ErrTruncated},
		{"missing_length", "9F26", tlv.ErrTruncated},
		{"truncated_tag", "9F", tlv.ErrTruncated},
		{"truncated_long_length", "9F10 82 01", tlv.ErrTruncated},
		{"child_past_template", "77 03 9F36 02 0001", tlv.ErrTruncated},
		{"non_minimal_81", "9F10 81 05 0102030405", tlv.ErrBadLength},
		{"non_minimal_82", "9F10 82 0005 0102030405", tlv.ErrBadLength},
		{"indefinite_length", "9F10 80 00", tlv.ErrBadLength},
		{"length_84", "9F10 84 00000001 00", tlv.ErrBadLength},
		{"zero_tag", "00 01 00", tlv.ErrBadTag},
		{"ff_padding", "FF 9F36 02 0001", tlv.ErrBadTag},
		{"zero_padding_strict", "9F36 02 0001 00", tlv.ErrBadTag},
		{"subsequent_80", "1F80 01 00", tlv.ErrBadTag},
		{"tag_too_long", "DF818181 01 00", tlv.ErrBadTag},
		{"duplicate_top", "9F36 02 0001 9F36 02 0002", tlv.ErrDuplicateTag},
		{"duplicate_in_template", "77 0A 9F36 02 0001 9F36 02 0002", tlv.ErrDuplicateTag},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlv.Decode(unhex(t, tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("decode error = %v, want %v", err, tc.want)
			}
			var e *tlv.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not a *tlv.Error", err)
			}
		})
	}
}

func TestDecodeTooDeep(t *testing.T) {
	// MaxDepth+2 nested E1 templates around one primitive.
	in := unhex(t, "5F2D 00")
	for range tlv.MaxDepth + 2 {
		in = append([]byte{0xE1, byte(len(in))}, in...)
	}
	if _, err := tlv.Decode(in); !errors.Is(err, tlv.ErrTooDeep) {
		t.Fatalf("decode error = %v, want ErrTooDeep", err)
	}
}

func TestDecodeCardPadding(t *testing.T) {
	in := unhex(t, "00 70 0C 00 5F24 03 301231 00 00 9F07 00 00 0000")
	got, err := tlv.DecodeCard(in)
	if err != nil {
		t.Fatalf("decode card: %v", err)
	}
	want := []tlv.TLV{tlv.Template(0x70, tlv.New(0x5F24, unhex(t, "301231")), tlv.New(0x9F07, []byte{}))}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode card = %v, want %v", got, want)
	}
	if _, err := tlv.Decode(in); err == nil {
		t.Fatal("strict decode accepted padding")
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []tlv.TLV
		want error
	}{
		{"bad_tag", []tlv.TLV{tlv.New(0x9F, nil)}, tlv.ErrBadTag},
		{"zero_tag", []tlv.TLV{tlv.New(0, nil)}, tlv.ErrBadTag},
		{"duplicate", []tlv.TLV{tlv.New(0x9F36, nil), tlv.New(0x9F36, nil)}, tlv.ErrDuplicateTag},
		{"primitive_with_children", []tlv.TLV{{Tag: 0x9F36, Children: []tlv.TLV{}}}, tlv.ErrShape},
		{"constructed_with_value", []tlv.TLV{{Tag: 0x77, Value: []byte{1}}}, tlv.ErrShape},
		{"duplicate_nested", []tlv.TLV{tlv.Template(0x77, tlv.New(0x82, nil), tlv.New(0x82, nil))}, tlv.ErrDuplicateTag},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tlv.Encode(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("encode error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	list, err := tlv.Decode(unhex(t, "77 0D 9F27 01 80 A5 07 9F36 02 0001 88 00 82 02 5C00"))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	tests := []struct {
		name string
		tag  tlv.Tag
		want string
		ok   bool
	}{
		{"top_level", 0x82, "5C00", true},
		{"in_template", 0x9F27, "80", true},
		{"nested_template", 0x9F36, "0001", true},
		{"empty_value", 0x88, "", true},
		{"absent", 0x9F26, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tlv.Find(list, tc.tag)
			if ok != tc.ok || fmt.Sprintf("%X", got.Value) != tc.want {
				t.Fatalf("Find(%s) = %X, %v; want %s, %v", tc.tag, got.Value, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTagParseAndString(t *testing.T) {
	tests := []struct {
		in      string
		want    tlv.Tag
		wantErr bool
	}{
		{"9F26", 0x9F26, false},
		{"5A", 0x5A, false},
		{"DF8101", 0xDF8101, false},
		{"9F", 0, true},
		{"5A00", 0, true},
		{"zz", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		t.Run("tag_"+tc.in, func(t *testing.T) {
			got, err := tlv.ParseTag(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseTag(%q) = %v, %v", tc.in, got, err)
			}
			if err == nil && got.String() != tc.in {
				t.Fatalf("String = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestNoValueInOutput(t *testing.T) {
	x := tlv.New(0x5A, unhex(t, "4761739001010010"))
	for _, s := range []string{x.String(), fmt.Sprintf("%v %+v %#v %s %x %X", x, x, x, x, x, x)} {
		if strings.Contains(strings.ToUpper(s), "4761739001010010") || strings.Contains(s, "Gas") {
			t.Fatalf("formatted TLV shows its value: %q", s)
		}
	}
	_, err := tlv.Decode(unhex(t, "5A 09 4761739001010010"))
	if err == nil || strings.Contains(strings.ToUpper(err.Error()), "47617390") {
		t.Fatalf("error %v carries value bytes or is nil", err)
	}
}
