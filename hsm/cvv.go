package hsm

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Card verification values in the token (the Visa CVV algorithm, which
// Mastercard uses for its CVC as well).
//
// The card verification key pair CVK-A || CVK-B is one DES2 token object
// (encrypt only). SoftHSM has no single DES and no retail-MAC mechanism,
// so importing a CVK also creates label+CVKLeftSuffix holding CVK-A ||
// CVK-A, a DES2 object that computes single DES under CVK-A; the value is
// then ISO 9797-1 MAC algorithm 3 (Token.retailMAC, shared with the EMV
// cryptograms) over PAN || expiry (YYMM) || service code, right-padded
// with zero digits to 32 nibbles (16 bytes), decimalised: the decimal
// digits of the MAC's hex form left to right, then its hex digits A-F
// minus 10 left to right; the first three are the CVV. CVV2 is the same
// with service code 000, iCVV (track 2 equivalent on the chip) with 999.
//
// What is in process memory: the PAN, expiry and service code (the caller
// has them), the 8-byte chaining value (single DES of the first block
// under CVK-A) and the MAC whose first digits are the CVV. Keys never
// leave the token.

// CVKLeftSuffix is appended to a CVK's label to name the object holding
// CVK-A || CVK-A.
const CVKLeftSuffix = ".a"

// Service codes of the card verification values other than the magnetic
// stripe's CVV (whose service code is the track's).
const (
	// ServiceCodeCVV2 is the service code of CVV2, the value printed on
	// the card.
	ServiceCodeCVV2 = "000"
	// ServiceCodeICVV is the service code of iCVV, the value in the chip's
	// track 2 equivalent data.
	ServiceCodeICVV = "999"
)

// ErrCVV is returned by VerifyCVV when the value does not match.
var ErrCVV = errors.New("hsm: card verification value does not verify")

// ImportCVK imports a card verification key pair (16 bytes, CVK-A ||
// CVK-B) as two encrypt-only, sensitive, non-extractable objects: label
// (the pair) and label+CVKLeftSuffix (CVK-A || CVK-A). It returns
// ErrKeyExists when either label is taken. The caller should wipe value.
func (t *Token) ImportCVK(label string, value []byte) error {
	if len(value) != 16 {
		return fmt.Errorf("import CVK %q of %d bytes (want 16): %w", label, len(value), ErrKeyLength)
	}
	if err := checkLabel(label + CVKLeftSuffix); err != nil {
		return err
	}
	left := make([]byte, 16)
	defer clear(left)
	copy(left, value[:8])
	copy(left[8:], value[:8])
	return t.create("import CVK", label, func(s *session) error {
		taken, err := t.labelTaken(s, label+CVKLeftSuffix)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("left half %q: %w", label+CVKLeftSuffix, ErrKeyExists)
		}
		h, err := t.ctx.CreateObject(s.h, append(secretTemplate(label, pkcs11.CKK_DES2, UseEncrypt),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, value)))
		if err != nil {
			return err
		}
		if _, err := t.ctx.CreateObject(s.h, append(secretTemplate(label+CVKLeftSuffix, pkcs11.CKK_DES2, UseEncrypt),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, left))); err != nil {
			_ = t.ctx.DestroyObject(s.h, h)
			return err
		}
		t.forget(label + CVKLeftSuffix)
		return nil
	})
}

// CVVBlock returns the 16 bytes the CVV algorithm MACs: the digits of pan
// (12 to 19), expiry (4 digits, YYMM) and serviceCode (3 digits) read as
// nibbles, right-padded with zero nibbles. It reports ErrInput for any
// other input; the error names the field, never its value.
func CVVBlock(pan, expiry, serviceCode string) ([16]byte, error) {
	var out [16]byte
	switch {
	case len(pan) < 12 || len(pan) > 19 || !digits(pan):
		return out, fmt.Errorf("CVV input: PAN must be 12 to 19 digits: %w", ErrInput)
	case len(expiry) != 4 || !digits(expiry):
		return out, fmt.Errorf("CVV input: expiry must be 4 digits (YYMM): %w", ErrInput)
	case len(serviceCode) != 3 || !digits(serviceCode):
		return out, fmt.Errorf("CVV input: service code must be 3 digits: %w", ErrInput)
	}
	var buf [32]byte
	n := copy(buf[:], pan)
	n += copy(buf[n:], expiry)
	n += copy(buf[n:], serviceCode)
	for i := n; i < 32; i++ {
		buf[i] = '0'
	}
	if _, err := hex.Decode(out[:], buf[:]); err != nil {
		return out, fmt.Errorf("CVV input: %w", ErrInput)
	}
	clear(buf[:])
	return out, nil
}

// DecimalizeCVV returns the first n (1 to 16) digits of the CVV
// decimalisation of mac: its hex digits 0-9 left to right, then its hex
// digits A-F minus 10 left to right.
func DecimalizeCVV(mac [8]byte, n int) string {
	h := hex.EncodeToString(mac[:])
	out := make([]byte, 0, 16)
	for i := 0; i < len(h); i++ {
		if h[i] <= '9' {
			out = append(out, h[i])
		}
	}
	for i := 0; i < len(h); i++ {
		if h[i] >= 'a' {
			out = append(out, h[i]-'a'+'0')
		}
	}
	if n < 1 || n > len(out) {
		n = len(out)
	}
	return string(out[:n])
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CVV computes the 3-digit card verification value of pan, expiry (YYMM)
// and serviceCode under the CVK labelled cvkLabel (imported with
// ImportCVK), inside the token. Use ServiceCodeCVV2 for CVV2 and
// ServiceCodeICVV for iCVV. The result is card data: never log it.
func (t *Token) CVV(cvkLabel, pan, expiry, serviceCode string) (string, error) {
	blk, err := CVVBlock(pan, expiry, serviceCode)
	if err != nil {
		return "", err
	}
	defer clear(blk[:])
	var mac [8]byte
	err = t.withKey(cvkLabel, pkcs11.CKO_SECRET_KEY, func(s *session, full pkcs11.ObjectHandle) error {
		left, err := t.find(s, cvkLabel+CVKLeftSuffix, pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return fmt.Errorf("CVK left half (import the CVK with ImportCVK): %w", err)
		}
		mac, err = t.retailMAC(s, left, full, blk[:])
		return err
	})
	if err != nil {
		return "", fmt.Errorf("compute CVV under %q: %w", cvkLabel, err)
	}
	defer clear(mac[:])
	return DecimalizeCVV(mac, 3), nil
}

// VerifyCVV computes the value as CVV does and compares it with cvv in
// constant time: nil when they match, ErrCVV when they do not (also for a
// cvv that is not 3 digits), another error when the token could not
// compute it.
func (t *Token) VerifyCVV(cvkLabel, pan, expiry, serviceCode, cvv string) error {
	want, err := t.CVV(cvkLabel, pan, expiry, serviceCode)
	if err != nil {
		return fmt.Errorf("verify CVV: %w", err)
	}
	if len(cvv) != 3 || subtle.ConstantTimeCompare([]byte(want), []byte(cvv)) != 1 {
		return ErrCVV
	}
	return nil
}
