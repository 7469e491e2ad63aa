package hsm

import (
	"crypto/cipher"
	"crypto/des"
	"fmt"

	"github.com/miekg/pkcs11"
	"github.com/posgate/posgate/p2pe/dukpt"
)

// Legacy TDES DUKPT (ANSI X9.24-1:2009).
//
// What stays in the token: the BDK and its C0C0C0C000000000C0C0C0C000000000
// variant (two encrypt-only DES2 objects, see ImportTDESBDK; SoftHSM has no
// CKM_XOR_BASE_AND_DATA to make the variant inside the token, so it is made
// from the custodian's clear value at import). The device's IPEK is
// computed in the token by encryption: left half CKM_DES3_ECB of the
// initial KSN's left 8 bytes under the BDK, right half the same under the
// variant.
//
// What is in process memory: the IPEK halves leave the token as the
// outputs of those two encryptions, because the future-key steps (XOR of
// data with the key's right half around single DES, X9.24-1 "non-reversible
// key generation") have no PKCS#11 mechanism: doing them in the token would
// need the key's right half as data anyway. The IPEK, the transaction key,
// the working key and the DES key schedules built from them therefore exist
// in this process for the duration of one call (no cache keeps them); the
// byte slices are wiped before return, the crypto/des key schedules are
// left to the garbage collector. The IPEK is per device, so a leak exposes
// one reader, never the BDK.

// tdesIPEK computes the IPEK of ksn under the TDES BDK bdkLabel inside the
// token and returns it (16 bytes; the caller wipes it).
func (t *Token) tdesIPEK(s *session, bdkLabel string, ksn dukpt.TDESKSN) ([]byte, error) {
	left, err := t.find(s, bdkLabel, pkcs11.CKO_SECRET_KEY)
	if err != nil {
		return nil, fmt.Errorf("TDES BDK: %w", err)
	}
	right, err := t.find(s, bdkLabel+TDESVariantSuffix, pkcs11.CKO_SECRET_KEY)
	if err != nil {
		return nil, fmt.Errorf("TDES BDK variant (import the BDK with ImportTDESBDK): %w", err)
	}
	iksn := ksn.Initial()
	ipek := make([]byte, 0, 16)
	for _, h := range []pkcs11.ObjectHandle{left, right} {
		half, err := t.cipherHandle(s, h, true, pkcs11.NewMechanism(pkcs11.CKM_DES3_ECB, nil), iksn[:8])
		if err != nil {
			clear(ipek)
			return nil, fmt.Errorf("IPEK half under %q: %w", bdkLabel, err)
		}
		ipek = append(ipek, half...)
		clear(half)
	}
	return ipek, nil
}

// TDESInitialKeyForInjection computes a legacy reader's IPEK from the TDES
// BDK bdkLabel (imported with ImportTDESBDK) and the reader's KSN inside
// the token, for the key-injection step. The caller must wipe the result.
func (t *Token) TDESInitialKeyForInjection(bdkLabel string, ksn dukpt.TDESKSN) ([]byte, error) {
	var out []byte
	err := t.with(func(s *session) error {
		var err error
		out, err = t.tdesIPEK(s, bdkLabel, ksn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("TDES initial key for %s: %w", ksn, err)
	}
	return out, nil
}

// DecryptTDESDUKPT decrypts data a legacy TDES DUKPT reader encrypted with
// the working key of usage for ksn (dukpt.TDESVariantMask lists the
// usages; which one a reader uses for track data is a per-device-profile
// setting): TDES-CBC with the 8-byte iv, or ECB when iv is nil, no padding.
// The BDK never leaves the token; the per-device keys are in process memory
// during the call (see the package's TDES notes). The plaintext is card
// data: never log it.
func (t *Token) DecryptTDESDUKPT(bdkLabel string, ksn dukpt.TDESKSN, usage dukpt.KeyUsage, iv, ciphertext []byte) ([]byte, error) {
	if err := ksn.Validate(); err != nil {
		return nil, fmt.Errorf("TDES DUKPT decrypt: KSN %s: %w", ksn, err)
	}
	if _, err := dukpt.TDESVariantMask(usage); err != nil {
		return nil, fmt.Errorf("TDES DUKPT decrypt: %w", err)
	}
	if iv != nil {
		if err := checkIV("TDES DUKPT decrypt", iv, 8); err != nil {
			return nil, err
		}
	}
	if err := checkBlocks("TDES DUKPT decrypt", ciphertext, 8); err != nil {
		return nil, err
	}
	var ipek []byte
	err := t.with(func(s *session) error {
		var err error
		ipek, err = t.tdesIPEK(s, bdkLabel, ksn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("TDES DUKPT decrypt for KSN %s: %w", ksn, err)
	}
	defer clear(ipek)
	wk, err := dukpt.TDESWorkingKey(ipek, ksn, usage)
	if err != nil {
		return nil, fmt.Errorf("TDES DUKPT decrypt for KSN %s: %w", ksn, err)
	}
	defer clear(wk)
	k3 := make([]byte, 24)
	defer clear(k3)
	copy(k3, wk)
	copy(k3[16:], wk[:8])
	c, err := des.NewTripleDESCipher(k3)
	if err != nil {
		return nil, fmt.Errorf("TDES DUKPT decrypt: working key: %w", ErrKeyLength)
	}
	out := make([]byte, len(ciphertext))
	if iv == nil {
		for i := 0; i < len(ciphertext); i += 8 {
			c.Decrypt(out[i:i+8], ciphertext[i:i+8])
		}
	} else {
		cipher.NewCBCDecrypter(c, iv).CryptBlocks(out, ciphertext)
	}
	return out, nil
}
