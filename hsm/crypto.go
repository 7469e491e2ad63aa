package hsm

import (
	"bytes"
	"fmt"

	"github.com/miekg/pkcs11"
)

// gcmNonceLen and gcmTagLen fix the AES-GCM layout of SealGCM.
const (
	gcmNonceLen = 12
	gcmTagLen   = 16
)

// cipherOp runs one single-part encryption or decryption with key label.
func (t *Token) cipherOp(what, label string, encrypt bool, mech *pkcs11.Mechanism, data []byte) ([]byte, error) {
	var out []byte
	err := t.withKey(label, pkcs11.CKO_SECRET_KEY, func(s *session, h pkcs11.ObjectHandle) error {
		var err error
		out, err = t.cipherHandle(s, h, encrypt, mech, data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s with %q: %w", what, label, err)
	}
	return out, nil
}

// withKey runs f on a borrowed session with the handle of the key of
// class labelled label. A handle that went stale because another process
// replaced the key is looked up again once.
func (t *Token) withKey(label string, class uint, f func(s *session, h pkcs11.ObjectHandle) error) error {
	return t.with(func(s *session) error {
		for attempt := 0; ; attempt++ {
			h, err := t.find(s, label, class)
			if err != nil {
				return err
			}
			err = f(s, h)
			if attempt == 0 && staleHandle(err) {
				t.forget(label)
				continue
			}
			return err
		}
	})
}

// staleHandle reports whether err says an object handle is no longer
// valid.
func staleHandle(err error) bool {
	return rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) || rvIs(err, pkcs11.CKR_KEY_HANDLE_INVALID)
}

// cipherHandle runs one single-part encryption or decryption with h.
// Decryption failures of the data (length, padding, tag) are ErrDecrypt.
func (t *Token) cipherHandle(s *session, h pkcs11.ObjectHandle, encrypt bool, mech *pkcs11.Mechanism, data []byte) ([]byte, error) {
	ms := []*pkcs11.Mechanism{mech}
	if encrypt {
		if err := t.ctx.EncryptInit(s.h, ms, h); err != nil {
			return nil, fmt.Errorf("C_EncryptInit: %w", keyErr(err))
		}
		out, err := t.ctx.Encrypt(s.h, data)
		if err != nil {
			return nil, fmt.Errorf("C_Encrypt: %w", err)
		}
		return out, nil
	}
	if err := t.ctx.DecryptInit(s.h, ms, h); err != nil {
		return nil, fmt.Errorf("C_DecryptInit: %w", keyErr(err))
	}
	out, err := t.ctx.Decrypt(s.h, data)
	if err != nil {
		return nil, fmt.Errorf("C_Decrypt: %w: %w", ErrDecrypt, err)
	}
	return out, nil
}

// keyErr maps the return values meaning "this key cannot do that" to
// ErrKeyType.
func keyErr(err error) error {
	for _, rv := range []uint{pkcs11.CKR_KEY_TYPE_INCONSISTENT, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, pkcs11.CKR_KEY_SIZE_RANGE} {
		if rvIs(err, rv) {
			return fmt.Errorf("%w: %w", ErrKeyType, err)
		}
	}
	return err
}

func checkBlocks(what string, data []byte, block int) error {
	if len(data) == 0 || len(data)%block != 0 {
		return fmt.Errorf("%s: %d bytes is not a positive multiple of %d: %w", what, len(data), block, ErrInput)
	}
	return nil
}

func checkIV(what string, iv []byte, block int) error {
	if len(iv) != block {
		return fmt.Errorf("%s: IV of %d bytes, want %d: %w", what, len(iv), block, ErrInput)
	}
	return nil
}

// EncryptAESECB encrypts whole 16-byte blocks with AES-ECB under label.
func (t *Token) EncryptAESECB(label string, plaintext []byte) ([]byte, error) {
	if err := checkBlocks("AES-ECB encrypt", plaintext, 16); err != nil {
		return nil, err
	}
	return t.cipherOp("AES-ECB encrypt", label, true, pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil), plaintext)
}

// DecryptAESECB decrypts whole 16-byte blocks with AES-ECB under label.
func (t *Token) DecryptAESECB(label string, ciphertext []byte) ([]byte, error) {
	if err := checkBlocks("AES-ECB decrypt", ciphertext, 16); err != nil {
		return nil, err
	}
	return t.cipherOp("AES-ECB decrypt", label, false, pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil), ciphertext)
}

// EncryptAESCBC encrypts whole 16-byte blocks with AES-CBC (no padding)
// under label with the 16-byte iv.
func (t *Token) EncryptAESCBC(label string, iv, plaintext []byte) ([]byte, error) {
	if err := checkIV("AES-CBC encrypt", iv, 16); err != nil {
		return nil, err
	}
	if err := checkBlocks("AES-CBC encrypt", plaintext, 16); err != nil {
		return nil, err
	}
	return t.cipherOp("AES-CBC encrypt", label, true, pkcs11.NewMechanism(pkcs11.CKM_AES_CBC, bytes.Clone(iv)), plaintext)
}

// DecryptAESCBC decrypts whole 16-byte blocks with AES-CBC (no padding)
// under label with the 16-byte iv.
func (t *Token) DecryptAESCBC(label string, iv, ciphertext []byte) ([]byte, error) {
	if err := checkIV("AES-CBC decrypt", iv, 16); err != nil {
		return nil, err
	}
	if err := checkBlocks("AES-CBC decrypt", ciphertext, 16); err != nil {
		return nil, err
	}
	return t.cipherOp("AES-CBC decrypt", label, false, pkcs11.NewMechanism(pkcs11.CKM_AES_CBC, bytes.Clone(iv)), ciphertext)
}

// SealGCM encrypts and authenticates plaintext and aad with AES-GCM
// (CKM_AES_GCM) under label. The 12-byte nonce comes from the token's
// random generator; the result is nonce || ciphertext || 16-byte tag.
// A key must not seal more than 2^32 messages (random-nonce bound).
func (t *Token) SealGCM(label string, plaintext, aad []byte) ([]byte, error) {
	var out []byte
	err := t.withKey(label, pkcs11.CKO_SECRET_KEY, func(s *session, h pkcs11.ObjectHandle) error {
		nonce, err := t.ctx.GenerateRandom(s.h, gcmNonceLen)
		if err != nil {
			return fmt.Errorf("C_GenerateRandom: %w", err)
		}
		p := pkcs11.NewGCMParams(nonce, aad, gcmTagLen*8)
		defer p.Free()
		ct, err := t.cipherHandle(s, h, true, pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p), plaintext)
		if err != nil {
			return err
		}
		out = append(nonce, ct...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("AES-GCM seal with %q: %w", label, err)
	}
	return out, nil
}

// OpenGCM authenticates and decrypts a SealGCM result with aad under
// label. A wrong key, aad or a modified message returns ErrDecrypt.
func (t *Token) OpenGCM(label string, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < gcmNonceLen+gcmTagLen {
		return nil, fmt.Errorf("AES-GCM open: %d bytes is shorter than nonce and tag: %w", len(sealed), ErrDecrypt)
	}
	var out []byte
	err := t.withKey(label, pkcs11.CKO_SECRET_KEY, func(s *session, h pkcs11.ObjectHandle) error {
		p := pkcs11.NewGCMParams(bytes.Clone(sealed[:gcmNonceLen]), aad, gcmTagLen*8)
		defer p.Free()
		var err error
		out, err = t.cipherHandle(s, h, false, pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p), sealed[gcmNonceLen:])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("AES-GCM open with %q: %w", label, err)
	}
	return out, nil
}

// sign runs one single-part C_Sign with key h.
func (t *Token) sign(s *session, h pkcs11.ObjectHandle, mech *pkcs11.Mechanism, data []byte) ([]byte, error) {
	if err := t.ctx.SignInit(s.h, []*pkcs11.Mechanism{mech}, h); err != nil {
		return nil, fmt.Errorf("C_SignInit: %w", keyErr(err))
	}
	out, err := t.ctx.Sign(s.h, data)
	if err != nil {
		return nil, fmt.Errorf("C_Sign: %w", err)
	}
	return out, nil
}

func (t *Token) signOp(what, label string, class uint, mech *pkcs11.Mechanism, data []byte) ([]byte, error) {
	var out []byte
	err := t.withKey(label, class, func(s *session, h pkcs11.ObjectHandle) error {
		var err error
		out, err = t.sign(s, h, mech, data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s with %q: %w", what, label, err)
	}
	return out, nil
}

// CMAC returns the 16-byte AES-CMAC (CKM_AES_CMAC) of data under label.
func (t *Token) CMAC(label string, data []byte) ([]byte, error) {
	return t.signOp("AES-CMAC", label, pkcs11.CKO_SECRET_KEY, pkcs11.NewMechanism(pkcs11.CKM_AES_CMAC, nil), data)
}

// HMACSHA256 returns the 32-byte HMAC-SHA256 (CKM_SHA256_HMAC) of data
// under the generic secret label. The PAN fingerprint is its first 16
// bytes in hex (package p2pe/fingerprint).
func (t *Token) HMACSHA256(label string, data []byte) ([]byte, error) {
	return t.signOp("HMAC-SHA256", label, pkcs11.CKO_SECRET_KEY, pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil), data)
}

// Random returns n bytes from the token's random number generator.
func (t *Token) Random(n int) ([]byte, error) {
	if n <= 0 || n > 1<<16 {
		return nil, fmt.Errorf("random: %d bytes: %w", n, ErrInput)
	}
	var out []byte
	err := t.with(func(s *session) error {
		var err error
		out, err = t.ctx.GenerateRandom(s.h, n)
		if err != nil {
			return fmt.Errorf("C_GenerateRandom: %w", err)
		}
		return nil
	})
	return out, err
}
