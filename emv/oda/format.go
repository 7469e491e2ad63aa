package oda

import (
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // EMV Book 2 hash algorithm indicator 01 is SHA-1.
	"fmt"
	"math/big"
)

// Recovered-data framing, EMV 4.4 Book 2 sections 5 and 6.
const (
	header  = 0x6A // recovered data header
	trailer = 0xBC // recovered data trailer
	pad     = 0xBB // pad pattern inside a recovered block

	// HashSHA1 is the hash algorithm indicator for SHA-1, the only one
	// EMV Book 2 defines for these formats.
	HashSHA1 = 0x01
	// AlgRSA is the public key algorithm indicator for RSA.
	AlgRSA = 0x01

	// Certificate and signed-data formats (the byte after the header).
	FormatIssuerCert    = 0x02 // issuer public key certificate (tag 90)
	FormatSignedStatic  = 0x03 // signed static application data (tag 93)
	FormatICCCert       = 0x04 // ICC public key certificate (tag 9F46)
	FormatSignedDynamic = 0x05 // signed dynamic application data (tag 9F4B)

	hashLen = sha1.Size
)

// Fixed overheads of the recovered formats: the bytes that are not key
// digits, pad or dynamic data.
const (
	issuerCertOverhead = 36 // 6A 02 id(4) exp(2) serial(3) 01 01 len explen ... hash(20) BC
	iccCertOverhead    = 42 // 6A 04 pan(10) exp(2) serial(3) 01 01 len explen ... hash(20) BC
	signedStaticFixed  = 26 // 6A 03 01 dac(2) ... hash(20) BC
	signedDynamicFixed = 25 // 6A 05 01 ldd ... hash(20) BC
)

// Certificate is a recovered public key certificate: an issuer
// certificate (format 02, tag 90 recovered with the CA key) or an ICC
// certificate (format 04, tag 9F46 recovered with the issuer key). Its
// fields are the bytes of the recovered block, unchecked beyond their
// layout; Encode gives the block back exactly.
type Certificate struct {
	// Format is FormatIssuerCert or FormatICCCert.
	Format byte
	// Subject is the issuer identifier (4 bytes: leftmost 3 to 8 PAN
	// digits, F-padded) for an issuer certificate, the application PAN
	// (10 bytes, F-padded) for an ICC certificate.
	Subject []byte
	// Expiry is the certificate expiration date, MMYY in BCD.
	Expiry [2]byte
	// Serial is the certificate serial number.
	Serial [3]byte
	// HashAlg and KeyAlg are the hash and public key algorithm indicators.
	HashAlg, KeyAlg byte
	// KeyLen is the certified key's modulus length in bytes; ExpLen its
	// exponent's length.
	KeyLen, ExpLen byte
	// KeyField is the modulus or its leftmost bytes, padded with BB, as
	// long as the recovering key's modulus less the overhead.
	KeyField []byte
	// Hash is the SHA-1 hash result carried in the certificate.
	Hash [sha1.Size]byte
}

func subjectLen(format byte) int {
	if format == FormatICCCert {
		return 10
	}
	return 4
}

// ParseCertificate splits a recovered certificate block (header 6A,
// format 02 or 04, trailer BC) into its fields. It checks the framing
// only; Verifier checks hashes, dates and identities.
func ParseCertificate(rec []byte) (*Certificate, error) {
	if len(rec) < 2 || rec[0] != header || rec[len(rec)-1] != trailer {
		return nil, fmt.Errorf("parse certificate: %w", ErrRecoveredFormat)
	}
	f := rec[1]
	if f != FormatIssuerCert && f != FormatICCCert {
		return nil, fmt.Errorf("parse certificate: format %02X: %w", f, ErrRecoveredFormat)
	}
	sl := subjectLen(f)
	over := issuerCertOverhead
	if f == FormatICCCert {
		over = iccCertOverhead
	}
	if len(rec) < over+1 {
		return nil, fmt.Errorf("parse certificate: %d bytes: %w", len(rec), ErrRecoveredFormat)
	}
	c := &Certificate{Format: f, Subject: append([]byte(nil), rec[2:2+sl]...)}
	p := 2 + sl
	copy(c.Expiry[:], rec[p:])
	copy(c.Serial[:], rec[p+2:])
	c.HashAlg, c.KeyAlg, c.KeyLen, c.ExpLen = rec[p+5], rec[p+6], rec[p+7], rec[p+8]
	p += 9
	end := len(rec) - 1 - hashLen
	c.KeyField = append([]byte(nil), rec[p:end]...)
	copy(c.Hash[:], rec[end:])
	return c, nil
}

// hashedPart returns the certificate's fields from the format to the key
// field, the start of the data its hash covers.
func (c *Certificate) hashedPart() []byte {
	b := make([]byte, 0, 11+len(c.Subject)+len(c.KeyField))
	b = append(b, c.Format)
	b = append(b, c.Subject...)
	b = append(b, c.Expiry[:]...)
	b = append(b, c.Serial[:]...)
	b = append(b, c.HashAlg, c.KeyAlg, c.KeyLen, c.ExpLen)
	return append(b, c.KeyField...)
}

// Encode returns the recovered block: 6A, the fields, BC.
func (c *Certificate) Encode() []byte {
	b := append([]byte{header}, c.hashedPart()...)
	b = append(b, c.Hash[:]...)
	return append(b, trailer)
}

// SignedData is recovered signed application data: signed static data
// (format 03, tag 93) or signed dynamic data (format 05, tag 9F4B).
// Encode gives the block back exactly.
type SignedData struct {
	// Format is FormatSignedStatic or FormatSignedDynamic.
	Format byte
	// HashAlg is the hash algorithm indicator.
	HashAlg byte
	// DAC is the data authentication code (format 03 only).
	DAC [2]byte
	// Dynamic is the ICC dynamic data (format 05 only): for DDA, the
	// length of the ICC dynamic number then the number.
	Dynamic []byte
	// Pad is the BB padding as recovered.
	Pad []byte
	// Hash is the SHA-1 hash result carried in the block.
	Hash [sha1.Size]byte
}

// ParseSignedData splits recovered signed data (header 6A, format 03 or
// 05, trailer BC) into its fields, checking the framing only.
func ParseSignedData(rec []byte) (*SignedData, error) {
	if len(rec) < 3 || rec[0] != header || rec[len(rec)-1] != trailer {
		return nil, fmt.Errorf("parse signed data: %w", ErrRecoveredFormat)
	}
	s := &SignedData{Format: rec[1], HashAlg: rec[2]}
	end := len(rec) - 1 - hashLen
	switch s.Format {
	case FormatSignedStatic:
		if len(rec) < signedStaticFixed {
			return nil, fmt.Errorf("parse signed static data: %d bytes: %w", len(rec), ErrRecoveredFormat)
		}
		copy(s.DAC[:], rec[3:5])
		s.Pad = append([]byte(nil), rec[5:end]...)
	case FormatSignedDynamic:
		if len(rec) < signedDynamicFixed {
			return nil, fmt.Errorf("parse signed dynamic data: %d bytes: %w", len(rec), ErrRecoveredFormat)
		}
		l := int(rec[3])
		if 4+l > end {
			return nil, fmt.Errorf("parse signed dynamic data: dynamic data of %d bytes in a %d-byte block: %w", l, len(rec), ErrRecoveredFormat)
		}
		s.Dynamic = append([]byte(nil), rec[4:4+l]...)
		s.Pad = append([]byte(nil), rec[4+l:end]...)
	default:
		return nil, fmt.Errorf("parse signed data: format %02X: %w", s.Format, ErrRecoveredFormat)
	}
	copy(s.Hash[:], rec[end:])
	return s, nil
}

func (s *SignedData) hashedPart() []byte {
	b := []byte{s.Format, s.HashAlg}
	if s.Format == FormatSignedStatic {
		b = append(b, s.DAC[:]...)
	} else {
		b = append(b, byte(len(s.Dynamic)))
		b = append(b, s.Dynamic...)
	}
	return append(b, s.Pad...)
}

// Encode returns the recovered block: 6A, the fields, BC.
func (s *SignedData) Encode() []byte {
	b := append([]byte{header}, s.hashedPart()...)
	b = append(b, s.Hash[:]...)
	return append(b, trailer)
}

// ICCDynamicNumber returns the ICC dynamic number (tag 9F4C) inside DDA
// dynamic data, and false when the data is malformed.
func (s *SignedData) ICCDynamicNumber() ([]byte, bool) {
	if len(s.Dynamic) < 1 {
		return nil, false
	}
	l := int(s.Dynamic[0])
	if l < 2 || l > 8 || 1+l > len(s.Dynamic) {
		return nil, false
	}
	return s.Dynamic[1 : 1+l], true
}

// sha1Of hashes the concatenation of parts.
func sha1Of(parts ...[]byte) [sha1.Size]byte {
	h := sha1.New() //nolint:gosec // EMV Book 2 SHA-1
	for _, p := range parts {
		h.Write(p)
	}
	var out [sha1.Size]byte
	h.Sum(out[:0])
	return out
}

// modLen is the modulus length in bytes.
func modLen(k *rsa.PublicKey) int { return (k.N.BitLen() + 7) / 8 }

// recoverRSA applies the RSA public operation to sig (EMV's "recovery":
// no padding scheme, the result is the signed block itself). sig must be
// exactly as long as the modulus and numerically below it.
func recoverRSA(k *rsa.PublicKey, sig []byte) ([]byte, error) {
	n := modLen(k)
	if len(sig) != n {
		return nil, fmt.Errorf("recover: %d bytes under a %d-byte key: %w", len(sig), n, ErrSignatureLength)
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(k.N) >= 0 {
		return nil, fmt.Errorf("recover: value not below the modulus: %w", ErrSignatureLength)
	}
	m := new(big.Int).Exp(s, big.NewInt(int64(k.E)), k.N)
	return m.FillBytes(make([]byte, n)), nil
}

// signRSA applies the private operation to the block m, as long as the
// modulus (its first byte 6A keeps it below a full-length modulus).
func signRSA(k *rsa.PrivateKey, m []byte) ([]byte, error) {
	n := modLen(&k.PublicKey)
	if len(m) != n {
		return nil, fmt.Errorf("sign: %d-byte block under a %d-byte key: %w", len(m), n, ErrKeySize)
	}
	x := new(big.Int).SetBytes(m)
	if x.Cmp(k.N) >= 0 {
		return nil, fmt.Errorf("sign: block not below the modulus: %w", ErrKeySize)
	}
	var s *big.Int
	var qinv *big.Int
	if len(k.Primes) == 2 && k.Primes[0].Sign() > 0 && k.Primes[1].Sign() > 0 {
		qinv = new(big.Int).ModInverse(k.Primes[1], k.Primes[0])
	}
	if qinv != nil {
		// CRT with two primes, about three times faster than x^d mod n.
		p, q := k.Primes[0], k.Primes[1]
		dp := new(big.Int).Mod(k.D, new(big.Int).Sub(p, big.NewInt(1)))
		dq := new(big.Int).Mod(k.D, new(big.Int).Sub(q, big.NewInt(1)))
		m1 := new(big.Int).Exp(x, dp, p)
		m2 := new(big.Int).Exp(x, dq, q)
		h := m1.Sub(m1, m2)
		h.Mul(h, qinv).Mod(h, p)
		s = h.Mul(h, q).Add(h, m2)
	} else {
		s = new(big.Int).Exp(x, k.D, k.N)
	}
	return s.FillBytes(make([]byte, n)), nil
}

// exponentBytes is e as minimal big-endian bytes (EMV allows 3 and 2^16+1).
func exponentBytes(e int) []byte {
	return new(big.Int).SetInt64(int64(e)).Bytes()
}

// parseExponent reads a certificate's exponent bytes (1 to 3 bytes, odd).
func parseExponent(b []byte) (int, error) {
	if len(b) < 1 || len(b) > 3 || b[0] == 0 || b[len(b)-1]&1 == 0 {
		return 0, fmt.Errorf("public key exponent of %d bytes: %w", len(b), ErrCertificate)
	}
	e := 0
	for _, x := range b {
		e = e<<8 | int(x)
	}
	if e < 3 {
		return 0, fmt.Errorf("public key exponent too small: %w", ErrCertificate)
	}
	return e, nil
}
