// Package softseal is a software AES-256-GCM sealer for offline's tests,
// benchmarks and crash-test helper. Production passes a sealer backed by
// the gateway's PKCS#11 token instead; this one keeps its key in memory.
package softseal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrOpen is returned when a sealed value does not authenticate.
var ErrOpen = errors.New("softseal: message authentication failed")

// Sealer seals with AES-GCM under a 32-byte key, a random 12-byte nonce
// prefixed to the ciphertext. It is safe for concurrent use.
type Sealer struct{ aead cipher.AEAD }

// New returns a Sealer under key (16, 24 or 32 bytes).
func New(key []byte) (*Sealer, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("softseal: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("softseal: %w", err)
	}
	return &Sealer{aead: a}, nil
}

// Seal returns nonce || ciphertext || tag.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("softseal: nonce: %w", err)
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
