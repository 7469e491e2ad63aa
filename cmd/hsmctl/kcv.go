package main

import (
	"crypto/aes"
	"crypto/des"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/posgate/posgate/hsm"
)

// KCV methods, named in every output that shows a KCV. They are the rules
// of hsm.Token.KCV, so a value computed here in software matches the one
// the token computes for the same key.
const (
	kcvMethodAES  = "AES-CMAC over one zero block, first 3 bytes"
	kcvMethodTDES = "TDES-ECB of 8 zero bytes, first 3 bytes"
	kcvMethodHMAC = "HMAC-SHA256 over 16 zero bytes, first 3 bytes"
)

func kcvMethod(kind hsm.KeyKind) string {
	switch kind {
	case hsm.KindAES:
		return kcvMethodAES
	case hsm.KindTDES, hsm.KindTDESBDK:
		return kcvMethodTDES
	case hsm.KindHMAC:
		return kcvMethodHMAC
	}
	return ""
}

// softKCV computes, in process memory, the 3-byte check value of a clear
// key of kind by the rules of hsm.Token.KCV. It is used only for values
// that are in clear in this process anyway: ceremony components, the
// fingerprint key read from its components file, and the initial key at
// injection.
func softKCV(kind hsm.KeyKind, k []byte) (string, error) {
	switch kind {
	case hsm.KindAES:
		c, err := aes.NewCipher(k)
		if err != nil {
			return "", fmt.Errorf("AES key of %d bytes: %w", len(k), hsm.ErrKeyLength)
		}
		mac, err := cmacZeroBlock(func(dst, src []byte) error { c.Encrypt(dst, src); return nil })
		if err != nil {
			return "", err
		}
		return kcvHex(mac), nil
	case hsm.KindTDES, hsm.KindTDESBDK:
		k3, err := tdes3(k)
		if err != nil {
			return "", err
		}
		defer clear(k3)
		c, err := des.NewTripleDESCipher(k3)
		if err != nil {
			return "", fmt.Errorf("TDES key: %w", hsm.ErrKeyLength)
		}
		out := make([]byte, 8)
		c.Encrypt(out, out)
		return kcvHex(out), nil
	case hsm.KindHMAC:
		m := hmac.New(sha256.New, k)
		m.Write(make([]byte, 16))
		return kcvHex(m.Sum(nil)), nil
	}
	return "", fmt.Errorf("%v keys have no KCV: %w", kind, hsm.ErrKeyType)
}

// tdes3 expands a double-length TDES key to K1K2K1; a triple-length key is
// copied. The caller wipes the result.
func tdes3(k []byte) ([]byte, error) {
	switch len(k) {
	case 16:
		return append(append(make([]byte, 0, 24), k...), k[:8]...), nil
	case 24:
		return append([]byte(nil), k...), nil
	}
	return nil, fmt.Errorf("TDES key of %d bytes (want 16 or 24): %w", len(k), hsm.ErrKeyLength)
}

// cmacZeroBlock returns AES-CMAC (NIST SP 800-38B) of one all-zero block
// given only the block encryption: L = E(0), K1 = dbl(L), and since the
// message is one complete block, the MAC is E(0 XOR K1) = E(K1). This lets
// a key that may only encrypt (a DUKPT data or PIN working key in the
// token) show the same KCV as hsm.Token.KCV gives a CMAC key.
func cmacZeroBlock(encrypt func(dst, src []byte) error) ([]byte, error) {
	l := make([]byte, 16)
	if err := encrypt(l, l); err != nil {
		return nil, err
	}
	k1 := make([]byte, 16)
	for i := 0; i < 15; i++ {
		k1[i] = l[i]<<1 | l[i+1]>>7
	}
	k1[15] = l[15] << 1
	if l[0]&0x80 != 0 {
		k1[15] ^= 0x87
	}
	clear(l)
	if err := encrypt(k1, k1); err != nil {
		return nil, err
	}
	return k1, nil
}

func kcvHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b[:3])) }

// parseKCV parses a KCV given by a custodian: 4 or 6 hex digits (2 or 3
// leading bytes of the check value).
func parseKCV(what, s string) ([]byte, error) {
	return parseHex(what, s, 2, 3)
}
