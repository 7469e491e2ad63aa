package cryptogram

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"fmt"
)

// Secure messaging for issuer scripts, TDES keys (EMV 4.4 Book 2 section
// 9 and Annex A1).
//
//   - ICC master keys for secure messaging integrity (MK-SMI) and
//     confidentiality (MK-SMC) are derived from the issuer's IMK-SMI and
//     IMK-SMC with option A, as the AC one is (DeriveICCMasterKeyA).
//   - Session keys (9.2.3.1, 9.3.2.1) use the common session key
//     derivation of A1.3 with R = the application cryptogram of the
//     transaction the script answers (the 8-byte ARQC): DeriveSessionKey
//     of SMSessionR.
//   - Command MAC (9.2.3, format 2): ISO/IEC 9797-1 MAC algorithm 3 with
//     padding method 2 under the SMI session key over CLA INS P1 P2 Lc ||
//     ATC || application cryptogram || command data (plaintext or
//     enciphered), Lc counting the data and the MAC. The ATC and the
//     cryptogram are in the MAC input only, never sent. The MAC length s
//     may be 4 to 8 bytes; posgate uses 8 (ScriptMACLen).
//   - Data encipherment (9.3.2, A1.1): TDES CBC with a zero IV under the
//     SMC session key over the data padded with ISO/IEC 9797-1 padding
//     method 2 (80 00..), always padded.
//
// AES secure messaging is not implemented.

// ScriptMACLen is the length of the secure messaging MAC posgate puts in
// issuer script commands.
const ScriptMACLen = 8

// SMSessionR returns R of the secure messaging session keys (SMI and
// SMC) for a transaction: its application cryptogram (the ARQC).
func SMSessionR(ac [8]byte) [8]byte { return ac }

// ScriptMACData returns the data the MAC of an issuer script command
// covers: CLA INS P1 P2, Lc (len(data) + ScriptMACLen), the ATC, the
// application cryptogram, then data. Commands whose data and MAC exceed
// 255 bytes are refused with ErrInput.
func ScriptMACData(header [4]byte, atc uint16, ac [8]byte, data []byte) ([]byte, error) {
	lc := len(data) + ScriptMACLen
	if lc > 255 {
		return nil, fmt.Errorf("script MAC data: %d bytes of command data: %w", len(data), ErrInput)
	}
	out := make([]byte, 0, 5+2+8+len(data))
	out = append(out, header[:]...)
	out = append(out, byte(lc), byte(atc>>8), byte(atc))
	out = append(out, ac[:]...)
	return append(out, data...), nil
}

// ScriptMAC returns the 8-byte MAC of an issuer script command under the
// SMI session key sk: MAC over ScriptMACData.
func ScriptMAC(sk []byte, header [4]byte, atc uint16, ac [8]byte, data []byte) ([8]byte, error) {
	d, err := ScriptMACData(header, atc, ac, data)
	if err != nil {
		return [8]byte{}, err
	}
	m, err := MAC(sk, d)
	if err != nil {
		return m, fmt.Errorf("script MAC: %w", err)
	}
	return m, nil
}

// VerifyScriptMAC compares mac with ScriptMAC in constant time; it
// returns ErrMismatch when they differ.
func VerifyScriptMAC(sk []byte, header [4]byte, atc uint16, ac [8]byte, data []byte, mac [8]byte) error {
	want, err := ScriptMAC(sk, header, atc, ac, data)
	if err != nil {
		return fmt.Errorf("verify script MAC: %w", err)
	}
	if subtle.ConstantTimeCompare(want[:], mac[:]) != 1 {
		return ErrMismatch
	}
	return nil
}

// EncipherScriptData enciphers issuer script command data under the SMC
// session key sk: TDES CBC, zero IV, over Pad2(plain). The result is a
// new slice of whole 8-byte blocks.
func EncipherScriptData(sk, plain []byte) ([]byte, error) {
	c, err := tdes(sk)
	if err != nil {
		return nil, fmt.Errorf("encipher script data: %w", err)
	}
	p := Pad2(plain)
	cipher.NewCBCEncrypter(c, make([]byte, 8)).CryptBlocks(p, p)
	return p, nil
}

// DecipherScriptData reverses EncipherScriptData: it deciphers ct under
// the SMC session key sk and removes the padding. It returns ErrInput
// when ct is not whole blocks or its padding is not method 2's.
func DecipherScriptData(sk, ct []byte) ([]byte, error) {
	if len(ct) == 0 || len(ct)%8 != 0 {
		return nil, fmt.Errorf("decipher script data of %d bytes: %w", len(ct), ErrInput)
	}
	c, err := tdes(sk)
	if err != nil {
		return nil, fmt.Errorf("decipher script data: %w", err)
	}
	p := make([]byte, len(ct))
	cipher.NewCBCDecrypter(c, make([]byte, 8)).CryptBlocks(p, ct)
	i := len(p) - 1
	for i >= 0 && i >= len(p)-8 && p[i] == 0 {
		i--
	}
	if i < len(p)-8 || p[i] != 0x80 {
		clear(p)
		return nil, fmt.Errorf("decipher script data: bad padding: %w", ErrInput)
	}
	return p[:i], nil
}

// tdes returns the TDES cipher of the double-length key k (K1 K2 K1).
func tdes(k []byte) (cipher.Block, error) {
	if len(k) != 16 {
		return nil, fmt.Errorf("%d-byte key: %w", len(k), ErrKeyLength)
	}
	var k3 [24]byte
	copy(k3[:], k)
	copy(k3[16:], k[:8])
	c, err := des.NewTripleDESCipher(k3[:])
	clear(k3[:])
	if err != nil {
		return nil, fmt.Errorf("TDES key: %w", ErrKeyLength)
	}
	return c, nil
}
