package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"github.com/miekg/pkcs11"
)

// p256OID is the DER encoding of the P-256 curve OID 1.2.840.10045.3.1.7,
// the CKA_EC_PARAMS of a P-256 key.
var p256OID = []byte{0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07}

// GenerateECDSA generates an ECDSA P-256 key pair inside the token: a
// sensitive, non-extractable private key (sign only) and its public key
// (verify), both labelled label. It returns ErrKeyExists if the label is
// taken.
func (t *Token) GenerateECDSA(label string) error {
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label)),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256OID),
	}
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label)),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
	}
	return t.create("generate ECDSA key", label, func(s *session) error {
		_, _, err := t.ctx.GenerateKeyPair(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv)
		return err
	})
}

// Signer returns a crypto.Signer backed by the token's ECDSA P-256 private
// key label. Sign takes a SHA-256 digest and returns an ASN.1 DER
// signature, as crypto/tls and crypto/x509 expect. The Signer is safe for
// concurrent use while the Token is open.
func (t *Token) Signer(label string) (crypto.Signer, error) {
	var pub *ecdsa.PublicKey
	err := t.with(func(s *session) error {
		if _, err := t.find(s, label, pkcs11.CKO_PRIVATE_KEY); err != nil {
			return err
		}
		h, err := t.find(s, label, pkcs11.CKO_PUBLIC_KEY)
		if err != nil {
			return fmt.Errorf("public half: %w", err)
		}
		a, err := t.ctx.GetAttributeValue(s.h, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return fmt.Errorf("read public key: %w", err)
		}
		pub, err = parseECPoint(a[0].Value, a[1].Value)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("signer %q: %w", label, err)
	}
	return &signer{t: t, label: label, pub: pub}, nil
}

// parseECPoint decodes CKA_EC_POINT (a DER OCTET STRING holding the
// uncompressed point) of a P-256 key.
func parseECPoint(params, point []byte) (*ecdsa.PublicKey, error) {
	if string(params) != string(p256OID) {
		return nil, fmt.Errorf("EC key is not on P-256: %w", ErrKeyType)
	}
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) != 0 {
		raw = point // some modules return the bare point
	}
	if len(raw) != 65 || raw[0] != 4 {
		return nil, fmt.Errorf("EC point of %d bytes is not an uncompressed P-256 point: %w", len(raw), ErrKeyType)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("EC point not on curve: %w", ErrKeyType)
	}
	return pub, nil
}

type signer struct {
	t     *Token
	label string
	pub   *ecdsa.PublicKey
}

func (s *signer) Public() crypto.PublicKey { return s.pub }

// Sign signs a digest of opts.HashFunc() (SHA-256, or SHA-384/512 when
// given, which CKM_ECDSA treats as a raw digest); rand is unused, the
// token draws its own nonce.
func (s *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 && len(digest) != opts.HashFunc().Size() {
		return nil, fmt.Errorf("sign with %q: digest of %d bytes for %v: %w", s.label, len(digest), opts.HashFunc(), ErrInput)
	}
	rs, err := s.t.signOp("ECDSA sign", s.label, pkcs11.CKO_PRIVATE_KEY, pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest)
	if err != nil {
		return nil, err
	}
	if len(rs) != 64 {
		return nil, fmt.Errorf("sign with %q: token returned %d signature bytes, want 64", s.label, len(rs))
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])})
}
