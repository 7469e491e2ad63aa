package dukpt

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// TDESKSNLen is the length of a TDES DUKPT key serial number.
const TDESKSNLen = 10

// MaxTDESCounterBits is the most one-bits a TDES DUKPT counter may have.
const MaxTDESCounterBits = 10

// TDESCounterMask selects the 21-bit transaction counter in the rightmost
// bits of a TDES KSN.
const TDESCounterMask = 0x1FFFFF

// ErrUsage is returned when a key usage has no TDES DUKPT variant.
var ErrUsage = errors.New("dukpt: key usage has no TDES variant")

// TDESKSN is a 10-byte TDES DUKPT key serial number (ANSI X9.24-1:2009): the
// 59-bit initial key serial number followed by the 21-bit transaction counter.
type TDESKSN [TDESKSNLen]byte

// ParseTDESKSN parses a 10-byte KSN. It checks only the length; use Validate
// for the counter rules.
func ParseTDESKSN(b []byte) (TDESKSN, error) {
	var k TDESKSN
	if len(b) != TDESKSNLen {
		return k, fmt.Errorf("TDES KSN of %d bytes, want %d: %w", len(b), TDESKSNLen, ErrKSNLength)
	}
	copy(k[:], b)
	return k, nil
}

// ParseTDESKSNHex parses a KSN written as 20 hex digits.
func ParseTDESKSNHex(s string) (TDESKSN, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return TDESKSN{}, fmt.Errorf("TDES KSN hex: %w", err)
	}
	return ParseTDESKSN(b)
}

// Counter returns the 21-bit transaction counter.
func (k TDESKSN) Counter() uint32 {
	return (uint32(k[7])<<16 | uint32(k[8])<<8 | uint32(k[9])) & TDESCounterMask
}

// WithCounter returns k with its transaction counter replaced by the low 21
// bits of c; the initial key serial number bits are kept.
func (k TDESKSN) WithCounter(c uint32) TDESKSN {
	c &= TDESCounterMask
	k[7] = k[7]&0xE0 | byte(c>>16)
	k[8] = byte(c >> 8)
	k[9] = byte(c)
	return k
}

// Initial returns the initial key serial number: k with a zero counter.
func (k TDESKSN) Initial() TDESKSN { return k.WithCounter(0) }

// String returns the KSN as upper-case hex. A KSN is not secret.
func (k TDESKSN) String() string { return fmt.Sprintf("%X", k[:]) }

// Validate reports whether the counter names a usable transaction key:
// non-zero with at most 10 one-bits.
func (k TDESKSN) Validate() error {
	c := k.Counter()
	if c == 0 {
		return ErrCounterZero
	}
	if bits.OnesCount32(c) > MaxTDESCounterBits {
		return fmt.Errorf("counter %06X: %w", c, ErrCounterBits)
	}
	return nil
}

// Next returns the KSN of the next transaction: k with the counter advanced
// by NextTDESCounter. It returns ErrExhausted after the last counter.
func (k TDESKSN) Next() (TDESKSN, error) {
	c, err := NextTDESCounter(k.Counter())
	if err != nil {
		return k, err
	}
	return k.WithCounter(c), nil
}

// NextTDESCounter returns the next valid 21-bit counter after c (one with at
// most 10 one-bits), as X9.24-1 advances it: add one while fewer than 10 bits
// are set, otherwise add the lowest set bit. It returns ErrExhausted when the
// counter would leave 21 bits, and ErrCounterBits for a c that is itself not
// a valid counter value.
func NextTDESCounter(c uint32) (uint32, error) {
	if c > TDESCounterMask {
		return 0, fmt.Errorf("counter %X wider than 21 bits: %w", c, ErrCounterBits)
	}
	if bits.OnesCount32(c) > MaxTDESCounterBits {
		return 0, fmt.Errorf("counter %06X: %w", c, ErrCounterBits)
	}
	if bits.OnesCount32(c) == MaxTDESCounterBits {
		c += c & -c
	} else {
		c++
	}
	if c > TDESCounterMask {
		return 0, ErrExhausted
	}
	return c, nil
}

// keyVariantC0 is the mask X9.24-1 applies to a key to derive its second
// half (initial key) and the left half of a future key.
var keyVariantC0 = [16]byte{0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0}

// TDESVariantMask returns the X9.24-1 variant mask XORed onto a transaction
// key to get the working key of the given usage. TDES DUKPT has five
// variants, named here by their X9.24-3 counterparts:
//
//	UsagePINEncryption  PIN encryption      00000000000000FF00000000000000FF
//	UsageMACGenerate    MAC, request        000000000000FF00000000000000FF00
//	UsageMACVerify      MAC, response       00000000FF00000000000000FF000000
//	UsageDataEncrypt    data, request       0000000000FF00000000000000FF0000
//	UsageDataDecrypt    data, response      000000FF00000000000000FF00000000
//
// Any other usage returns ErrUsage. The data variants are followed by the
// one-way step (see TDESWorkingKeyFromTransactionKey).
func TDESVariantMask(usage KeyUsage) ([16]byte, error) {
	var m [16]byte
	var i int
	switch usage {
	case UsagePINEncryption:
		i = 7
	case UsageMACGenerate:
		i = 6
	case UsageMACVerify:
		i = 4
	case UsageDataEncrypt:
		i = 5
	case UsageDataDecrypt:
		i = 3
	default:
		return m, fmt.Errorf("usage %04X: %w", uint16(usage), ErrUsage)
	}
	m[i], m[i+8] = 0xFF, 0xFF
	return m, nil
}

// tdes returns a two-key triple-DES cipher for a 16-byte key.
func tdes(key []byte) (cipher.Block, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("TDES key of %d bytes, want 16: %w", len(key), ErrKeyLength)
	}
	var k [24]byte
	copy(k[:], key)
	copy(k[16:], key[:8])
	c, err := des.NewTripleDESCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("TDES key: %w", err)
	}
	return c, nil
}

// TDESInitialKey derives a terminal's initial PIN encryption key (IPEK) from
// a 16-byte BDK and the terminal's KSN; the counter bits of ksn are ignored.
// This is the key-injection step and runs only in the key-injection tool and
// in tests.
func TDESInitialKey(bdk []byte, ksn TDESKSN) ([]byte, error) {
	left, err := tdes(bdk)
	if err != nil {
		return nil, fmt.Errorf("BDK: %w", err)
	}
	var bdk2 [16]byte
	subtle.XORBytes(bdk2[:], bdk, keyVariantC0[:])
	right, err := tdes(bdk2[:])
	if err != nil {
		return nil, fmt.Errorf("BDK variant: %w", err)
	}
	iksn := ksn.Initial()
	ipek := make([]byte, 16)
	left.Encrypt(ipek[:8], iksn[:8])
	right.Encrypt(ipek[8:], iksn[:8])
	return ipek, nil
}

// tdesNRKGP is the X9.24-1 non-reversible key generation process: it turns
// the 16-byte key and the 8-byte KSN register into the next future key.
func tdesNRKGP(key *[16]byte, reg [8]byte) error {
	var out [16]byte
	half := func(k *[16]byte, dst []byte) error {
		c, err := des.NewCipher(k[:8])
		if err != nil {
			return fmt.Errorf("DES key: %w", err)
		}
		var r [8]byte
		subtle.XORBytes(r[:], reg[:], k[8:])
		c.Encrypt(r[:], r[:])
		subtle.XORBytes(dst, r[:], k[8:])
		return nil
	}
	if err := half(key, out[8:]); err != nil {
		return err
	}
	var k2 [16]byte
	subtle.XORBytes(k2[:], key[:], keyVariantC0[:])
	if err := half(&k2, out[:8]); err != nil {
		return err
	}
	*key = out
	return nil
}

// TDESTransactionKey derives the transaction key for ksn from an IPEK by the
// non-reversible key generation process, walking the counter's one-bits from
// the most significant down. ksn must pass Validate.
func TDESTransactionKey(ipek []byte, ksn TDESKSN) ([]byte, error) {
	if len(ipek) != 16 {
		return nil, fmt.Errorf("IPEK of %d bytes, want 16: %w", len(ipek), ErrKeyLength)
	}
	if err := ksn.Validate(); err != nil {
		return nil, err
	}
	var key [16]byte
	copy(key[:], ipek)
	init := ksn.Initial()
	var reg [8]byte
	copy(reg[:], init[2:])
	c := ksn.Counter()
	for bit := uint32(1) << 20; bit != 0; bit >>= 1 {
		if c&bit == 0 {
			continue
		}
		reg[5] |= byte(bit >> 16)
		reg[6] |= byte(bit >> 8)
		reg[7] |= byte(bit)
		if err := tdesNRKGP(&key, reg); err != nil {
			return nil, err
		}
	}
	return key[:], nil
}

// TDESWorkingKeyFromTransactionKey applies the variant of usage (see
// TDESVariantMask) to a 16-byte transaction key. For the data variants it
// then applies the one-way step: each half of the variant key is
// TDES-encrypted under the variant key itself.
func TDESWorkingKeyFromTransactionKey(tk []byte, usage KeyUsage) ([]byte, error) {
	if len(tk) != 16 {
		return nil, fmt.Errorf("transaction key of %d bytes, want 16: %w", len(tk), ErrKeyLength)
	}
	m, err := TDESVariantMask(usage)
	if err != nil {
		return nil, err
	}
	k := make([]byte, 16)
	subtle.XORBytes(k, tk, m[:])
	if usage != UsageDataEncrypt && usage != UsageDataDecrypt {
		return k, nil
	}
	c, err := tdes(k)
	if err != nil {
		return nil, err
	}
	c.Encrypt(k[:8], k[:8])
	c.Encrypt(k[8:], k[8:])
	return k, nil
}

// TDESWorkingKey derives the working key of usage for ksn from an IPEK.
func TDESWorkingKey(ipek []byte, ksn TDESKSN, usage KeyUsage) ([]byte, error) {
	if _, err := TDESVariantMask(usage); err != nil {
		return nil, err
	}
	tk, err := TDESTransactionKey(ipek, ksn)
	if err != nil {
		return nil, err
	}
	return TDESWorkingKeyFromTransactionKey(tk, usage)
}

// TDESPINKey derives the PIN encryption key for ksn from an IPEK.
func TDESPINKey(ipek []byte, ksn TDESKSN) ([]byte, error) {
	return TDESWorkingKey(ipek, ksn, UsagePINEncryption)
}

// TDESMACRequestKey derives the request MAC key for ksn from an IPEK.
func TDESMACRequestKey(ipek []byte, ksn TDESKSN) ([]byte, error) {
	return TDESWorkingKey(ipek, ksn, UsageMACGenerate)
}

// TDESMACResponseKey derives the response MAC key for ksn from an IPEK.
func TDESMACResponseKey(ipek []byte, ksn TDESKSN) ([]byte, error) {
	return TDESWorkingKey(ipek, ksn, UsageMACVerify)
}

// TDESDataRequestKey derives the request data encryption key for ksn from an
// IPEK (data-request variant followed by the one-way step).
func TDESDataRequestKey(ipek []byte, ksn TDESKSN) ([]byte, error) {
	return TDESWorkingKey(ipek, ksn, UsageDataEncrypt)
}

// TDESDataResponseKey derives the response data encryption key for ksn from
// an IPEK (data-response variant followed by the one-way step).
func TDESDataResponseKey(ipek []byte, ksn TDESKSN) ([]byte, error) {
	return TDESWorkingKey(ipek, ksn, UsageDataDecrypt)
}
