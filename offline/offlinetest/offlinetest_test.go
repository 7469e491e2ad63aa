package offlinetest_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/offlinetest"
)

func TestSealerRoundTrip(t *testing.T) {
	s := offlinetest.KeySealer()
	sealed, err := s.Seal([]byte("record"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Open(sealed, []byte("aad")); err != nil || string(pt) != "record" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	other, err := offlinetest.NewSealer([]byte("another-offline-test-key-32bytes"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		s      *offlinetest.Sealer
		sealed []byte
		aad    string
	}{
		{"other_aad", s, sealed, "aab"},
		{"other_key", other, sealed, "aad"},
		{"flipped_bit", s, append(append([]byte(nil), sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), "aad"},
		{"truncated", s, sealed[:20], "aad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.s.Open(tt.sealed, []byte(tt.aad)); !errors.Is(err, offlinetest.ErrOpen) {
				t.Fatalf("Open = %v, want ErrOpen", err)
			}
		})
	}
	if _, err := offlinetest.NewSealer([]byte("short")); err == nil {
		t.Fatal("NewSealer accepted a 5-byte key")
	}
}

// A store opened by Open reopens under the same path with the default
// key, and a zero path is a fresh file.
func TestOpenReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	st := offlinetest.Open(t, offline.Config{Path: path})
	if _, err := st.AddSignature("k", []byte("sig")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = offlinetest.Open(t, offline.Config{Path: path})
	var got []string
	if err := st.LoadSignatures(func(_ uint64, _ string, data []byte, err error) {
		if err != nil {
			t.Errorf("load: %v", err)
		}
		got = append(got, string(data))
	}); err != nil || len(got) != 1 || got[0] != "sig" {
		t.Fatalf("after reopen: %q, %v", got, err)
	}
	fresh := offlinetest.Open(t, offline.Config{})
	if err := fresh.LoadSignatures(func(uint64, string, []byte, error) { t.Error("a fresh store holds a signature") }); err != nil {
		t.Fatal(err)
	}
}
