package cryptogram

import (
	"crypto/aes"
	"crypto/subtle"
	"fmt"
)

// AES variants (EMV 4.3/4.4 Book 2 Annex A1 with the 16-byte block
// cipher, n = 16; cryptogram version '6' in the common core definitions).
//
//   - ICC master key, option C (A1.4.3): Y is the PAN digits followed by
//     the two PSN digits (00 when the card has no 5F34), left-padded with
//     zeros to 32 digits and packed as BCD (16 bytes; a PAN has at most 19
//     digits, so nothing is cut). For a k-bit IMK, MK is the leftmost k
//     bits of AES(IMK)[Y] || AES(IMK)[Y XOR FF..FF]: AES(IMK)[Y] for
//     AES-128, both blocks cut to 24 or 32 bytes for AES-192/256. No
//     parity.
//   - Common session key (A1.3.1): R is n = 16 bytes, for the AC session
//     key ATC || 00 (14 bytes). For k = n (AES-128) SK = AES(MK)[R]; for
//     n < k <= 2n (AES-192/256) SK is the leftmost k bits of AES(MK)[F1]
//     || AES(MK)[F2], with F1 (F2) R whose third byte is F0 (0F).
//   - Application cryptogram (8.1.2, A1.2.2): ISO/IEC 9797-1 MAC algorithm
//     5 (CMAC, NIST SP 800-38B) under the session key, s = 8: the leftmost
//     8 bytes. CMAC pads internally (80 00.. and subkey K2 for an
//     incomplete last block, K1 for a complete one); there is no separate
//     EMV padding.
//   - ARPC method 1 (8.2.1): Y = ARQC XOR (ARC || 00 x6), padded with 8 zero
//     bytes to a block; the ARPC is the leftmost 8 bytes of AES(K)[Y ||
//     00 x8], K the AC session key or the ICC master key as the card's
//     profile says.
//   - ARPC method 2 (8.2.2): the leftmost 4 bytes of the CMAC of ARQC ||
//     CSU || proprietary authentication data under the AC session key.
//
// The functions below take keys of 16, 24 or 32 bytes and return
// ErrKeyLength otherwise.
//
// Sources and checks: EMV Book 2 Annex A1 as quoted by independent
// implementations found with the project's code search; EMVCo publishes no
// AES vectors. The tests check the CMAC against NIST SP 800-38B (RFC 4493)
// and option C and the AES-128 session key against the values of another
// CV '6' implementation (card42's AesVectorTest); docs/emv.md, "AES keys".

// OptionCData returns Y of ICC master key derivation option C: the PAN
// digits and the two PSN digits, left-padded with zeros to 32 digits,
// packed as BCD.
func OptionCData(pan string, psn byte) ([16]byte, error) {
	var y [16]byte
	if err := checkPAN(pan); err != nil {
		return y, fmt.Errorf("option C data: %w", err)
	}
	if psn>>4 > 9 || psn&0xF > 9 {
		return y, fmt.Errorf("option C data: %w", ErrPSN)
	}
	d := make([]byte, 32)
	for i := range d {
		d[i] = '0'
	}
	x := pan + string([]byte{'0' + psn>>4, '0' + psn&0xF})
	copy(d[32-len(x):], x)
	for i := range 16 {
		y[i] = (d[2*i]-'0')<<4 | (d[2*i+1] - '0')
	}
	return y, nil
}

// OptionCDerivationData returns the data whose AES-ECB encryption under
// an issuer master key of keyLen bytes (16, 24 or 32) begins with the ICC
// master key: Y for AES-128, Y || (Y XOR FF..FF) for longer keys.
func OptionCDerivationData(pan string, psn byte, keyLen int) ([]byte, error) {
	if err := checkAESKeyLen(keyLen); err != nil {
		return nil, fmt.Errorf("option C derivation data: %w", err)
	}
	y, err := OptionCData(pan, psn)
	if err != nil {
		return nil, err
	}
	if keyLen == 16 {
		return y[:], nil
	}
	out := make([]byte, 32)
	copy(out, y[:])
	for i := range 16 {
		out[16+i] = ^y[i]
	}
	return out, nil
}

// DeriveICCMasterKeyC derives the ICC master key from the AES issuer
// master key imk (16, 24 or 32 bytes) with option C; the result is a new
// slice as long as imk.
func DeriveICCMasterKeyC(imk []byte, pan string, psn byte) ([]byte, error) {
	if err := checkAESKeyLen(len(imk)); err != nil {
		return nil, fmt.Errorf("derive ICC master key (option C): %w", err)
	}
	data, err := OptionCDerivationData(pan, psn, len(imk))
	if err != nil {
		return nil, fmt.Errorf("derive ICC master key (option C): %w", err)
	}
	mk, err := aesECB(imk, data)
	if err != nil {
		return nil, fmt.Errorf("derive ICC master key (option C): %w", err)
	}
	return mk[:len(imk)], nil
}

// ACSessionRAES returns R for the AES application cryptogram session key:
// ATC followed by 14 zero bytes. It is ACSessionR(atc) followed by 8 zero
// bytes, as every 16-byte R of A1.3.1 is its 8-byte form so extended.
func ACSessionRAES(atc uint16) [16]byte {
	return [16]byte{byte(atc >> 8), byte(atc)}
}

// ExtendR returns the 16-byte diversification value for an AES key from
// the 8-byte one of the TDES derivation (ATC or application cryptogram
// followed by zeros): r followed by 8 zero bytes.
func ExtendR(r [8]byte) [16]byte {
	var out [16]byte
	copy(out[:], r[:])
	return out
}

// SessionKeyDataAES returns the data whose AES-ECB encryption under an ICC
// master key of keyLen bytes (16, 24 or 32) begins with the session key:
// R itself for AES-128, F1 || F2 (R with its third byte F0, then 0F)
// for AES-192 and AES-256.
func SessionKeyDataAES(r [16]byte, keyLen int) ([]byte, error) {
	if err := checkAESKeyLen(keyLen); err != nil {
		return nil, fmt.Errorf("session key data: %w", err)
	}
	if keyLen == 16 {
		return append([]byte(nil), r[:]...), nil
	}
	out := make([]byte, 32)
	copy(out, r[:])
	copy(out[16:], r[:])
	out[2], out[18] = 0xF0, 0x0F
	return out, nil
}

// DeriveSessionKeyAES derives the common session key for r from the AES
// ICC master key mk; the result is as long as mk.
func DeriveSessionKeyAES(mk []byte, r [16]byte) ([]byte, error) {
	data, err := SessionKeyDataAES(r, len(mk))
	if err != nil {
		return nil, fmt.Errorf("derive AES session key: %w", err)
	}
	sk, err := aesECB(mk, data)
	if err != nil {
		return nil, fmt.Errorf("derive AES session key: %w", err)
	}
	return sk[:len(mk)], nil
}

// CMAC returns the 16-byte AES-CMAC (NIST SP 800-38B, ISO/IEC 9797-1 MAC
// algorithm 5) of data under key.
func CMAC(key, data []byte) ([16]byte, error) {
	var out [16]byte
	if err := checkAESKeyLen(len(key)); err != nil {
		return out, fmt.Errorf("CMAC: %w", err)
	}
	c, err := aes.NewCipher(key)
	if err != nil {
		return out, fmt.Errorf("CMAC: %w", ErrKeyLength)
	}
	var l [16]byte
	c.Encrypt(l[:], l[:])
	k1 := dbl(l)
	k2 := dbl(k1)
	clear(l[:])
	n := (len(data) + 15) / 16
	complete := n > 0 && len(data)%16 == 0
	if n == 0 {
		n = 1
	}
	var last [16]byte
	rest := data[(n-1)*16:]
	copy(last[:], rest)
	if complete {
		subtle.XORBytes(last[:], last[:], k1[:])
	} else {
		last[len(rest)] = 0x80
		subtle.XORBytes(last[:], last[:], k2[:])
	}
	var h [16]byte
	for i := 0; i < n-1; i++ {
		subtle.XORBytes(h[:], h[:], data[i*16:(i+1)*16])
		c.Encrypt(h[:], h[:])
	}
	subtle.XORBytes(h[:], h[:], last[:])
	c.Encrypt(out[:], h[:])
	clear(k1[:])
	clear(k2[:])
	clear(h[:])
	clear(last[:])
	return out, nil
}

// dbl is the CMAC subkey step: a left shift by one bit of the 128-bit
// string, XOR 87 into the last byte when the bit shifted out was 1.
func dbl(b [16]byte) [16]byte {
	var out [16]byte
	carry := b[0] >> 7
	for i := range 15 {
		out[i] = b[i]<<1 | b[i+1]>>7
	}
	out[15] = b[15] << 1
	out[15] ^= 0x87 * carry
	return out
}

// MACAES returns the 8-byte AES application cryptogram MAC: the leftmost
// 8 bytes of CMAC(key, data).
func MACAES(key, data []byte) ([8]byte, error) {
	var out [8]byte
	m, err := CMAC(key, data)
	if err != nil {
		return out, err
	}
	copy(out[:], m[:8])
	return out, nil
}

// GenerateACAES returns the application cryptogram (ARQC, TC or AAC) over
// the concatenated transaction data under the AES session key sk:
// MACAES.
func GenerateACAES(sk, data []byte) ([8]byte, error) { return MACAES(sk, data) }

// VerifyACAES compares ac with GenerateACAES(sk, data) in constant time;
// it returns ErrMismatch when they differ.
func VerifyACAES(sk, data []byte, ac [8]byte) error {
	want, err := MACAES(sk, data)
	if err != nil {
		return fmt.Errorf("verify cryptogram: %w", err)
	}
	if subtle.ConstantTimeCompare(want[:], ac[:]) != 1 {
		return ErrMismatch
	}
	return nil
}

// ARPC1DataAES returns the block AES ARPC method 1 encrypts: ARQC XOR
// (ARC || 00 x6), followed by 8 zero bytes.
func ARPC1DataAES(arqc [8]byte, arc [2]byte) [16]byte {
	var out [16]byte
	d := ARPC1Data(arqc, arc)
	copy(out[:], d[:])
	return out
}

// ARPC1AES returns the ARPC of method 1 with an AES key (the ICC master
// key or the AC session key, as the card's profile says): the leftmost 8
// bytes of AES-ECB of ARPC1DataAES under key.
func ARPC1AES(key []byte, arqc [8]byte, arc [2]byte) ([8]byte, error) {
	var out [8]byte
	d := ARPC1DataAES(arqc, arc)
	c, err := aesECB(key, d[:])
	if err != nil {
		return out, fmt.Errorf("ARPC method 1 (AES): %w", err)
	}
	copy(out[:], c)
	return out, nil
}

// ARPC2AES returns the 4-byte ARPC of method 2 with an AES session key:
// the leftmost 4 bytes of CMAC over ARPC2Data under sk.
func ARPC2AES(sk []byte, arqc [8]byte, csu [4]byte, prop []byte) ([4]byte, error) {
	var out [4]byte
	d, err := ARPC2Data(arqc, csu, prop)
	if err != nil {
		return out, err
	}
	m, err := CMAC(sk, d)
	if err != nil {
		return out, fmt.Errorf("ARPC method 2 (AES): %w", err)
	}
	copy(out[:], m[:4])
	return out, nil
}

// KCVAES returns the 3-byte key check value of an AES key as the token
// computes it (hsm.Token.KCV): the leftmost bytes of the CMAC of one zero
// block.
func KCVAES(key []byte) ([]byte, error) {
	m, err := CMAC(key, make([]byte, 16))
	if err != nil {
		return nil, fmt.Errorf("KCV: %w", err)
	}
	return m[:3], nil
}

func checkAESKeyLen(n int) error {
	switch n {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%d-byte AES key, want 16, 24 or 32: %w", n, ErrKeyLength)
}

func checkPAN(pan string) error {
	if len(pan) == 0 || len(pan) > 19 {
		return fmt.Errorf("PAN of %d digits: %w", len(pan), ErrPAN)
	}
	for i := 0; i < len(pan); i++ {
		if pan[i] < '0' || pan[i] > '9' {
			return ErrPAN
		}
	}
	return nil
}

// aesECB encrypts whole 16-byte blocks with AES key k.
func aesECB(k, data []byte) ([]byte, error) {
	if err := checkAESKeyLen(len(k)); err != nil {
		return nil, err
	}
	if len(data)%16 != 0 {
		return nil, fmt.Errorf("%d bytes is not whole blocks: %w", len(data), ErrInput)
	}
	c, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("AES key: %w", ErrKeyLength)
	}
	out := make([]byte, len(data))
	for i := 0; i < len(data); i += 16 {
		c.Encrypt(out[i:i+16], data[i:i+16])
	}
	return out, nil
}
