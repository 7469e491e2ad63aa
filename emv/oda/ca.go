package oda

import (
	"crypto/rsa"
	"fmt"
	"time"

	"github.com/posgate/posgate/emv/tlv"
)

// CA is a test certification authority: it holds an RSA private key in
// process memory and certifies issuer public keys (EMV Book 2 section 5.1,
// format 02). It exists for the simulator and tests; a real payment
// system's CA key never leaves its HSM. A CA is safe for concurrent use.
type CA struct {
	rid   [5]byte
	index byte
	key   *rsa.PrivateKey
}

// NewCA returns a CA for the registered application provider identifier
// rid with CA public key index index (tag 8F). The key's modulus must be a
// whole number of bytes long (its bit length a multiple of 8) and at least
// 64 bytes; the key is retained.
func NewCA(rid [5]byte, index byte, key *rsa.PrivateKey) (*CA, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	return &CA{rid: rid, index: index, key: key}, nil
}

func checkKey(k *rsa.PrivateKey) error {
	if k == nil || k.N == nil || k.D == nil {
		return fmt.Errorf("no key: %w", ErrKeySize)
	}
	if k.N.BitLen()%8 != 0 || k.N.BitLen() < 512 || k.N.BitLen() > 1984 {
		return fmt.Errorf("modulus of %d bits (want 512..1984, whole bytes): %w", k.N.BitLen(), ErrKeySize)
	}
	return nil
}

// PublicKey returns the CA public key a terminal loads for this RID and
// index.
func (ca *CA) PublicKey() CAPublicKey {
	return CAPublicKey{RID: ca.rid, Index: ca.index, Key: &ca.key.PublicKey}
}

// CertTemplate holds the data of a certificate apart from the key.
type CertTemplate struct {
	// Subject is the issuer identifier (3 to 8 leading PAN digits) for
	// an issuer certificate, the application PAN's digits for an ICC
	// certificate.
	Subject string
	// Expiry is the certificate's expiration month (the certificate is
	// valid through the end of it). Years 2000..2049 only (MMYY).
	Expiry time.Time
	// Serial is the certificate serial number.
	Serial [3]byte
}

// Issuer is a test issuer: its RSA private key and the certificate the CA
// made for its public key. Safe for concurrent use.
type Issuer struct {
	key       *rsa.PrivateKey
	caIndex   byte
	cert      []byte
	remainder []byte
	exponent  []byte
}

// CertifyIssuer makes the issuer public key certificate (tag 90, format
// 02) for key under t, with the remainder (tag 92) when the modulus is
// longer than the certificate holds, and returns the Issuer that signs
// ICC certificates and static data with key. The issuer modulus must not
// be longer than the CA's.
func (ca *CA) CertifyIssuer(key *rsa.PrivateKey, t CertTemplate) (*Issuer, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("certify issuer key: %w", err)
	}
	id, err := packDigits(t.Subject, 4, 3, 8)
	if err != nil {
		return nil, fmt.Errorf("certify issuer key: issuer identifier: %w", err)
	}
	cert, rem, err := certify(ca.key, FormatIssuerCert, id, &key.PublicKey, t, issuerCertOverhead, nil)
	if err != nil {
		return nil, fmt.Errorf("certify issuer key: %w", err)
	}
	return &Issuer{key: key, caIndex: ca.index, cert: cert, remainder: rem, exponent: exponentBytes(key.E)}, nil
}

// certify builds and signs a format 02 or 04 certificate of pub under
// signer; extra is hashed after the remainder and exponent (the static
// data for an ICC certificate).
func certify(signer *rsa.PrivateKey, format byte, subject []byte, pub *rsa.PublicKey, t CertTemplate, overhead int, extra []byte) (cert, rem []byte, err error) {
	nSigner := modLen(&signer.PublicKey)
	nKey := modLen(pub)
	if nKey > nSigner {
		return nil, nil, fmt.Errorf("%d-byte key under a %d-byte signer: %w", nKey, nSigner, ErrKeySize)
	}
	exp, err := packExpiry(t.Expiry)
	if err != nil {
		return nil, nil, err
	}
	room := nSigner - overhead
	mod := pub.N.FillBytes(make([]byte, nKey))
	field := make([]byte, room)
	for i := range field {
		field[i] = pad
	}
	if nKey <= room {
		copy(field, mod)
	} else {
		copy(field, mod[:room])
		rem = mod[room:]
	}
	e := exponentBytes(pub.E)
	c := &Certificate{
		Format: format, Subject: subject, Expiry: exp, Serial: t.Serial,
		HashAlg: HashSHA1, KeyAlg: AlgRSA, KeyLen: byte(nKey), ExpLen: byte(len(e)),
		KeyField: field,
	}
	c.Hash = sha1Of(c.hashedPart(), rem, e, extra)
	cert, err = signRSA(signer, c.Encode())
	if err != nil {
		return nil, nil, err
	}
	return cert, rem, nil
}

// TLVs returns the issuer's data for a card record: 8F (CA index), 90,
// 92 (only when there is a remainder) and 9F32.
func (is *Issuer) TLVs() []tlv.TLV {
	out := []tlv.TLV{tlv.New(tagCAIndex, []byte{is.caIndex}), tlv.New(tagIssuerCert, is.cert)}
	if len(is.remainder) > 0 {
		out = append(out, tlv.New(tagIssuerRemainder, is.remainder))
	}
	return append(out, tlv.New(tagIssuerExponent, is.exponent))
}

// ICCCertificate is an ICC public key certificate with its remainder and
// exponent, as they go into a card's records.
type ICCCertificate struct {
	Cert, Remainder, Exponent []byte
}

// TLVs returns 9F46, 9F48 (only when there is a remainder) and 9F47.
func (c ICCCertificate) TLVs() []tlv.TLV {
	out := []tlv.TLV{tlv.New(tagICCCert, c.Cert)}
	if len(c.Remainder) > 0 {
		out = append(out, tlv.New(tagICCRemainder, c.Remainder))
	}
	return append(out, tlv.New(tagICCExponent, c.Exponent))
}

// CertifyICC makes the ICC public key certificate (tag 9F46, format 04)
// for pub: t.Subject is the application PAN's digits, staticData the
// static data to be authenticated (StaticData's result), which the
// certificate's hash covers. The ICC modulus must not be longer than the
// issuer's.
func (is *Issuer) CertifyICC(pub *rsa.PublicKey, t CertTemplate, staticData []byte) (ICCCertificate, error) {
	if pub == nil || pub.N == nil || pub.N.BitLen()%8 != 0 {
		return ICCCertificate{}, fmt.Errorf("certify ICC key: %w", ErrKeySize)
	}
	pan, err := packDigits(t.Subject, 10, 12, 19)
	if err != nil {
		return ICCCertificate{}, fmt.Errorf("certify ICC key: PAN: %w", err)
	}
	cert, rem, err := certify(is.key, FormatICCCert, pan, pub, t, iccCertOverhead, staticData)
	if err != nil {
		return ICCCertificate{}, fmt.Errorf("certify ICC key: %w", err)
	}
	return ICCCertificate{Cert: cert, Remainder: rem, Exponent: exponentBytes(pub.E)}, nil
}

// SignStaticData makes the signed static application data (tag 93,
// format 03) over staticData with data authentication code dac.
func (is *Issuer) SignStaticData(dac [2]byte, staticData []byte) ([]byte, error) {
	n := modLen(&is.key.PublicKey)
	s := &SignedData{Format: FormatSignedStatic, HashAlg: HashSHA1, DAC: dac, Pad: padding(n - signedStaticFixed)}
	s.Hash = sha1Of(s.hashedPart(), staticData)
	sig, err := signRSA(is.key, s.Encode())
	if err != nil {
		return nil, fmt.Errorf("sign static data: %w", err)
	}
	return sig, nil
}

// SignDynamicData makes signed dynamic application data (tag 9F4B,
// format 05) under the ICC private key: iccDynamic is the ICC dynamic
// data (for DDA, the length of the ICC dynamic number then the number),
// ddolData the terminal's data built for the card's DDOL. The simulated
// card calls it for INTERNAL AUTHENTICATE.
func SignDynamicData(icc *rsa.PrivateKey, iccDynamic, ddolData []byte) ([]byte, error) {
	if err := checkKey(icc); err != nil {
		return nil, fmt.Errorf("sign dynamic data: %w", err)
	}
	n := modLen(&icc.PublicKey)
	if len(iccDynamic) > n-signedDynamicFixed || len(iccDynamic) > 255 {
		return nil, fmt.Errorf("sign dynamic data: %d bytes of dynamic data under a %d-byte key: %w", len(iccDynamic), n, ErrKeySize)
	}
	s := &SignedData{Format: FormatSignedDynamic, HashAlg: HashSHA1, Dynamic: iccDynamic, Pad: padding(n - signedDynamicFixed - len(iccDynamic))}
	s.Hash = sha1Of(s.hashedPart(), ddolData)
	sig, err := signRSA(icc, s.Encode())
	if err != nil {
		return nil, fmt.Errorf("sign dynamic data: %w", err)
	}
	return sig, nil
}

func padding(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = pad
	}
	return b
}

// packDigits packs min..max decimal digits left-justified into n bytes,
// F-padded.
func packDigits(s string, n, min, max int) ([]byte, error) {
	if len(s) < min || len(s) > max || len(s) > 2*n {
		return nil, fmt.Errorf("%d digits, want %d to %d: %w", len(s), min, max, ErrCertificate)
	}
	out := padF(n)
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return nil, fmt.Errorf("non-digit at %d: %w", i, ErrCertificate)
		}
		if i%2 == 0 {
			out[i/2] = d<<4 | 0x0F
		} else {
			out[i/2] = out[i/2]&0xF0 | d
		}
	}
	return out, nil
}

func padF(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xFF
	}
	return b
}

// packExpiry encodes t's month as MMYY BCD.
func packExpiry(t time.Time) ([2]byte, error) {
	y := t.Year()
	if y < 2000 || y > 2049 {
		return [2]byte{}, fmt.Errorf("certificate expiry year %d outside 2000..2049: %w", y, ErrCertificate)
	}
	m := int(t.Month())
	yy := y % 100
	return [2]byte{byte(m/10<<4 | m%10), byte(yy/10<<4 | yy%10)}, nil
}
