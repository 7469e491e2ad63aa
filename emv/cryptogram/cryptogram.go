// Package cryptogram is the pure-Go EMV key derivation and cryptogram
// arithmetic (EMV 4.4 Book 2 Annex A1). With TDES keys: ICC master key
// derivation option A, the common session key derivation, application
// cryptograms (ISO/IEC 9797-1 MAC algorithm 3 with padding method 2) and
// ARPC methods 1 and 2. With AES keys (aes.go, the functions ending in
// AES): option C, the common session key derivation for a 16-byte block,
// application cryptograms with ISO/IEC 9797-1 MAC algorithm 5 (CMAC) and
// ARPC methods 1 and 2. Which family applies is the issuer's choice per
// key (the IMK's type), not something a function guesses from a length.
//
// It is the card side's implementation, used by the simulated chip card
// (emv/card) and by tests. Issuer-side verification at the center runs in
// the PKCS#11 token (hsm.EMVIssuer), which uses this package only for the
// derivation data and padding, never for key arithmetic. Keys here are
// byte slices in process memory: the caller owns them and should clear
// them when done. No error carries key bytes or PAN digits.
//
// All functions are safe for concurrent use.
package cryptogram

import (
	"crypto/des"
	"crypto/subtle"
	"errors"
	"fmt"
)

// Errors callers branch on.
var (
	// ErrKeyLength means a key has the wrong length: TDES keys here are
	// 16-byte double-length keys, AES keys 16, 24 or 32 bytes.
	ErrKeyLength = errors.New("cryptogram: wrong key length")
	// ErrPAN means the PAN is not 1..19 decimal digits.
	ErrPAN = errors.New("cryptogram: PAN must be 1 to 19 decimal digits")
	// ErrPSN means the PAN sequence number is not two BCD digits.
	ErrPSN = errors.New("cryptogram: PSN must be two BCD digits")
	// ErrMismatch means a cryptogram did not verify.
	ErrMismatch = errors.New("cryptogram: cryptogram does not verify")
	// ErrInput means another argument is malformed (lengths of ARQC,
	// ARC, CSU, proprietary data).
	ErrInput = errors.New("cryptogram: invalid input")
)

// OptionAData returns Y, the 8-byte input of ICC master key derivation
// option A: the rightmost 16 digits of the PAN followed by the PSN (two
// BCD digits, 00 when the card has no 5F34), left-padded with zeros to 16
// digits, packed as BCD.
func OptionAData(pan string, psn byte) ([8]byte, error) {
	var y [8]byte
	if len(pan) == 0 || len(pan) > 19 {
		return y, fmt.Errorf("option A data: PAN of %d digits: %w", len(pan), ErrPAN)
	}
	for i := 0; i < len(pan); i++ {
		if pan[i] < '0' || pan[i] > '9' {
			return y, fmt.Errorf("option A data: %w", ErrPAN)
		}
	}
	if psn>>4 > 9 || psn&0xF > 9 {
		return y, fmt.Errorf("option A data: %w", ErrPSN)
	}
	d := pan + string([]byte{'0' + psn>>4, '0' + psn&0xF})
	if len(d) > 16 {
		d = d[len(d)-16:]
	}
	for len(d) < 16 {
		d = "0" + d
	}
	for i := range 8 {
		y[i] = (d[2*i]-'0')<<4 | (d[2*i+1] - '0')
	}
	return y, nil
}

// OptionADerivationData returns the 16 bytes whose TDES-ECB encryption
// under the issuer master key is the ICC master key: Y || (Y XOR FF..FF).
func OptionADerivationData(pan string, psn byte) ([16]byte, error) {
	var out [16]byte
	y, err := OptionAData(pan, psn)
	if err != nil {
		return out, err
	}
	copy(out[:], y[:])
	for i := range 8 {
		out[8+i] = ^y[i]
	}
	return out, nil
}

// DeriveICCMasterKeyA derives the ICC master key from the 16-byte issuer
// master key imk with option A: TDES-ECB of OptionADerivationData under
// imk, with odd DES parity set. The result is a new 16-byte slice.
func DeriveICCMasterKeyA(imk []byte, pan string, psn byte) ([]byte, error) {
	data, err := OptionADerivationData(pan, psn)
	if err != nil {
		return nil, fmt.Errorf("derive ICC master key: %w", err)
	}
	mk, err := ecb(imk, data[:])
	if err != nil {
		return nil, fmt.Errorf("derive ICC master key: %w", err)
	}
	SetParity(mk)
	return mk, nil
}

// ACSessionR returns R for the application cryptogram session key of the
// common session key derivation: ATC || 00 00 00 00 00 00.
func ACSessionR(atc uint16) [8]byte {
	return [8]byte{byte(atc >> 8), byte(atc)}
}

// SessionKeyData returns the 16 bytes whose TDES-ECB encryption under the
// ICC master key is the session key of the common session key derivation
// (EMV Book 2 A1.3.1): R with its third byte set to F0, then R with its
// third byte set to 0F.
func SessionKeyData(r [8]byte) [16]byte {
	var out [16]byte
	copy(out[:], r[:])
	copy(out[8:], r[:])
	out[2], out[10] = 0xF0, 0x0F
	return out
}

// DeriveSessionKey derives the common session key for R from the ICC
// master key mk (TDES-ECB of SessionKeyData). Parity is left as the
// encryption gives it; DES ignores parity bits.
func DeriveSessionKey(mk []byte, r [8]byte) ([]byte, error) {
	data := SessionKeyData(r)
	sk, err := ecb(mk, data[:])
	if err != nil {
		return nil, fmt.Errorf("derive session key: %w", err)
	}
	return sk, nil
}

// Pad2 returns data padded by ISO/IEC 9797-1 padding method 2: one 80
// byte, then 00 bytes to a multiple of 8. It always adds at least one
// byte.
func Pad2(data []byte) []byte {
	n := (len(data)/8 + 1) * 8
	out := make([]byte, n)
	copy(out, data)
	out[len(data)] = 0x80
	return out
}

// MAC returns the 8-byte ISO/IEC 9797-1 MAC algorithm 3 (the retail MAC)
// of data padded with method 2, under the 16-byte key K = KL || KR:
// single-DES CBC under KL over every block, then decrypt under KR and
// encrypt under KL on the last. This is the EMV application cryptogram.
func MAC(key, data []byte) ([8]byte, error) {
	var out [8]byte
	if len(key) != 16 {
		return out, fmt.Errorf("MAC: %d-byte key: %w", len(key), ErrKeyLength)
	}
	kl, err := des.NewCipher(key[:8])
	if err != nil {
		return out, fmt.Errorf("MAC: %w", ErrKeyLength)
	}
	kr, err := des.NewCipher(key[8:])
	if err != nil {
		return out, fmt.Errorf("MAC: %w", ErrKeyLength)
	}
	p := Pad2(data)
	var h [8]byte
	for i := 0; i < len(p); i += 8 {
		subtle.XORBytes(h[:], h[:], p[i:i+8])
		kl.Encrypt(h[:], h[:])
	}
	kr.Decrypt(h[:], h[:])
	kl.Encrypt(out[:], h[:])
	return out, nil
}

// GenerateAC returns the application cryptogram (ARQC, TC or AAC) over
// the concatenated transaction data under the session key sk: MAC.
func GenerateAC(sk, data []byte) ([8]byte, error) { return MAC(sk, data) }

// VerifyAC compares ac with GenerateAC(sk, data) in constant time; it
// returns ErrMismatch when they differ.
func VerifyAC(sk, data []byte, ac [8]byte) error {
	want, err := MAC(sk, data)
	if err != nil {
		return fmt.Errorf("verify cryptogram: %w", err)
	}
	if subtle.ConstantTimeCompare(want[:], ac[:]) != 1 {
		return ErrMismatch
	}
	return nil
}

// ARPC1Data returns the block ARPC method 1 encrypts: ARQC XOR (ARC || 00
// 00 00 00 00 00).
func ARPC1Data(arqc [8]byte, arc [2]byte) [8]byte {
	x := arqc
	x[0] ^= arc[0]
	x[1] ^= arc[1]
	return x
}

// ARPC1 returns the ARPC of method 1 (EMV Book 2 A1.4.1): TDES-ECB of
// ARPC1Data under key, which is the ICC master key or the AC session key
// as the card's application profile says.
func ARPC1(key []byte, arqc [8]byte, arc [2]byte) ([8]byte, error) {
	var out [8]byte
	d := ARPC1Data(arqc, arc)
	c, err := ecb(key, d[:])
	if err != nil {
		return out, fmt.Errorf("ARPC method 1: %w", err)
	}
	copy(out[:], c)
	return out, nil
}

// ARPC2Data returns the data ARPC method 2 MACs: ARQC || CSU ||
// proprietary authentication data (0 to 8 bytes).
func ARPC2Data(arqc [8]byte, csu [4]byte, prop []byte) ([]byte, error) {
	if len(prop) > 8 {
		return nil, fmt.Errorf("ARPC method 2: %d bytes of proprietary data, at most 8: %w", len(prop), ErrInput)
	}
	d := make([]byte, 0, 20)
	d = append(d, arqc[:]...)
	d = append(d, csu[:]...)
	return append(d, prop...), nil
}

// ARPC2 returns the 4-byte ARPC of method 2 (EMV Book 2 A1.4.2): the
// leftmost 4 bytes of MAC over ARPC2Data under the AC session key sk.
func ARPC2(sk []byte, arqc [8]byte, csu [4]byte, prop []byte) ([4]byte, error) {
	var out [4]byte
	d, err := ARPC2Data(arqc, csu, prop)
	if err != nil {
		return out, err
	}
	m, err := MAC(sk, d)
	if err != nil {
		return out, fmt.Errorf("ARPC method 2: %w", err)
	}
	copy(out[:], m[:4])
	return out, nil
}

// KCV returns the 3-byte key check value of a TDES key: the leftmost bytes
// of the encryption of 8 zero bytes.
func KCV(key []byte) ([]byte, error) {
	c, err := ecb(key, make([]byte, 8))
	if err != nil {
		return nil, fmt.Errorf("KCV: %w", err)
	}
	return c[:3], nil
}

// SetParity sets odd parity on every byte of a DES key in place.
func SetParity(k []byte) {
	for i, b := range k {
		b &^= 1
		p := b ^ b>>4
		p ^= p >> 2
		p ^= p >> 1
		if p&1 == 0 {
			b |= 1
		}
		k[i] = b
	}
}

// ecb encrypts whole blocks with the double-length TDES key k (K1 K2 K1).
func ecb(k, data []byte) ([]byte, error) {
	if len(k) != 16 {
		return nil, fmt.Errorf("%d-byte key: %w", len(k), ErrKeyLength)
	}
	if len(data)%8 != 0 {
		return nil, fmt.Errorf("%d bytes is not whole blocks: %w", len(data), ErrInput)
	}
	var k3 [24]byte
	copy(k3[:], k)
	copy(k3[16:], k[:8])
	c, err := des.NewTripleDESCipher(k3[:])
	clear(k3[:])
	if err != nil {
		return nil, fmt.Errorf("TDES key: %w", ErrKeyLength)
	}
	out := make([]byte, len(data))
	for i := 0; i < len(data); i += 8 {
		c.Encrypt(out[i:i+8], data[i:i+8])
	}
	return out, nil
}
