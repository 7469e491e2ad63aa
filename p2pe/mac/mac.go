// Package mac computes the ISO 9797-1 MAC algorithm 3 ("retail MAC", ANSI
// X9.19) used by TDES DUKPT request and response MACs and by EMV
// cryptograms. All functions are safe for concurrent use.
package mac

import (
	"crypto/des"
	"errors"
	"fmt"
)

// Size is the length in bytes of a full retail MAC (one DES block). Callers
// often transmit only the leftmost 4 bytes.
const Size = 8

// ErrKeyLength is returned for a key that is not a 16-byte double-length
// DES key.
var ErrKeyLength = errors.New("mac: key must be 16 bytes")

// Retail returns the 8-byte ISO 9797-1 MAC algorithm 3 of data under the
// 16-byte key K1||K2, with padding method 1 (zero bits up to a multiple of 8
// bytes; an empty message becomes one block of zeros): single-DES CBC under
// K1 with IV zero over every block, then the last result decrypted under K2
// and encrypted under K1.
func Retail(key, data []byte) ([]byte, error) {
	return retail(key, data, false)
}

// RetailPad2 is Retail with ISO 9797-1 padding method 2: a 0x80 byte, then
// zero bytes up to a multiple of 8 bytes (always at least one byte added).
func RetailPad2(key, data []byte) ([]byte, error) {
	return retail(key, data, true)
}

func retail(key, data []byte, pad2 bool) ([]byte, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("retail MAC with %d-byte key: %w", len(key), ErrKeyLength)
	}
	k1, err := des.NewCipher(key[:8])
	if err != nil {
		return nil, fmt.Errorf("retail MAC key K1: %w", err)
	}
	k2, err := des.NewCipher(key[8:])
	if err != nil {
		return nil, fmt.Errorf("retail MAC key K2: %w", err)
	}
	var h [Size]byte
	// blocks is the padded length; the bytes past data are zero except for
	// the 0x80 of method 2.
	n := len(data)
	blocks := (n + Size - 1) / Size * Size
	if pad2 {
		blocks = (n/Size + 1) * Size
	} else if blocks == 0 {
		blocks = Size
	}
	for off := 0; off < blocks; off += Size {
		for i := range Size {
			j := off + i
			switch {
			case j < n:
				h[i] ^= data[j]
			case j == n && pad2:
				h[i] ^= 0x80
			}
		}
		k1.Encrypt(h[:], h[:])
	}
	k2.Decrypt(h[:], h[:])
	k1.Encrypt(h[:], h[:])
	return h[:], nil
}
