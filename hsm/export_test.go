package hsm

import (
	"github.com/miekg/pkcs11"
	"github.com/posgate/posgate/p2pe/dukpt"
)

// ProbeAESPath checks the token's initial and transaction keys of ksn
// without extracting them: for each, it derives a sensitive AES-128 child
// whose value is ECB(key, x)[:16] and returns the child's encryption of y.
// A test compares with AES(AES(key, x), y) in pure Go.
func (t *Token) ProbeAESPath(bdk string, ksn dukpt.AESKSN, useCache bool, x, y []byte) (ik, tk []byte, err error) {
	err = t.with(func(s *session) error {
		p, err := t.derivePath(s, bdk, ksn, useCache)
		if err != nil {
			return err
		}
		defer t.finishPath(s, p, nil)
		probe := func(h pkcs11.ObjectHandle) ([]byte, error) {
			c, err := t.deriveEncryptData(s, pkcs11.CKM_AES_ECB_ENCRYPT_DATA, h, x,
				sessionKey{keyType: pkcs11.CKK_AES, valueLen: 16, usage: UseEncrypt})
			if err != nil {
				return nil, err
			}
			defer t.destroy(s, c)
			return t.cipherHandle(s, c, true, pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil), y)
		}
		if ik, err = probe(p.ik); err != nil {
			return err
		}
		tk, err = probe(p.tk)
		return err
	})
	return ik, tk, err
}

// ReadValue tries to read CKA_VALUE of the secret key label.
func (t *Token) ReadValue(label string) ([]byte, error) {
	var v []byte
	err := t.with(func(s *session) error {
		h, err := t.find(s, label, pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return err
		}
		v, err = t.readValue(s, h)
		return err
	})
	return v, err
}

// WrapWith tries to export key label wrapped (CKM_AES_KEY_WRAP) under the
// session key wrapping key it generates.
func (t *Token) WrapWith(label string) ([]byte, error) {
	var v []byte
	err := t.with(func(s *session) error {
		h, err := t.find(s, label, pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return err
		}
		kek, err := t.ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		})
		if err != nil {
			return err
		}
		defer t.destroy(s, kek)
		v, err = t.ctx.WrapKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP, nil)}, kek, h)
		return err
	})
	return v, err
}

// CrossSession derives the working key of ksn on one pooled session and
// encrypts block with it on a different session, both held at once.
func (t *Token) CrossSession(bdk string, ksn dukpt.AESKSN, block []byte) ([]byte, error) {
	a, err := t.get()
	if err != nil {
		return nil, err
	}
	defer t.put(a)
	b, err := t.get()
	if err != nil {
		return nil, err
	}
	defer t.put(b)
	p, err := t.derivePath(a, bdk, ksn, false)
	if err != nil {
		return nil, err
	}
	wk, err := t.deriveWorking(a, p, ksn, dukpt.UsageDataBoth, dukpt.AlgAES128)
	t.finishPath(a, p, err)
	if err != nil {
		return nil, err
	}
	defer t.destroy(b, wk)
	return t.cipherHandle(b, wk, true, pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil), block)
}
