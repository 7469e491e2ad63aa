package hsm

import (
	"bytes"
	"crypto/aes"
	"crypto/des"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// KeyKind is the type of a key object.
type KeyKind int

// Key kinds.
const (
	KindAES   KeyKind = iota + 1 // CKK_AES, 16, 24 or 32 bytes
	KindTDES                     // CKK_DES2 (16 bytes) or CKK_DES3 (24 bytes)
	KindHMAC                     // CKK_GENERIC_SECRET for CKM_SHA256_HMAC
	KindECDSA                    // CKK_EC P-256 private key
	// KindTDESBDK is a legacy TDES DUKPT base derivation key: importing it
	// creates two objects, label (encrypt only) and label+TDESVariantSuffix
	// holding BDK XOR C0C0C0C000000000C0C0C0C000000000 (see DeriveTDESIPEK).
	KindTDESBDK
)

// String returns the kind's name.
func (k KeyKind) String() string {
	switch k {
	case KindAES:
		return "AES"
	case KindTDES:
		return "TDES"
	case KindHMAC:
		return "HMAC"
	case KindECDSA:
		return "ECDSA-P256"
	case KindTDESBDK:
		return "TDES-BDK"
	}
	return fmt.Sprintf("KeyKind(%d)", int(k))
}

// Usage is a set of PKCS#11 usage attributes given to a new key.
type Usage uint

// Usages; each maps to the CK_TRUE of one attribute, every other usage
// attribute of a new key is set CK_FALSE explicitly.
const (
	UseEncrypt Usage = 1 << iota // CKA_ENCRYPT
	UseDecrypt                   // CKA_DECRYPT
	UseSign                      // CKA_SIGN (CMAC, HMAC generation)
	UseVerify                    // CKA_VERIFY
	UseDerive                    // CKA_DERIVE (DUKPT base and intermediate keys)
	UseWrap                      // CKA_WRAP
	UseUnwrap                    // CKA_UNWRAP
)

// Usage sets for common roles.
const (
	// UsageGeneral is the default for AES keys: ECB/CBC/GCM encrypt and
	// decrypt, CMAC sign and verify; no derivation.
	UsageGeneral = UseEncrypt | UseDecrypt | UseSign | UseVerify
	// UsageBDK is for AES DUKPT base derivation keys: derivation only.
	UsageBDK = UseDerive
	// UsageMAC is the default for HMAC keys.
	UsageMAC = UseSign | UseVerify
)

func usageAttrs(u Usage) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, u&UseEncrypt != 0),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, u&UseDecrypt != 0),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, u&UseSign != 0),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, u&UseVerify != 0),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, u&UseDerive != 0),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, u&UseWrap != 0),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, u&UseUnwrap != 0),
	}
}

func usageOf(usages []Usage, def Usage) Usage {
	if len(usages) == 0 {
		return def
	}
	var u Usage
	for _, x := range usages {
		u |= x
	}
	return u
}

// TDESVariantSuffix is appended to a TDES BDK's label to name its
// C0C0C0C0 variant object.
const TDESVariantSuffix = ".c0"

// secretTemplate is the template of a persistent, sensitive,
// non-extractable, private secret key.
func secretTemplate(label string, keyType uint, u Usage) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label)),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
	}
	return append(t, usageAttrs(u)...)
}

func checkLabel(label string) error {
	if label == "" || len(label) > 128 || strings.ContainsAny(label, "\x00\n") {
		return fmt.Errorf("key label %q: must be 1..128 bytes without NUL or newline: %w", label, ErrInput)
	}
	return nil
}

// create makes a key object under a fresh label; mk runs on the session
// after the label was found free.
func (t *Token) create(what, label string, mk func(s *session) error) error {
	if err := checkLabel(label); err != nil {
		return err
	}
	return t.with(func(s *session) error {
		taken, err := t.labelTaken(s, label)
		if err != nil {
			return fmt.Errorf("%s %q: %w", what, label, err)
		}
		if taken {
			return fmt.Errorf("%s %q: %w", what, label, ErrKeyExists)
		}
		if err := mk(s); err != nil {
			return fmt.Errorf("%s %q: %w", what, label, err)
		}
		t.forget(label)
		return nil
	})
}

// GenerateAES generates an AES key of bits (128, 192 or 256) inside the
// token as a persistent, sensitive, non-extractable object. usages default
// to UsageGeneral; pass UsageBDK for a DUKPT base derivation key. It
// returns ErrKeyExists if the label is taken.
func (t *Token) GenerateAES(label string, bits int, usages ...Usage) error {
	if bits != 128 && bits != 192 && bits != 256 {
		return fmt.Errorf("generate AES key %q of %d bits: %w", label, bits, ErrKeyLength)
	}
	tmpl := append(secretTemplate(label, pkcs11.CKK_AES, usageOf(usages, UsageGeneral)),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, bits/8))
	return t.create("generate AES key", label, func(s *session) error {
		_, err := t.ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
		return err
	})
}

// GenerateHMAC generates a generic secret of n bytes (16..64) for
// CKM_SHA256_HMAC. usages default to UsageMAC.
func (t *Token) GenerateHMAC(label string, n int, usages ...Usage) error {
	if n < 16 || n > 64 {
		return fmt.Errorf("generate HMAC key %q of %d bytes (want 16..64): %w", label, n, ErrKeyLength)
	}
	tmpl := append(secretTemplate(label, pkcs11.CKK_GENERIC_SECRET, usageOf(usages, UsageMAC)),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, n))
	return t.create("generate HMAC key", label, func(s *session) error {
		_, err := t.ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}, tmpl)
		return err
	})
}

// ImportAES creates a persistent, sensitive, non-extractable AES key from
// value (16, 24 or 32 bytes). usages default to UsageGeneral; pass UsageBDK
// for a DUKPT BDK. The caller should wipe value afterwards.
func (t *Token) ImportAES(label string, value []byte, usages ...Usage) error {
	if _, err := aes.NewCipher(value); err != nil {
		return fmt.Errorf("import AES key %q of %d bytes: %w", label, len(value), ErrKeyLength)
	}
	return t.importSecret("import AES key", label, pkcs11.CKK_AES, value, usageOf(usages, UsageGeneral))
}

// ImportHMAC creates a persistent, sensitive, non-extractable generic
// secret (16..64 bytes) for CKM_SHA256_HMAC, such as the PAN fingerprint
// key set at the key ceremony. usages default to UsageMAC.
func (t *Token) ImportHMAC(label string, value []byte, usages ...Usage) error {
	if len(value) < 16 || len(value) > 64 {
		return fmt.Errorf("import HMAC key %q of %d bytes (want 16..64): %w", label, len(value), ErrKeyLength)
	}
	return t.importSecret("import HMAC key", label, pkcs11.CKK_GENERIC_SECRET, value, usageOf(usages, UsageMAC))
}

// ImportTDES creates a persistent, sensitive, non-extractable double- (16
// bytes) or triple-length (24 bytes) TDES key. usages default to
// UseEncrypt|UseDecrypt.
func (t *Token) ImportTDES(label string, value []byte, usages ...Usage) error {
	kt, err := tdesType(value)
	if err != nil {
		return fmt.Errorf("import TDES key %q: %w", label, err)
	}
	return t.importSecret("import TDES key", label, kt, value, usageOf(usages, UseEncrypt|UseDecrypt))
}

// ImportTDESBDK imports a legacy TDES DUKPT BDK (16 bytes) as two
// encrypt-only objects: label, holding the BDK, and
// label+TDESVariantSuffix, holding BDK XOR C0C0C0C000000000C0C0C0C000000000.
// PKCS#11 has no mechanism to XOR a key with a constant inside SoftHSM, so
// the variant is made here, from the clear value the custodian supplies;
// see DeriveTDESIPEK.
func (t *Token) ImportTDESBDK(label string, value []byte) error {
	if len(value) != 16 {
		return fmt.Errorf("import TDES BDK %q of %d bytes (want 16): %w", label, len(value), ErrKeyLength)
	}
	if err := checkLabel(label + TDESVariantSuffix); err != nil {
		return err
	}
	variant := tdesVariant(value)
	defer clear(variant)
	return t.create("import TDES BDK", label, func(s *session) error {
		taken, err := t.labelTaken(s, label+TDESVariantSuffix)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("variant %q: %w", label+TDESVariantSuffix, ErrKeyExists)
		}
		h, err := t.ctx.CreateObject(s.h, append(secretTemplate(label, pkcs11.CKK_DES2, UseEncrypt),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, value)))
		if err != nil {
			return err
		}
		if _, err := t.ctx.CreateObject(s.h, append(secretTemplate(label+TDESVariantSuffix, pkcs11.CKK_DES2, UseEncrypt),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, variant))); err != nil {
			_ = t.ctx.DestroyObject(s.h, h)
			return err
		}
		t.forget(label + TDESVariantSuffix)
		return nil
	})
}

var tdesVariantMask = [16]byte{0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0}

func tdesVariant(k []byte) []byte {
	v := make([]byte, len(k))
	for i := range k {
		v[i] = k[i] ^ tdesVariantMask[i%16]
	}
	return v
}

func tdesType(value []byte) (uint, error) {
	switch len(value) {
	case 16:
		return pkcs11.CKK_DES2, nil
	case 24:
		return pkcs11.CKK_DES3, nil
	}
	return 0, fmt.Errorf("TDES key of %d bytes (want 16 or 24): %w", len(value), ErrKeyLength)
}

func (t *Token) importSecret(what, label string, keyType uint, value []byte, u Usage) error {
	tmpl := append(secretTemplate(label, keyType, u), pkcs11.NewAttribute(pkcs11.CKA_VALUE, value))
	return t.create(what, label, func(s *session) error {
		_, err := t.ctx.CreateObject(s.h, tmpl)
		return err
	})
}

// ImportKeyFromComponents assembles a key from clear components entered by
// key custodians: it XORs the components (at least two, equal lengths),
// checks each component against its KCV and the assembled key against a
// final KCV, and only then creates the key in the token. kcvs holds one
// KCV per component, optionally followed by the KCV of the assembled key;
// each KCV is 2 to 3 leading bytes of the kind's check value (see KCV).
// kind is KindAES (usages default UsageGeneral), KindTDES, KindTDESBDK or
// KindHMAC. kcvs may be empty only when the caller generated the
// components itself (bootstrap of a fresh installation); components typed
// in by custodians must always come with their KCVs. The intermediate
// sums are wiped; the caller should wipe the
// components. A KCV mismatch returns ErrKCVMismatch naming the component
// by position, never its value.
func (t *Token) ImportKeyFromComponents(label string, kind KeyKind, components [][]byte, kcvs [][]byte, usages ...Usage) error {
	if len(components) < 2 {
		return fmt.Errorf("import %q from components: %d components, want at least 2: %w", label, len(components), ErrInput)
	}
	if len(kcvs) != 0 && len(kcvs) != len(components) && len(kcvs) != len(components)+1 {
		return fmt.Errorf("import %q from components: %d KCVs for %d components: %w", label, len(kcvs), len(components), ErrInput)
	}
	n := len(components[0])
	key := make([]byte, n)
	defer clear(key)
	for i, c := range components {
		if len(c) != n {
			return fmt.Errorf("import %q: component %d has %d bytes, component 1 has %d: %w", label, i+1, len(c), n, ErrKeyLength)
		}
		if len(kcvs) > 0 {
			kcv, err := softKCV(kind, c)
			if err != nil {
				return fmt.Errorf("import %q: component %d: %w", label, i+1, err)
			}
			if !kcvMatch(kcv, kcvs[i]) {
				return fmt.Errorf("import %q: component %d KCV: %w", label, i+1, ErrKCVMismatch)
			}
		}
		subtle.XORBytes(key, key, c)
	}
	if len(kcvs) == len(components)+1 {
		kcv, err := softKCV(kind, key)
		if err != nil {
			return fmt.Errorf("import %q: assembled key: %w", label, err)
		}
		if !kcvMatch(kcv, kcvs[len(components)]) {
			return fmt.Errorf("import %q: assembled key KCV: %w", label, ErrKCVMismatch)
		}
	}
	switch kind {
	case KindAES:
		return t.ImportAES(label, key, usages...)
	case KindTDES:
		return t.ImportTDES(label, key, usages...)
	case KindTDESBDK:
		return t.ImportTDESBDK(label, key)
	case KindHMAC:
		return t.ImportHMAC(label, key, usages...)
	}
	return fmt.Errorf("import %q from components: kind %v: %w", label, kind, ErrKeyType)
}

func kcvMatch(full, want []byte) bool {
	return len(want) >= 2 && len(want) <= len(full) && subtle.ConstantTimeCompare(full[:len(want)], want) == 1
}

// softKCV computes the check value of a clear component in process memory
// (the custodian's components are there anyway). The rules match KCV.
func softKCV(kind KeyKind, k []byte) ([]byte, error) {
	switch kind {
	case KindAES:
		return cmacZero(k)
	case KindTDES, KindTDESBDK:
		var k3 []byte
		switch len(k) {
		case 16:
			k3 = append(append(make([]byte, 0, 24), k...), k[:8]...)
		case 24:
			k3 = k
		default:
			return nil, fmt.Errorf("TDES key of %d bytes: %w", len(k), ErrKeyLength)
		}
		c, err := des.NewTripleDESCipher(k3)
		if err != nil {
			return nil, fmt.Errorf("TDES key: %w", ErrKeyLength)
		}
		out := make([]byte, 8)
		c.Encrypt(out, out)
		return out[:3], nil
	case KindHMAC:
		m := hmac.New(sha256.New, k)
		m.Write(make([]byte, 16))
		return m.Sum(nil)[:3], nil
	}
	return nil, fmt.Errorf("kind %v has no KCV: %w", kind, ErrKeyType)
}

// cmacZero returns the first 3 bytes of AES-CMAC(k, 16 zero bytes).
func cmacZero(k []byte) ([]byte, error) {
	c, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("AES key of %d bytes: %w", len(k), ErrKeyLength)
	}
	var l [16]byte
	c.Encrypt(l[:], l[:])
	k1 := cmacSubkey(l)
	c.Encrypt(k1[:], k1[:]) // M = zero block, complete: MAC = E(M xor K1)
	return bytes.Clone(k1[:3]), nil
}

// cmacSubkey returns K1 = L<<1 xor (Rb if msb(L)) of NIST SP 800-38B.
func cmacSubkey(l [16]byte) [16]byte {
	var k [16]byte
	for i := 0; i < 15; i++ {
		k[i] = l[i]<<1 | l[i+1]>>7
	}
	k[15] = l[15] << 1
	if l[0]&0x80 != 0 {
		k[15] ^= 0x87
	}
	return k
}

// KeyInfo describes a key object. It carries no key material.
type KeyInfo struct {
	Label       string
	Kind        KeyKind
	Bits        int    // key length in bits (curve size for ECDSA)
	KCV         string // upper-case hex of 3 bytes; "" when the key has none or it cannot be computed with the key's usages
	Sensitive   bool
	Extractable bool
	Usage       Usage
}

// HasKey reports whether any object in the token carries label.
func (t *Token) HasKey(label string) (bool, error) {
	var ok bool
	err := t.with(func(s *session) error {
		var err error
		ok, err = t.labelTaken(s, label)
		return err
	})
	return ok, err
}

// DestroyKey destroys every persistent object carrying label (a key pair's
// two halves, a TDES BDK but not its variant). It returns ErrKeyNotFound
// when there is none. Destruction is irreversible.
func (t *Token) DestroyKey(label string) error {
	return t.with(func(s *session) error {
		hs, err := t.findAll(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)}, 0)
		if err != nil {
			return fmt.Errorf("destroy key %q: %w", label, err)
		}
		if len(hs) == 0 {
			return fmt.Errorf("destroy key %q: %w", label, ErrKeyNotFound)
		}
		t.forget(label)
		t.dukpt.forgetBDK(t, s, label)
		for _, h := range hs {
			if err := t.ctx.DestroyObject(s.h, h); err != nil {
				return fmt.Errorf("destroy key %q: %w", label, err)
			}
		}
		return nil
	})
}

// ListKeys describes every persistent secret and private key of the token,
// with KCVs computed inside the token.
func (t *Token) ListKeys() ([]KeyInfo, error) {
	var out []KeyInfo
	err := t.with(func(s *session) error {
		for _, class := range []uint{pkcs11.CKO_SECRET_KEY, pkcs11.CKO_PRIVATE_KEY} {
			hs, err := t.findAll(s, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			}, 0)
			if err != nil {
				return fmt.Errorf("list keys: %w", err)
			}
			for _, h := range hs {
				ki, err := t.describe(s, h)
				if err != nil {
					return fmt.Errorf("list keys: %w", err)
				}
				if kcv, err := t.kcv(s, h, ki); err == nil {
					ki.KCV = hex.EncodeToString(kcv)
					ki.KCV = strings.ToUpper(ki.KCV)
				}
				out = append(out, ki)
			}
		}
		return nil
	})
	return out, err
}

// KeyInfo describes the key with label.
func (t *Token) KeyInfo(label string) (KeyInfo, error) {
	var ki KeyInfo
	err := t.with(func(s *session) error {
		h, err := t.findKey(s, label)
		if err != nil {
			return err
		}
		ki, err = t.describe(s, h)
		return err
	})
	return ki, err
}

// findKey finds a secret key, else a private key, with label.
func (t *Token) findKey(s *session, label string) (pkcs11.ObjectHandle, error) {
	h, err := t.find(s, label, pkcs11.CKO_SECRET_KEY)
	if err == nil || !isNotFound(err) {
		return h, err
	}
	return t.find(s, label, pkcs11.CKO_PRIVATE_KEY)
}

func isNotFound(err error) bool { return errors.Is(err, ErrKeyNotFound) }

// describe reads the non-secret attributes of a key object.
func (t *Token) describe(s *session, h pkcs11.ObjectHandle) (KeyInfo, error) {
	attrs, err := t.ctx.GetAttributeValue(s.h, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil),
	})
	if err != nil {
		return KeyInfo{}, fmt.Errorf("read key attributes: %w", err)
	}
	var ki KeyInfo
	ki.Label = string(attrs[0].Value)
	kt := ulong(attrs[1].Value)
	ki.Sensitive = boolAttr(attrs[2].Value)
	ki.Extractable = boolAttr(attrs[3].Value)
	// Private keys have no CKA_ENCRYPT, CKA_VERIFY or CKA_WRAP.
	types := []uint{pkcs11.CKA_ENCRYPT, pkcs11.CKA_DECRYPT, pkcs11.CKA_SIGN, pkcs11.CKA_VERIFY, pkcs11.CKA_DERIVE, pkcs11.CKA_WRAP, pkcs11.CKA_UNWRAP}
	uses := []Usage{UseEncrypt, UseDecrypt, UseSign, UseVerify, UseDerive, UseWrap, UseUnwrap}
	if ulong(attrs[4].Value) == pkcs11.CKO_PRIVATE_KEY {
		types = []uint{pkcs11.CKA_DECRYPT, pkcs11.CKA_SIGN, pkcs11.CKA_DERIVE, pkcs11.CKA_UNWRAP}
		uses = []Usage{UseDecrypt, UseSign, UseDerive, UseUnwrap}
	}
	q := make([]*pkcs11.Attribute, len(types))
	for i, ty := range types {
		q[i] = pkcs11.NewAttribute(ty, nil)
	}
	ua, err := t.ctx.GetAttributeValue(s.h, h, q)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("read usage attributes of %q: %w", ki.Label, err)
	}
	for i, a := range ua {
		if boolAttr(a.Value) {
			ki.Usage |= uses[i]
		}
	}
	switch kt {
	case pkcs11.CKK_AES, pkcs11.CKK_GENERIC_SECRET:
		ki.Kind = KindAES
		if kt == pkcs11.CKK_GENERIC_SECRET {
			ki.Kind = KindHMAC
		}
		a, err := t.ctx.GetAttributeValue(s.h, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil)})
		if err != nil {
			return KeyInfo{}, fmt.Errorf("read key length of %q: %w", ki.Label, err)
		}
		ki.Bits = int(ulong(a[0].Value)) * 8
	case pkcs11.CKK_DES2:
		ki.Kind, ki.Bits = KindTDES, 128
	case pkcs11.CKK_DES3:
		ki.Kind, ki.Bits = KindTDES, 192
	case pkcs11.CKK_EC:
		ki.Kind, ki.Bits = KindECDSA, 256
	default:
		return KeyInfo{}, fmt.Errorf("key %q has key type %#x: %w", ki.Label, kt, ErrKeyType)
	}
	return ki, nil
}

func boolAttr(b []byte) bool { return len(b) > 0 && b[0] != 0 }

// ulong decodes a CK_ULONG attribute value, which is in native byte order
// and 8 bytes on 64-bit Unix, 4 elsewhere.
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0) // no valid CK_ULONG: matches no key type or class
}
