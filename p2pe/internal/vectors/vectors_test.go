package vectors_test

import (
	"testing"

	"github.com/posgate/posgate/p2pe/internal/vectors"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		records int
		wantErr bool
	}{
		{"two_records", "# c\nA = 1\nB=2\n\n\nA = 3\n", 2, false},
		{"comment_only", "# nothing\n", 0, false},
		{"missing_equals", "A 1\n", 0, true},
		{"empty_name", " = 1\n", 0, true},
		{"duplicate_name", "A = 1\nA = 2\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := vectors.Parse(tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(recs) != tt.records {
				t.Fatalf("%d records, want %d", len(recs), tt.records)
			}
		})
	}
}

func TestLoadEveryFile(t *testing.T) {
	for _, name := range []string{"dukpt_tdes.txt", "dukpt_aes.txt", "pinblock.txt", "fingerprint.txt", "cardblock.txt"} {
		t.Run(name, func(t *testing.T) {
			recs := vectors.Load(t, name)
			if len(recs) < 1 {
				t.Fatalf("%s: no records", name)
			}
		})
	}
}
