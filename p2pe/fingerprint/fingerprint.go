// Package fingerprint computes PAN fingerprints: a keyed, fixed-length,
// non-reversible identifier of a card number that the negative file,
// velocity counters and the center's token vault use instead of the PAN.
//
// A fingerprint is HMAC-SHA256 under a 32-byte fingerprint key over the
// ASCII PAN digits, truncated to its first 16 bytes and written as 32
// lower-case hex characters. Every fingerprint has the same length, so none
// is a prefix of another. The center computes the same value inside its
// PKCS#11 token with CKM_SHA256_HMAC; docs/card-data-block.md gives the
// test vector. All functions are safe for concurrent use.
package fingerprint

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/posgate/posgate/p2pe/card"
)

// KeyLen is the length of a fingerprint key in bytes.
const KeyLen = 32

// Len is the length of a fingerprint string: 16 bytes as hex.
const Len = 32

var (
	// ErrKeyLength is returned for a fingerprint key that is not 32 bytes.
	ErrKeyLength = errors.New("fingerprint: key must be 32 bytes")
	// ErrNoPAN is returned for the zero (absent) PAN.
	ErrNoPAN = errors.New("fingerprint: no PAN")
)

// Compute returns the fingerprint of pan under key: the first 16 bytes of
// HMAC-SHA256(key, ASCII digits of pan) as 32 lower-case hex characters.
func Compute(key []byte, pan card.PAN) (string, error) {
	if len(key) != KeyLen {
		return "", fmt.Errorf("compute fingerprint with a %d-byte key: %w", len(key), ErrKeyLength)
	}
	if pan.IsZero() {
		return "", fmt.Errorf("compute fingerprint: %w", ErrNoPAN)
	}
	m := hmac.New(sha256.New, key)
	var buf [19]byte
	m.Write(append(buf[:0], pan.Digits()...))
	var sum [sha256.Size]byte
	var out [Len]byte
	hex.Encode(out[:], m.Sum(sum[:0])[:Len/2])
	return string(out[:]), nil
}

// Valid reports whether s has the form of a fingerprint: exactly 32
// lower-case hex characters. It does not say whether any PAN maps to s.
func Valid(s string) bool {
	if len(s) != Len {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
