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
