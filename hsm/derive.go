package hsm

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// privateSession is CKA_PRIVATE of derived session objects. Session
// objects exist only inside this process's sessions, which are logged in
// for the Token's whole life, so CKA_PRIVATE adds no access control to
// them; in SoftHSM it only makes the library encrypt the value in its
// (our process's) memory under a token key that is in the same memory,
// which costs about 30% of a warm DUKPT decryption. Persistent keys keep
// CKA_PRIVATE true.
const privateSession = false

// sessionKey describes a session secret key to derive.
type sessionKey struct {
	keyType  uint
	valueLen int // CKA_VALUE_LEN; 0 for DES2/DES3, which must not carry it
	usage    Usage
	// exportable makes the key non-sensitive and extractable; only for
	// AESInitialKeyForInjection and check values, never for a working key.
	exportable bool
}

func (k sessionKey) template() []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, k.keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, privateSession),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, !k.exportable),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, k.exportable),
	}
	if k.valueLen > 0 {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, k.valueLen))
	}
	return append(t, usageAttrs(k.usage)...)
}

// deriveEncryptData derives a session key from base with
// CKM_AES_ECB_ENCRYPT_DATA (or the DES3 variant when mech says so) over
// data: the new key's value is the leading bytes of ECB(base, data).
func (t *Token) deriveEncryptData(s *session, mech uint, base pkcs11.ObjectHandle, data []byte, k sessionKey) (pkcs11.ObjectHandle, error) {
	m, err := s.buf.encryptDataMechanism(mech, data)
	if err != nil {
		return 0, err
	}
	h, err := t.ctx.DeriveKey(s.h, []*pkcs11.Mechanism{m}, base, k.template())
	if err != nil {
		return 0, fmt.Errorf("C_DeriveKey: %w", keyErr(err))
	}
	return h, nil
}

// destroy destroys session objects, ignoring zero handles; it returns the
// first error.
func (t *Token) destroy(s *session, hs ...pkcs11.ObjectHandle) error {
	var first error
	for _, h := range hs {
		if h == 0 {
			continue
		}
		if err := t.ctx.DestroyObject(s.h, h); err != nil && first == nil {
			first = fmt.Errorf("C_DestroyObject: %w", err)
		}
	}
	return first
}

// readValue reads CKA_VALUE of an extractable, non-sensitive object.
func (t *Token) readValue(s *session, h pkcs11.ObjectHandle) ([]byte, error) {
	a, err := t.ctx.GetAttributeValue(s.h, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return nil, fmt.Errorf("read CKA_VALUE: %w", err)
	}
	return a[0].Value, nil
}

// encryptBlockByDerivation returns ECB(base, block) for a key that may
// only derive: it derives a short-lived, non-sensitive generic secret whose
// value is the encryption of block, reads it and destroys it. Only the
// ciphertext block is visible to the process, never base's value. Used for
// key check values.
func (t *Token) encryptBlockByDerivation(s *session, mech uint, base pkcs11.ObjectHandle, block []byte) ([]byte, error) {
	h, err := t.deriveEncryptData(s, mech, base, block, sessionKey{keyType: pkcs11.CKK_GENERIC_SECRET, valueLen: len(block), exportable: true})
	if err != nil {
		return nil, err
	}
	v, err := t.readValue(s, h)
	if derr := t.destroy(s, h); err == nil {
		err = derr
	}
	return v, err
}

// KCV returns the key check value of label as 6 upper-case hex digits,
// computed inside the token: for AES keys the first 3 bytes of AES-CMAC
// over one zero block, for TDES keys the first 3 bytes of the encryption
// of 8 zero bytes, for HMAC keys the first 3 bytes of HMAC-SHA256 over 16
// zero bytes. ECDSA keys have no KCV (ErrKeyType).
func (t *Token) KCV(label string) (string, error) {
	var out string
	err := t.with(func(s *session) error {
		h, err := t.findKey(s, label)
		if err != nil {
			return fmt.Errorf("KCV: %w", err)
		}
		ki, err := t.describe(s, h)
		if err != nil {
			return fmt.Errorf("KCV of %q: %w", label, err)
		}
		kcv, err := t.kcv(s, h, ki)
		if err != nil {
			return fmt.Errorf("KCV of %q: %w", label, err)
		}
		out = fmt.Sprintf("%X", kcv)
		return nil
	})
	return out, err
}

// kcv computes a 3-byte check value with whatever usage the key allows.
func (t *Token) kcv(s *session, h pkcs11.ObjectHandle, ki KeyInfo) ([]byte, error) {
	switch ki.Kind {
	case KindAES:
		var mac []byte
		var err error
		switch {
		case ki.Usage&UseSign != 0:
			mac, err = t.sign(s, h, pkcs11.NewMechanism(pkcs11.CKM_AES_CMAC, nil), make([]byte, 16))
		case ki.Usage&(UseEncrypt|UseDerive) != 0:
			// CMAC of one complete zero block is E(K1), K1 from L = E(0).
			enc := func(b []byte) ([]byte, error) {
				if ki.Usage&UseEncrypt != 0 {
					return t.cipherHandle(s, h, true, pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil), b)
				}
				return t.encryptBlockByDerivation(s, pkcs11.CKM_AES_ECB_ENCRYPT_DATA, h, b)
			}
			var l []byte
			if l, err = enc(make([]byte, 16)); err == nil {
				k1 := cmacSubkey([16]byte(l))
				mac, err = enc(k1[:])
			}
		default:
			return nil, fmt.Errorf("AES key without sign, encrypt or derive usage: %w", ErrKeyType)
		}
		if err != nil {
			return nil, err
		}
		return mac[:3], nil
	case KindTDES:
		var out []byte
		var err error
		switch {
		case ki.Usage&UseEncrypt != 0:
			out, err = t.cipherHandle(s, h, true, pkcs11.NewMechanism(pkcs11.CKM_DES3_ECB, nil), make([]byte, 8))
		case ki.Usage&UseDerive != 0:
			out, err = t.encryptBlockByDerivation(s, pkcs11.CKM_DES3_ECB_ENCRYPT_DATA, h, make([]byte, 8))
		default:
			return nil, fmt.Errorf("TDES key without encrypt or derive usage: %w", ErrKeyType)
		}
		if err != nil {
			return nil, err
		}
		return out[:3], nil
	case KindHMAC:
		mac, err := t.sign(s, h, pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil), make([]byte, 16))
		if err != nil {
			return nil, err
		}
		return mac[:3], nil
	}
	return nil, fmt.Errorf("%v keys have no KCV: %w", ki.Kind, ErrKeyType)
}
