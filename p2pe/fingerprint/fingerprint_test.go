package fingerprint_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/fingerprint"
	"github.com/posgate/posgate/p2pe/internal/vectors"
)

func TestVectorFile(t *testing.T) {
	for _, r := range vectors.Load(t, "fingerprint.txt") {
		pan, err := card.ParsePAN(r.Str(t, "PAN"))
		if err != nil {
			t.Fatal(err)
		}
		t.Run("pan_"+pan.Masked(), func(t *testing.T) {
			key := r.Hex(t, "KEY")
			// The full HMAC is what a token's CKM_SHA256_HMAC returns.
			m := hmac.New(sha256.New, key)
			m.Write([]byte(pan.Digits()))
			if got := hex.EncodeToString(m.Sum(nil)); got != r.Str(t, "FULL") {
				t.Fatalf("full HMAC %s, want %s", got, r.Str(t, "FULL"))
			}
			got, err := fingerprint.Compute(key, pan)
			if err != nil {
				t.Fatal(err)
			}
			if want := r.Str(t, "FINGERPRINT"); got != want {
				t.Fatalf("fingerprint %s, want %s", got, want)
			}
			if !fingerprint.Valid(got) {
				t.Fatal("computed fingerprint is not Valid")
			}
		})
	}
}

func TestComputeErrors(t *testing.T) {
	pan, err := card.ParsePAN("4111111111111111")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  []byte
		pan  card.PAN
		want error
	}{
		{"short_key", make([]byte, 16), pan, fingerprint.ErrKeyLength},
		{"long_key", make([]byte, 33), pan, fingerprint.ErrKeyLength},
		{"zero_pan", make([]byte, 32), card.PAN{}, fingerprint.ErrNoPAN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := fingerprint.Compute(tt.key, tt.pan); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyAndPANMatter(t *testing.T) {
	a, _ := card.ParsePAN("4111111111111111")
	b, _ := card.ParsePAN("4012345678909")
	k1 := bytes.Repeat([]byte{1}, 32)
	k2 := bytes.Repeat([]byte{2}, 32)
	fa1, _ := fingerprint.Compute(k1, a)
	fa2, _ := fingerprint.Compute(k2, a)
	fb1, _ := fingerprint.Compute(k1, b)
	if fa1 == fa2 || fa1 == fb1 {
		t.Fatal("fingerprint does not depend on both key and PAN")
	}
	again, _ := fingerprint.Compute(k1, a)
	if again != fa1 {
		t.Fatal("fingerprint is not deterministic")
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"vector", "0622241201382a45912fb22828b3f7db", true},
		{"upper_case", "0622241201382A45912FB22828B3F7DB", false},
		{"short", "0622241201382a45912fb22828b3f7d", false},
		{"long", "0622241201382a45912fb22828b3f7dbb", false},
		{"non_hex", "0622241201382a45912fb22828b3f7dg", false},
		{"pan_shaped", strings.Repeat("4", 32), true},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fingerprint.Valid(tt.in); got != tt.want {
				t.Fatalf("Valid = %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkFingerprint(b *testing.B) {
	pan, _ := card.ParsePAN("4111111111111111")
	key := bytes.Repeat([]byte{7}, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fingerprint.Compute(key, pan); err != nil {
			b.Fatal(err)
		}
	}
}
