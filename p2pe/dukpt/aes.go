// Package dukpt implements Derived Unique Key Per Transaction key management
// for the terminal side and for key injection: AES DUKPT (ANSI X9.24-3-2017)
// and TDES DUKPT (ANSI X9.24-1:2009).
//
// The center never uses this package to derive keys from a BDK: there the
// derivation happens inside the PKCS#11 token (package hsm), which uses only
// the derivation-data builders below so that both sides agree byte for byte.
package dukpt

import (
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// KeyUsage is the X9.24-3 key usage indicator of a derived key.
type KeyUsage uint16

// Key usages of X9.24-3-2017 section 6.3.2.
const (
	UsageKeyEncryption KeyUsage = 0x0002 // key encryption key (update)
	UsagePINEncryption KeyUsage = 0x1000
	UsageMACGenerate   KeyUsage = 0x2000
	UsageMACVerify     KeyUsage = 0x2001
	UsageMACBoth       KeyUsage = 0x2002
	UsageDataEncrypt   KeyUsage = 0x3000
	UsageDataDecrypt   KeyUsage = 0x3001
	UsageDataBoth      KeyUsage = 0x3002
	UsageIntermediate  KeyUsage = 0x8000 // derivation (intermediate) key
	UsageInitialKey    KeyUsage = 0x8001 // initial key from the BDK
)

// KeyAlgorithm is the X9.24-3 algorithm indicator of a derived key.
type KeyAlgorithm uint16

// Algorithms of X9.24-3-2017 section 6.3.2.
const (
	Alg2TDEA   KeyAlgorithm = 0x0000
	Alg3TDEA   KeyAlgorithm = 0x0001
	AlgAES128  KeyAlgorithm = 0x0002
	AlgAES192  KeyAlgorithm = 0x0003
	AlgAES256  KeyAlgorithm = 0x0004
	AlgHMAC256 KeyAlgorithm = 0x0005
)

// KeyLen returns the key length in bytes for the algorithm, or 0 if unknown.
func (a KeyAlgorithm) KeyLen() int {
	switch a {
	case Alg2TDEA, AlgAES128:
		return 16
	case Alg3TDEA, AlgAES192:
		return 24
	case AlgAES256, AlgHMAC256:
		return 32
	}
	return 0
}

// AESKSNLen is the length of an AES DUKPT key serial number.
const AESKSNLen = 12

// MaxAESCounterBits is the most one-bits an AES DUKPT counter may have.
const MaxAESCounterBits = 16

var (
	// ErrKSNLength is returned for a key serial number of the wrong length.
	ErrKSNLength = errors.New("dukpt: wrong KSN length")
	// ErrCounterBits is returned for a transaction counter with more
	// one-bits than the scheme allows (16 for AES, 10 for TDES).
	ErrCounterBits = errors.New("dukpt: transaction counter has too many one-bits")
	// ErrCounterZero is returned for a transaction counter of zero, which
	// names no transaction key.
	ErrCounterZero = errors.New("dukpt: transaction counter is zero")
	// ErrExhausted is returned when a device has used every counter value.
	ErrExhausted = errors.New("dukpt: transaction counter exhausted")
	// ErrKeyLength is returned for a key of a length the algorithm does not take.
	ErrKeyLength = errors.New("dukpt: wrong key length")
	// ErrAlgorithm is returned for an unknown or unsupported key algorithm.
	ErrAlgorithm = errors.New("dukpt: unsupported key algorithm")
)

// AESKSN is a 12-byte AES DUKPT key serial number: the 8-byte Initial Key ID
// (BDK ID || derivation ID) followed by the 4-byte transaction counter.
type AESKSN [AESKSNLen]byte

// ParseAESKSN parses a 12-byte KSN. It checks only the length; use Validate
// for the counter rules.
func ParseAESKSN(b []byte) (AESKSN, error) {
	var k AESKSN
	if len(b) != AESKSNLen {
		return k, fmt.Errorf("AES KSN of %d bytes, want %d: %w", len(b), AESKSNLen, ErrKSNLength)
	}
	copy(k[:], b)
	return k, nil
}

// ParseAESKSNHex parses a KSN written as 24 hex digits.
func ParseAESKSNHex(s string) (AESKSN, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return AESKSN{}, fmt.Errorf("AES KSN hex: %w", err)
	}
	return ParseAESKSN(b)
}

// NewAESKSN builds a KSN from an Initial Key ID and a counter.
func NewAESKSN(ikid [8]byte, counter uint32) AESKSN {
	var k AESKSN
	copy(k[:8], ikid[:])
	binary.BigEndian.PutUint32(k[8:], counter)
	return k
}

// InitialKeyID returns the 8-byte Initial Key ID.
func (k AESKSN) InitialKeyID() [8]byte {
	var id [8]byte
	copy(id[:], k[:8])
	return id
}

// Counter returns the 32-bit transaction counter.
func (k AESKSN) Counter() uint32 { return binary.BigEndian.Uint32(k[8:]) }

// String returns the KSN as upper-case hex. A KSN is not secret.
func (k AESKSN) String() string { return fmt.Sprintf("%X", k[:]) }

// Validate reports whether the counter names a usable transaction key:
// non-zero with at most 16 one-bits.
func (k AESKSN) Validate() error {
	c := k.Counter()
	if c == 0 {
		return ErrCounterZero
	}
	if bits.OnesCount32(c) > MaxAESCounterBits {
		return fmt.Errorf("counter %08X: %w", c, ErrCounterBits)
	}
	return nil
}

// NextAESCounter returns the next valid counter after c (one with at most 16
// one-bits), or ErrExhausted when none is left.
func NextAESCounter(c uint32) (uint32, error) {
	for {
		if c == 0xFFFFFFFF {
			return 0, ErrExhausted
		}
		if bits.OnesCount32(c) >= MaxAESCounterBits {
			// Skip every value that would add bits below the lowest set bit.
			low := c & -c
			if c+low < c {
				return 0, ErrExhausted
			}
			c += low
		} else {
			c++
		}
		if c == 0 {
			return 0, ErrExhausted
		}
		if bits.OnesCount32(c) <= MaxAESCounterBits {
			return c, nil
		}
	}
}

// AESDerivationData returns the 16-byte derivation data block for deriving a
// key of the given usage and algorithm; blockCounter is 1 for the first 128
// bits of output and 2 for the second (AES-256 keys). For UsageInitialKey the
// last 8 bytes are the Initial Key ID; otherwise they are the rightmost 4
// bytes of the Initial Key ID followed by the given counter.
func AESDerivationData(usage KeyUsage, alg KeyAlgorithm, blockCounter byte, ksn AESKSN, counter uint32) [16]byte {
	var d [16]byte
	d[0] = 0x01 // version
	d[1] = blockCounter
	binary.BigEndian.PutUint16(d[2:], uint16(usage))
	binary.BigEndian.PutUint16(d[4:], uint16(alg))
	binary.BigEndian.PutUint16(d[6:], uint16(alg.KeyLen()*8))
	if usage == UsageInitialKey {
		copy(d[8:], ksn[:8])
	} else {
		copy(d[8:12], ksn[4:8])
		binary.BigEndian.PutUint32(d[12:], counter)
	}
	return d
}

// AESDerivationSteps returns the intermediate counters an AES DUKPT
// transaction-key derivation walks through for counter c: starting from the
// initial key, each step sets the next one-bit of c from the most significant
// down. The last element equals c.
func AESDerivationSteps(c uint32) []uint32 {
	steps := make([]uint32, 0, bits.OnesCount32(c))
	var w uint32
	for mask := uint32(1) << 31; mask != 0; mask >>= 1 {
		if c&mask != 0 {
			w |= mask
			steps = append(steps, w)
		}
	}
	return steps
}

// aesDerive derives a key of alg's length from key under the derivation data
// built from usage, ksn and counter (X9.24-3 "Derive Key").
func aesDerive(key []byte, usage KeyUsage, alg KeyAlgorithm, ksn AESKSN, counter uint32) ([]byte, error) {
	n := alg.KeyLen()
	if n == 0 {
		return nil, fmt.Errorf("algorithm %04X: %w", uint16(alg), ErrAlgorithm)
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("derivation key of %d bytes: %w", len(key), ErrKeyLength)
	}
	out := make([]byte, 0, 32)
	for i := byte(1); len(out) < n; i++ {
		d := AESDerivationData(usage, alg, i, ksn, counter)
		var b [16]byte
		blk.Encrypt(b[:], d[:])
		out = append(out, b[:]...)
	}
	return out[:n], nil
}

// bdkAlgorithm maps an AES key length to its algorithm indicator.
func bdkAlgorithm(key []byte) (KeyAlgorithm, error) {
	switch len(key) {
	case 16:
		return AlgAES128, nil
	case 24:
		return AlgAES192, nil
	case 32:
		return AlgAES256, nil
	}
	return 0, fmt.Errorf("AES key of %d bytes: %w", len(key), ErrKeyLength)
}

// AESInitialKey derives a terminal's initial key from the BDK and the Initial
// Key ID. The initial key has the BDK's length. This is the key-injection step
// and runs only in the key-injection tool and in tests.
func AESInitialKey(bdk []byte, ikid [8]byte) ([]byte, error) {
	alg, err := bdkAlgorithm(bdk)
	if err != nil {
		return nil, err
	}
	var ksn AESKSN
	copy(ksn[:8], ikid[:])
	return aesDerive(bdk, UsageInitialKey, alg, ksn, 0)
}

// AESTransactionKey derives the derivation (transaction) key for ksn from an
// initial key, walking one intermediate derivation per one-bit of the counter.
func AESTransactionKey(ik []byte, ksn AESKSN) ([]byte, error) {
	alg, err := bdkAlgorithm(ik)
	if err != nil {
		return nil, err
	}
	if err := ksn.Validate(); err != nil {
		return nil, err
	}
	key := ik
	for _, w := range AESDerivationSteps(ksn.Counter()) {
		key, err = aesDerive(key, UsageIntermediate, alg, ksn, w)
		if err != nil {
			return nil, err
		}
	}
	return key, nil
}

// AESWorkingKey derives the working key of the given usage and algorithm for
// ksn from an initial key.
func AESWorkingKey(ik []byte, ksn AESKSN, usage KeyUsage, alg KeyAlgorithm) ([]byte, error) {
	tk, err := AESTransactionKey(ik, ksn)
	if err != nil {
		return nil, err
	}
	return AESWorkingKeyFromTransactionKey(tk, ksn, usage, alg)
}

// AESWorkingKeyFromTransactionKey derives a working key from an already
// derived transaction key.
func AESWorkingKeyFromTransactionKey(tk []byte, ksn AESKSN, usage KeyUsage, alg KeyAlgorithm) ([]byte, error) {
	return aesDerive(tk, usage, alg, ksn, ksn.Counter())
}
