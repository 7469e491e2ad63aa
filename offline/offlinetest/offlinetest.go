// Package offlinetest helps tests of any package use an offline store: a
// software AES-256-GCM Sealer under a fixed test key, and Open, which
// opens a store in the test's temporary directory and closes it when the
// test ends. Production seals inside the gateway's token with
// offline/hsmseal; nothing here is for production (the key is public).
package offlinetest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/offline"
)

// Key is the sealing key Open uses when the config has no sealer: fixed,
// so a store reopened by another Open (a "restart") opens its records.
const Key = "posgate-offline-test-key-32bytes"

// ErrOpen is returned when a sealed value does not authenticate.
var ErrOpen = errors.New("offlinetest: message authentication failed")

// Sealer seals with AES-GCM, a random 12-byte nonce prefixed to the
// ciphertext. It implements offline.Sealer and is safe for concurrent use.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer under key (16, 24 or 32 bytes).
func NewSealer(key []byte) (*Sealer, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("offlinetest: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("offlinetest: %w", err)
	}
	return &Sealer{aead: a}, nil
}

// KeySealer returns a Sealer under Key.
func KeySealer() *Sealer {
	s, err := NewSealer([]byte(Key))
	if err != nil {
		panic(err) // Key is a valid AES-256 key
	}
	return s
}

// Seal returns nonce ‖ ciphertext ‖ tag.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("offlinetest: nonce: %w", err)
	}
	return s.aead.Seal(out, out, plaintext, aad), nil
}

// Open reverses Seal; it fails with ErrOpen if sealed or aad was altered.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Open opens the store cfg describes and closes it when t ends; it ends t
// if the store does not open. A zero cfg.Path is offline.db in
// t.TempDir(), a nil cfg.Sealer a Sealer under Key.
func Open(t testing.TB, cfg offline.Config) *offline.Store {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "offline.db")
	}
	if cfg.Sealer == nil {
		cfg.Sealer = KeySealer()
	}
	st, err := offline.Open(cfg)
	if err != nil {
		t.Fatalf("open offline store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
