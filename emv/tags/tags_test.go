package tags_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// typicalDE55 are the tags the brief requires the dictionary to cover.
var typicalDE55 = []tlv.Tag{0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A, 0x82, 0x9F1A, 0x9F03, 0x9F33, 0x9F34, 0x9F35, 0x9F1E, 0x84, 0x9F09, 0x9F41, 0x8A, 0x91, 0x71, 0x72, 0x5F34, 0x9F07, 0x9F0D, 0x9F0E, 0x9F0F, 0x8C, 0x8D, 0x8E, 0x9F66, 0x9F6C}

func TestDictionaryCoversDE55(t *testing.T) {
	for _, tag := range typicalDE55 {
		t.Run("tag_"+tag.String(), func(t *testing.T) {
			i, ok := tags.Lookup(tag)
			if !ok {
				t.Fatalf("tag %s missing", tag)
			}
			if i.Name == "" || i.Format == 0 || i.Source == 0 || i.Max < i.Min {
				t.Fatalf("entry %s incomplete: %+v", tag, i)
			}
			if (i.Format == tags.Constructed) != tag.Constructed() {
				t.Fatalf("entry %s: format %v disagrees with the tag's constructed bit", tag, i.Format)
			}
		})
	}
}

func TestDictionaryConsistent(t *testing.T) {
	for _, i := range tags.All() {
		if !i.Tag.Valid() {
			t.Errorf("entry %s: malformed tag", i.Tag)
		}
		if (i.Format == tags.Constructed) != i.Tag.Constructed() {
			t.Errorf("entry %s: format %v disagrees with the tag's constructed bit", i.Tag, i.Format)
		}
	}
}

func TestSensitive(t *testing.T) {
	tests := []struct {
		name string
		tag  tlv.Tag
		want bool
	}{
		{"pan", 0x5A, true},
		{"track2_equivalent", 0x57, true},
		{"cardholder_name", 0x5F20, true},
		{"track1_discretionary", 0x9F1F, true},
		{"track2_discretionary", 0x9F20, true},
		{"track1_data", 0x56, true},
		{"track2_contactless", 0x9F6B, true},
		{"unknown_tag", 0xDF7F, true},
		{"cryptogram", 0x9F26, false},
		{"amount", 0x9F02, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tags.IsSensitive(tc.tag); got != tc.want {
				t.Fatalf("IsSensitive(%s) = %v, want %v", tc.tag, got, tc.want)
			}
		})
	}
}

func TestDescribeMasks(t *testing.T) {
	list := []tlv.TLV{
		tlv.New(0x5A, unhex(t, "4761739001010010")),
		tlv.New(0x57, unhex(t, "4761739001010010D25122011143804400000F")),
		tlv.New(0x5F20, []byte("SMITH/JOHN")),
		tlv.New(0x9F1F, []byte("1234567890")),
		tlv.New(0xDF7F, unhex(t, "4761739001010010")),
		tlv.Template(0x77, tlv.New(0x9F26, unhex(t, "C2C12B1AD1A3A5BC")), tlv.New(0x9F6B, unhex(t, "4761739001010010D2512201"))),
		tlv.New(0x9F1E, []byte("12345678")),
	}
	var sb strings.Builder
	if err := tags.Describe(&sb, list); err != nil {
		t.Fatalf("describe: %v", err)
	}
	out := sb.String()
	for _, secret := range []string{"4761739001010010", "SMITH", "25122011143804400000", "1234567890", "D2512201"} {
		if strings.Contains(out, secret) {
			t.Fatalf("Describe output shows card data (%d chars of it)", len(secret))
		}
	}
	for _, want := range []string{
		"5A Application Primary Account Number (PAN) [8]: 476173******0010",
		"57 Track 2 Equivalent Data [19]: 476173******0010D[redacted]",
		"5F20 Cardholder Name [10]: [redacted]",
		"DF7F (not in dictionary) [8]: [redacted]",
		"77 Response Message Template Format 2\n  9F26 Application Cryptogram [8]: C2C12B1AD1A3A5BC",
		"9F1E Interface Device (IFD) Serial Number [8]: \"12345678\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Describe output lacks %q; got:\n%s", want, out)
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		x    tlv.TLV
		want error
	}{
		{"good_amount", tlv.New(0x9F02, unhex(t, "000000001200")), nil},
		{"short_amount", tlv.New(0x9F02, unhex(t, "001200")), tags.ErrLength},
		{"amount_not_bcd", tlv.New(0x9F02, unhex(t, "00000000120A")), tags.ErrFormat},
		{"good_pan", tlv.New(0x5A, unhex(t, "4761739001010010FF")), nil},
		{"pan_digit_after_pad", tlv.New(0x5A, unhex(t, "47617390010100F1")), tags.ErrFormat},
		{"long_cryptogram", tlv.New(0x9F26, make([]byte, 9)), tags.ErrLength},
		{"arc_not_an", tlv.New(0x8A, []byte{0x00, 0x00}), tags.ErrFormat},
		{"arc_ok", tlv.New(0x8A, []byte("00")), nil},
		{"unknown_passes", tlv.New(0xDF01, make([]byte, 300)), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tags.Check(tc.x)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "476173") {
				t.Fatalf("error carries value digits")
			}
		})
	}
}
