package negfile_test

import (
	"errors"
	"testing"

	"github.com/posgate/posgate/protocol/negfile"
)

func TestParseInquiry(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"none_loaded", "NF1? -", true},
		{"loaded", "NF1? 12", true},
		{"zero_version", "NF1? 0", true},
		{"snapshot_session", "NF1? - S 0 40 2 2", true},
		{"delta_session", "NF1? 3 D 3 9 4 2", true},
		{"leading_zero", "NF1? 012", false},
		{"bad_kind", "NF1? 3 X 3 9 4 2", false},
		{"short_session", "NF1? 3 D 3 9 4", false},
		{"wrong_tag", "NF2? 3", false},
		{"double_space", "NF1?  3", false},
		{"overflow", "NF1? 99999999999999999999", false},
		{"seq_overflow", "NF1? 3 D 3 9 4294967296 1", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := negfile.ParseInquiry(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseInquiry(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, negfile.ErrBadInquiry) {
				t.Fatalf("error %v does not wrap ErrBadInquiry", err)
			}
			if err == nil && q.Encode() != tt.in {
				t.Fatalf("round trip %q -> %q", tt.in, q.Encode())
			}
		})
	}
}

func TestInquiryEncode(t *testing.T) {
	tests := []struct {
		name string
		q    negfile.Inquiry
		want string
	}{
		{"none_loaded", negfile.Inquiry{}, "NF1? -"},
		{"loaded", negfile.Inquiry{Loaded: true, Have: 7}, "NF1? 7"},
		{"snapshot_session", negfile.Inquiry{Session: &negfile.Session{Snapshot: true, Version: 40, Total: 2, Next: 2}}, "NF1? - S 0 40 2 2"},
		{"delta_session", negfile.Inquiry{Loaded: true, Have: 3, Session: &negfile.Session{Base: 3, Version: 9, Total: 4, Next: 2}}, "NF1? 3 D 3 9 4 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.q.Encode(); got != tt.want {
				t.Fatalf("Encode() = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzParseInquiry: whatever parses encodes back to the same bytes.
func FuzzParseInquiry(f *testing.F) {
	for _, s := range []string{"NF1? -", "NF1? 7", "NF1? - S 0 40 2 2", "NF1? 3 D 3 9 4 2", "NF1? 0 D 0 1 1 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := negfile.ParseInquiry(s)
		if err != nil {
			if !errors.Is(err, negfile.ErrBadInquiry) {
				t.Fatalf("error %v does not wrap ErrBadInquiry", err)
			}
			return
		}
		if q.Encode() != s {
			t.Fatalf("round trip %q -> %q", s, q.Encode())
		}
		back, err := negfile.ParseInquiry(q.Encode())
		if err != nil || back.Encode() != s {
			t.Fatalf("re-parse of %q: %v", s, err)
		}
	})
}
