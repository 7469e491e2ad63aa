package hsm

import (
	"crypto/des"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/pinblock"
)

// Issuer PIN verification with the Visa PIN verification value (PVV).
//
// The PIN verification key pair PVK-A || PVK-B is one encrypt-only DES2
// token object (ImportPVK). The transformed security parameter (TSP) is
// the 11 rightmost PAN digits excluding the check digit, the PIN
// verification key index (PVKI, one digit 0-9) and the first 4 PIN digits:
// 16 digits read as 8 bytes. The token encrypts the TSP under the PVK
// (CKM_DES3_ECB, two-key TDES); the PVV is the first 4 digits of the
// decimalisation of the result: its hex digits 0-9 left to right, then its
// hex digits A-F minus 10 left to right (DecimalizeCVV).
//
// What is in process memory: the PAN and PVKI, the TSP (which contains the
// first 4 PIN digits) and the encrypted TSP, whose first decimal digits are
// the PVV. For VerifyPVVFromDUKPTPINBlock also the clear format 4 PIN field
// (see that method and docs/keys.md, "Issuer PIN verification"). These
// buffers are wiped before the call returns. The PVK and the DUKPT keys
// never leave the token.

// ErrPIN is returned by VerifyPVV and VerifyPVVFromDUKPTPINBlock when the
// PIN does not match the PVV.
var ErrPIN = errors.New("hsm: PIN does not verify")

// ImportPVK imports a PIN verification key pair (16 bytes, PVK-A || PVK-B)
// as an encrypt-only, sensitive, non-extractable DES2 object labelled
// label. It returns ErrKeyExists when the label is taken. The caller
// should wipe value.
func (t *Token) ImportPVK(label string, value []byte) error {
	if len(value) != 16 {
		return fmt.Errorf("import PVK %q of %d bytes (want 16): %w", label, len(value), ErrKeyLength)
	}
	return t.importSecret("import PVK", label, pkcs11.CKK_DES2, value, UseEncrypt)
}

// PVVTSP returns the 8-byte transformed security parameter of the Visa PVV
// algorithm: the 11 PAN digits before the check digit, pvki (0 to 9) and
// the first 4 digits of pin, as 16 nibbles. pan must be 12 to 19 digits and
// pin 4 to 12 digits. It reports ErrInput otherwise; the error names the
// field, never its value. The result contains PIN digits: wipe it.
func PVVTSP(pan string, pvki int, pin pinblock.PIN) ([8]byte, error) {
	var tsp [8]byte
	if err := checkPVVInput(pan, pvki); err != nil {
		return tsp, err
	}
	d := pin.Digits()
	if len(d) < 4 || len(d) > 12 || !digits(d) {
		return tsp, fmt.Errorf("PVV input: PIN must be 4 to 12 digits: %w", ErrInput)
	}
	var p [4]byte
	for i := range p {
		p[i] = d[i] - '0'
	}
	tsp = buildTSP(pan, pvki, p)
	clear(p[:])
	return tsp, nil
}

func checkPVVInput(pan string, pvki int) error {
	switch {
	case len(pan) < 12 || len(pan) > 19 || !digits(pan):
		return fmt.Errorf("PVV input: PAN must be 12 to 19 digits: %w", ErrInput)
	case pvki < 0 || pvki > 9:
		return fmt.Errorf("PVV input: PVKI must be 0 to 9: %w", ErrInput)
	}
	return nil
}

// buildTSP assembles the TSP from checked inputs and the first 4 PIN
// digits as values 0-9.
func buildTSP(pan string, pvki int, pin [4]byte) [8]byte {
	var n [16]byte
	src := pan[len(pan)-12 : len(pan)-1]
	for i := 0; i < 11; i++ {
		n[i] = src[i] - '0'
	}
	n[11] = byte(pvki)
	copy(n[12:], pin[:])
	var tsp [8]byte
	for i := range tsp {
		tsp[i] = n[2*i]<<4 | n[2*i+1]
	}
	clear(n[:])
	return tsp
}

// pvvOf decimalises the encrypted TSP into the 4-digit PVV.
func pvvOf(enc []byte) string {
	var m [8]byte
	copy(m[:], enc)
	defer clear(m[:])
	return DecimalizeCVV(m, 4)
}

// SoftwarePVV computes the Visa PVV of pan, pvki and pin under a clear PVK
// (16 bytes) in process memory. It is the reference the token computation
// is tested against and a tool for test-card personalisation; production
// code uses Token.PVV so that the PVK stays in the token. The result is
// card data: never log it.
func SoftwarePVV(pvk []byte, pan string, pvki int, pin pinblock.PIN) (string, error) {
	if len(pvk) != 16 {
		return "", fmt.Errorf("software PVV: PVK of %d bytes (want 16): %w", len(pvk), ErrKeyLength)
	}
	tsp, err := PVVTSP(pan, pvki, pin)
	if err != nil {
		return "", err
	}
	defer clear(tsp[:])
	k := make([]byte, 24)
	defer clear(k)
	copy(k, pvk)
	copy(k[16:], pvk[:8])
	c, err := des.NewTripleDESCipher(k)
	if err != nil {
		return "", fmt.Errorf("software PVV: %w", ErrKeyLength)
	}
	var out [8]byte
	defer clear(out[:])
	c.Encrypt(out[:], tsp[:])
	return pvvOf(out[:]), nil
}

// pvvHandle encrypts tsp under the PVK labelled pvkLabel in the token and
// returns the PVV.
func (t *Token) pvvToken(pvkLabel string, tsp [8]byte) (string, error) {
	var pvv string
	err := t.withKey(pvkLabel, pkcs11.CKO_SECRET_KEY, func(s *session, h pkcs11.ObjectHandle) error {
		enc, err := t.cipherHandle(s, h, true, pkcs11.NewMechanism(pkcs11.CKM_DES3_ECB, nil), tsp[:])
		if err != nil {
			return err
		}
		pvv = pvvOf(enc)
		clear(enc)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("compute PVV under %q: %w", pvkLabel, err)
	}
	return pvv, nil
}

// PVV computes the 4-digit Visa PVV of pan, pvki (0 to 9) and pin under the
// PVK labelled pvkLabel (imported with ImportPVK), inside the token. The
// result is card data: never log it.
func (t *Token) PVV(pvkLabel, pan string, pvki int, pin pinblock.PIN) (string, error) {
	tsp, err := PVVTSP(pan, pvki, pin)
	if err != nil {
		return "", err
	}
	defer clear(tsp[:])
	return t.pvvToken(pvkLabel, tsp)
}

// VerifyPVV computes the PVV as PVV does and compares it with pvv in
// constant time: nil when they match, ErrPIN when they do not (also for a
// pvv that is not 4 digits), another error when the token could not
// compute it or the input is malformed (ErrInput).
func (t *Token) VerifyPVV(pvkLabel, pan string, pvki int, pin pinblock.PIN, pvv string) error {
	want, err := t.PVV(pvkLabel, pan, pvki, pin)
	if err != nil {
		return fmt.Errorf("verify PVV: %w", err)
	}
	return comparePVV(want, pvv)
}

func comparePVV(want, got string) error {
	if len(got) != 4 || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		return ErrPIN
	}
	return nil
}

// VerifyPVVFromDUKPTPINBlock verifies the PIN in a terminal's ISO 9564
// format 4 PIN block (16 bytes, enciphered under the AES-128 DUKPT PIN
// encryption key of ksn, derived from the AES BDK bdkLabel) against pvv
// (4 digits) under the PVK labelled pvkLabel with index pvki, for the card
// pan. It returns nil when the PIN matches, ErrPIN when it does not (also
// for a pvv that is not 4 digits), an error wrapping ErrDecrypt when the
// block does not decipher to a format 4 PIN field (bad length, control
// field, PIN length or digits), ErrInput for a malformed pan or pvki, and
// another error when the token fails.
//
// What runs in the token: the derivation of the PIN key from the BDK
// (AESDUKPTKey, all C_DeriveKey), both AES-ECB decipherments of format 4,
// and the TDES encryption of the TSP under the PVK. What is in process
// memory: the intermediate block between the two decipherments, the clear
// PIN field (control, length, PIN digits, fill), the TSP (first 4 PIN
// digits) and the encrypted TSP. SoftHSM has no PIN-verify mechanism (a
// payment HSM does this as one command, e.g. payShield's translate-and-
// verify), so the clear PIN exists in this process for the few
// microseconds between the second decipherment and the PVV computation;
// every buffer holding it is a byte slice wiped before return, and no
// string holding PIN digits is made. See docs/keys.md.
func (t *Token) VerifyPVVFromDUKPTPINBlock(bdkLabel string, ksn dukpt.AESKSN, pinBlock []byte, pan, pvkLabel string, pvki int, pvv string) error {
	if err := checkPVVInput(pan, pvki); err != nil {
		return fmt.Errorf("verify PIN block: %w", err)
	}
	if len(pinBlock) != pinblock.Format4Size {
		return fmt.Errorf("verify PIN block: block of %d bytes (want %d): %w", len(pinBlock), pinblock.Format4Size, ErrDecrypt)
	}
	panField, err := pinblock.PANField4(pan)
	if err != nil {
		return fmt.Errorf("verify PIN block: PAN field: %w", ErrInput)
	}
	key, err := t.AESDUKPTKey(bdkLabel, ksn, dukpt.UsagePINEncryption, dukpt.AlgAES128)
	if err != nil {
		return fmt.Errorf("verify PIN block: derive PIN key: %w", err)
	}
	defer func() { _ = key.Destroy() }()
	mid, err := key.Decrypt(nil, pinBlock)
	if err != nil {
		return fmt.Errorf("verify PIN block: decipher: %w", err)
	}
	for i := range mid {
		mid[i] ^= panField[i]
	}
	field, err := key.Decrypt(nil, mid)
	clear(mid)
	if err != nil {
		return fmt.Errorf("verify PIN block: decipher: %w", err)
	}
	defer clear(field)
	pin, err := pinDigits4(field)
	if err != nil {
		return fmt.Errorf("verify PIN block: %w", err)
	}
	tsp := buildTSP(pan, pvki, pin)
	clear(pin[:])
	defer clear(tsp[:])
	want, err := t.pvvToken(pvkLabel, tsp)
	if err != nil {
		return fmt.Errorf("verify PIN block: %w", err)
	}
	return comparePVV(want, pvv)
}

// pinDigits4 checks a clear format 4 PIN field (control 4, PIN length 4 to
// 12, digit nibbles, fill A) and returns its first 4 PIN digits as values.
// Errors wrap ErrDecrypt and carry no nibble values.
func pinDigits4(f []byte) ([4]byte, error) {
	var p [4]byte
	nib := func(i int) byte {
		if i%2 == 0 {
			return f[i/2] >> 4
		}
		return f[i/2] & 0x0f
	}
	if len(f) != pinblock.Format4Size || nib(0) != 4 {
		return p, fmt.Errorf("format 4 control field: %w", ErrDecrypt)
	}
	n := int(nib(1))
	if n < 4 || n > 12 {
		return p, fmt.Errorf("format 4 PIN length: %w", ErrDecrypt)
	}
	for i := 0; i < n; i++ {
		if nib(2+i) > 9 {
			return p, fmt.Errorf("format 4 PIN digit: %w", ErrDecrypt)
		}
	}
	for i := 2 + n; i < 16; i++ {
		if nib(i) != 0x0a {
			return p, fmt.Errorf("format 4 fill: %w", ErrDecrypt)
		}
	}
	for i := range p {
		p[i] = nib(2 + i)
	}
	return p, nil
}
