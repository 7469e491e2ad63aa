package hsm

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
	"github.com/posgate/posgate/p2pe/dukpt"
)

// AES DUKPT inside the token.
//
// Every key of the X9.24-3 tree is a C_DeriveKey with
// CKM_AES_ECB_ENCRYPT_DATA from its parent: BDK -> initial key (usage 8001)
// -> one intermediate key per one-bit of the counter (usage 8000) -> the
// working key. AES-256 (and AES-192, HMAC, 3TDEA) outputs take two
// derivation blocks: one C_DeriveKey over the 32 bytes of both blocks, which
// is ECB, equals encrypting each block; the token truncates to the key
// length. Derived objects are session objects (CKA_TOKEN false), sensitive
// and non-extractable.
//
// Cache: per device (BDK label, Initial Key ID) the token keeps the initial
// key and the deepest cachedLinks intermediate keys of the device's last
// counter path. The next counter continues from the link above the last
// counter's trailing one-bits, so a device whose counter advances by one
// usually costs one intermediate and one working-key derivation (see
// cachedLinks). Devices are evicted least recently used first beyond
// Config.MaxDUKPTDevices, destroying their objects. A device entry is checked out by the goroutine using it; a
// concurrent request for the same device derives without the cache. No
// lock is held across a token call.

// dukptCache maps devices to their cached session objects. Safe for
// concurrent use.
type dukptCache struct {
	max int // <0: disabled

	mu   sync.Mutex
	m    map[deviceKey]*device
	lru  *list.List // front: most recent; values *device
	bdks map[string]bdkInfo
}

type deviceKey struct {
	bdk  string
	ikid [8]byte
}

// link is one cached intermediate key: the key for counter value w.
type link struct {
	w uint32
	h pkcs11.ObjectHandle
}

// device is a cache entry. While busy, its ik and chain belong to the
// goroutine that checked it out; otherwise to the cache under mu.
type device struct {
	key     deviceKey
	ik      pkcs11.ObjectHandle // 0 until derived
	chain   []link
	busy    bool
	evicted bool // removed from the cache while busy: owner destroys on check-in
	elem    *list.Element
}

func (d *device) handles() []pkcs11.ObjectHandle {
	hs := []pkcs11.ObjectHandle{d.ik}
	for _, l := range d.chain {
		hs = append(hs, l.h)
	}
	return hs
}

type bdkInfo struct {
	h    pkcs11.ObjectHandle // the handle derivations use
	copy bool                // h is a session copy of the token object
	alg  dukpt.KeyAlgorithm
}

func newDUKPTCache(max int) *dukptCache {
	return &dukptCache{max: max, m: map[deviceKey]*device{}, lru: list.New(), bdks: map[string]bdkInfo{}}
}

func (c *dukptCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// checkout returns the device entry for k, exclusively, creating it if
// needed; nil when the cache is off or the entry is in use. victims are
// objects of evicted devices that the caller must destroy.
func (c *dukptCache) checkout(k deviceKey) (d *device, victims []pkcs11.ObjectHandle) {
	if c.max < 0 {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d = c.m[k]; d != nil {
		if d.busy {
			return nil, nil
		}
		d.busy = true
		c.lru.MoveToFront(d.elem)
		return d, nil
	}
	d = &device{key: k, busy: true}
	d.elem = c.lru.PushFront(d)
	c.m[k] = d
	for e := c.lru.Back(); len(c.m) > c.max && e != nil; {
		v := e.Value.(*device)
		e = e.Prev()
		if v.busy {
			continue
		}
		c.lru.Remove(v.elem)
		delete(c.m, v.key)
		victims = append(victims, v.handles()...)
	}
	return d, victims
}

// checkin releases d; it returns objects to destroy when d was evicted
// meanwhile.
func (c *dukptCache) checkin(d *device) []pkcs11.ObjectHandle {
	c.mu.Lock()
	defer c.mu.Unlock()
	d.busy = false
	if d.evicted {
		hs := d.handles()
		d.ik, d.chain = 0, nil
		return hs
	}
	return nil
}

// drop removes d (checked out by the caller) from the cache; the caller
// destroys its objects.
func (c *dukptCache) drop(d *device) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[d.key] == d {
		delete(c.m, d.key)
		c.lru.Remove(d.elem)
	}
	d.evicted = true
}

// forgetBDK drops the cached BDK handle and every device of label,
// destroying idle devices' objects on s.
func (c *dukptCache) forgetBDK(t *Token, s *session, label string) {
	var victims []pkcs11.ObjectHandle
	c.mu.Lock()
	if b, ok := c.bdks[label]; ok && b.copy {
		victims = append(victims, b.h)
	}
	delete(c.bdks, label)
	for k, d := range c.m {
		if k.bdk != label {
			continue
		}
		delete(c.m, k)
		c.lru.Remove(d.elem)
		if d.busy {
			d.evicted = true
		} else {
			victims = append(victims, d.handles()...)
		}
	}
	c.mu.Unlock()
	_ = t.destroy(s, victims...)
}

// reset forgets everything; the objects die with their sessions.
func (c *dukptCache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[deviceKey]*device{}
	c.lru.Init()
	c.bdks = map[string]bdkInfo{}
}

// bdk returns the handle and AES algorithm of the BDK label.
func (t *Token) bdk(s *session, label string) (bdkInfo, error) {
	c := t.dukpt
	c.mu.Lock()
	b, ok := c.bdks[label]
	c.mu.Unlock()
	if ok {
		return b, nil
	}
	h, err := t.find(s, label, pkcs11.CKO_SECRET_KEY)
	if err != nil {
		return bdkInfo{}, fmt.Errorf("BDK: %w", err)
	}
	ki, err := t.describe(s, h)
	if err != nil {
		return bdkInfo{}, fmt.Errorf("BDK %q: %w", label, err)
	}
	if ki.Kind != KindAES {
		return bdkInfo{}, fmt.Errorf("BDK %q is %v, want AES: %w", label, ki.Kind, ErrKeyType)
	}
	if ki.Usage&UseDerive == 0 {
		return bdkInfo{}, fmt.Errorf("BDK %q lacks CKA_DERIVE (create it with hsm.UsageBDK): %w", label, ErrKeyType)
	}
	switch ki.Bits {
	case 128:
		b.alg = dukpt.AlgAES128
	case 192:
		b.alg = dukpt.AlgAES192
	case 256:
		b.alg = dukpt.AlgAES256
	default:
		return bdkInfo{}, fmt.Errorf("BDK %q of %d bits: %w", label, ki.Bits, ErrKeyLength)
	}
	b.h = h
	// Derive from a session copy of the BDK: SoftHSM re-reads a token
	// object's file on every use, which made each initial-key derivation
	// several times dearer than one from a session object. The copy keeps
	// every attribute (sensitive, non-extractable, derive only) and exists
	// only in this process's sessions; a module that refuses the copy is
	// used through the token object. Consequence: a BDK that another
	// process destroys or replaces stays in use here until this Token
	// closes (DestroyKey through this Token drops the copy at once).
	if cp, err := t.ctx.CopyObject(s.h, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)}); err == nil {
		b.h, b.copy = cp, true
	}
	c.mu.Lock()
	if old, ok := c.bdks[label]; ok {
		// Another goroutine cached it first; keep theirs.
		c.mu.Unlock()
		if b.copy {
			_ = t.destroy(s, b.h)
		}
		return old, nil
	}
	c.bdks[label] = b
	c.mu.Unlock()
	return b, nil
}

// derivationData returns the X9.24-3 derivation data for a key of alg:
// one block per 128 bits of output (two for more than 128).
func derivationData(usage dukpt.KeyUsage, alg dukpt.KeyAlgorithm, ksn dukpt.AESKSN, counter uint32) []byte {
	d1 := dukpt.AESDerivationData(usage, alg, 1, ksn, counter)
	if alg.KeyLen() <= 16 {
		return d1[:]
	}
	d2 := dukpt.AESDerivationData(usage, alg, 2, ksn, counter)
	return append(d1[:], d2[:]...)
}

// cachedLinks is how many intermediate keys of a device's last counter
// path the cache keeps: the deepest ones. Advancing the counter by one
// from c continues from the link above c's trailing one-bits, so keeping 4
// serves 15 of 16 advances with one intermediate derivation; the 16th
// walks from the cached initial key. SoftHSM 2.6.1 spends about 8 KB of
// memory per session object, so a device costs at most 5 objects (40 KB).
const cachedLinks = 4

// onPath reports whether w is one of the intermediate counters on the
// derivation path of c: c agrees with w on every bit down to w's lowest
// one-bit.
func onPath(w, c uint32) bool {
	return w != 0 && c&^(w&-w-1) == w
}

// workingKeyTemplate returns the session key to derive for a DUKPT key of alg.
func workingKeyTemplate(alg dukpt.KeyAlgorithm, usage dukpt.KeyUsage) (sessionKey, error) {
	var k sessionKey
	switch alg {
	case dukpt.AlgAES128, dukpt.AlgAES192, dukpt.AlgAES256:
		k.keyType, k.valueLen = pkcs11.CKK_AES, alg.KeyLen()
	case dukpt.Alg2TDEA:
		k.keyType = pkcs11.CKK_DES2
	case dukpt.Alg3TDEA:
		k.keyType = pkcs11.CKK_DES3
	case dukpt.AlgHMAC256:
		k.keyType, k.valueLen = pkcs11.CKK_GENERIC_SECRET, 32
	default:
		return k, fmt.Errorf("working key algorithm %04X: %w", uint16(alg), dukpt.ErrAlgorithm)
	}
	switch usage {
	case dukpt.UsagePINEncryption, dukpt.UsageDataEncrypt, dukpt.UsageDataDecrypt, dukpt.UsageDataBoth:
		k.usage = UseEncrypt | UseDecrypt
	case dukpt.UsageMACGenerate, dukpt.UsageMACVerify, dukpt.UsageMACBoth:
		k.usage = UseSign | UseVerify
	case dukpt.UsageKeyEncryption:
		k.usage = UseEncrypt | UseDecrypt | UseWrap | UseUnwrap
	default:
		return k, fmt.Errorf("working key usage %04X: %w", uint16(usage), ErrInput)
	}
	if alg == dukpt.AlgHMAC256 && k.usage&UseSign == 0 {
		return k, fmt.Errorf("HMAC working key for usage %04X: %w", uint16(usage), ErrInput)
	}
	return k, nil
}

func intermediateTemplate(alg dukpt.KeyAlgorithm) sessionKey {
	return sessionKey{keyType: pkcs11.CKK_AES, valueLen: alg.KeyLen(), usage: UseDerive}
}

// aesPath holds the objects of one derivation: those owned by the request
// (destroyed at the end) and the cache entry, if any.
type aesPath struct {
	dev   *device               // checked-out cache entry, nil when uncached
	owned []pkcs11.ObjectHandle // uncached objects to destroy
	tk    pkcs11.ObjectHandle
	ik    pkcs11.ObjectHandle
	alg   dukpt.KeyAlgorithm // the BDK's algorithm
}

// derivePath derives (or finds in the cache) the initial key and the
// transaction key of ksn under BDK bdkLabel. The caller must call
// t.finishPath on the result with the same session.
func (t *Token) derivePath(s *session, bdkLabel string, ksn dukpt.AESKSN, useCache bool) (*aesPath, error) {
	if err := ksn.Validate(); err != nil {
		return nil, fmt.Errorf("KSN %s: %w", ksn, err)
	}
	b, err := t.bdk(s, bdkLabel)
	if err != nil {
		return nil, err
	}
	p := &aesPath{alg: b.alg}
	if useCache {
		var victims []pkcs11.ObjectHandle
		p.dev, victims = t.dukpt.checkout(deviceKey{bdkLabel, ksn.InitialKeyID()})
		_ = t.destroy(s, victims...)
	}
	steps := dukpt.AESDerivationSteps(ksn.Counter())
	var chain []link
	if p.dev != nil && p.dev.ik != 0 {
		t.cacheHits.Add(1)
		p.ik = p.dev.ik
		chain = p.dev.chain
	} else {
		t.cacheMisses.Add(1)
		ik, err := t.deriveEncryptData(s, pkcs11.CKM_AES_ECB_ENCRYPT_DATA, b.h,
			derivationData(dukpt.UsageInitialKey, b.alg, ksn, 0), intermediateTemplate(b.alg))
		if err != nil {
			t.finishPath(s, p, err)
			return nil, fmt.Errorf("derive initial key of %X under %q: %w", ksn[:8], bdkLabel, err)
		}
		t.derivations.Add(1)
		p.ik = ik
		if p.dev != nil {
			p.dev.ik = ik
		} else {
			p.owned = append(p.owned, ik)
		}
	}
	// chain is the deep end of the device's last counter path (at most
	// cachedLinks links, shallow to deep). Continue from its deepest link
	// that is also on this counter's path; links below it are stale.
	c := ksn.Counter()
	base, n := p.ik, 0
	var stale []pkcs11.ObjectHandle
	keep := 0
	for i := len(chain) - 1; i >= 0; i-- {
		if onPath(chain[i].w, c) {
			keep = i + 1
			base = chain[i].h
			for steps[n] != chain[i].w {
				n++
			}
			n++
			break
		}
	}
	for _, l := range chain[keep:] {
		stale = append(stale, l.h)
	}
	chain = chain[:keep:keep]
	var derr error
	for _, w := range steps[n:] {
		h, err := t.deriveEncryptData(s, pkcs11.CKM_AES_ECB_ENCRYPT_DATA, base,
			derivationData(dukpt.UsageIntermediate, b.alg, ksn, w), intermediateTemplate(b.alg))
		if err != nil {
			derr = fmt.Errorf("derive intermediate key %08X of %X: %w", w, ksn[:8], err)
			break
		}
		t.derivations.Add(1)
		chain = append(chain, link{w, h})
		base = h
	}
	if p.dev != nil {
		if len(chain) > cachedLinks {
			for _, l := range chain[:len(chain)-cachedLinks] {
				stale = append(stale, l.h)
			}
			chain = append([]link(nil), chain[len(chain)-cachedLinks:]...)
		}
		p.dev.chain = chain
	} else {
		for _, l := range chain {
			p.owned = append(p.owned, l.h)
		}
	}
	_ = t.destroy(s, stale...)
	if derr != nil {
		t.finishPath(s, p, derr)
		return nil, derr
	}
	p.tk = base
	return p, nil
}

// finishPath destroys the request's own objects and checks the cache entry
// back in; after an error the entry is dropped and its objects destroyed,
// so that a broken handle is never reused.
func (t *Token) finishPath(s *session, p *aesPath, err error) {
	_ = t.destroy(s, p.owned...)
	if p.dev == nil {
		return
	}
	if err != nil {
		t.dukpt.drop(p.dev)
	}
	_ = t.destroy(s, t.dukpt.checkin(p.dev)...)
}

// deriveWorking derives the working key of usage and alg from the
// transaction key of p.
func (t *Token) deriveWorking(s *session, p *aesPath, ksn dukpt.AESKSN, usage dukpt.KeyUsage, alg dukpt.KeyAlgorithm) (pkcs11.ObjectHandle, error) {
	tmpl, err := workingKeyTemplate(alg, usage)
	if err != nil {
		return 0, err
	}
	h, err := t.deriveEncryptData(s, pkcs11.CKM_AES_ECB_ENCRYPT_DATA, p.tk, derivationData(usage, alg, ksn, ksn.Counter()), tmpl)
	if err != nil {
		return 0, fmt.Errorf("derive working key %04X/%04X of %s: %w", uint16(usage), uint16(alg), ksn, err)
	}
	t.derivations.Add(1)
	return h, nil
}

// DerivedKey is a DUKPT working key held in the token as a sensitive,
// non-extractable session object. It is safe for concurrent use, except
// that Destroy must not race with other calls. Call Destroy when done;
// Close of the Token destroys it too.
type DerivedKey struct {
	t         *Token
	h         pkcs11.ObjectHandle
	alg       dukpt.KeyAlgorithm
	usage     dukpt.KeyUsage
	destroyed atomic.Bool
}

// Algorithm returns the key's X9.24-3 algorithm.
func (k *DerivedKey) Algorithm() dukpt.KeyAlgorithm { return k.alg }

// Usage returns the key's X9.24-3 usage.
func (k *DerivedKey) Usage() dukpt.KeyUsage { return k.usage }

// AESDUKPTKey derives, entirely inside the token, the working key of usage
// (PIN, MAC, data or key encryption) and alg for ksn from the AES BDK
// bdkLabel, using the device cache. The BDK must have CKA_DERIVE
// (UsageBDK).
func (t *Token) AESDUKPTKey(bdkLabel string, ksn dukpt.AESKSN, usage dukpt.KeyUsage, alg dukpt.KeyAlgorithm) (*DerivedKey, error) {
	if _, err := workingKeyTemplate(alg, usage); err != nil {
		return nil, fmt.Errorf("AES DUKPT key: %w", err)
	}
	var k *DerivedKey
	err := t.with(func(s *session) error {
		p, err := t.derivePath(s, bdkLabel, ksn, true)
		if err != nil {
			return err
		}
		h, err := t.deriveWorking(s, p, ksn, usage, alg)
		t.finishPath(s, p, err)
		if err != nil {
			return err
		}
		k = &DerivedKey{t: t, h: h, alg: alg, usage: usage}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("AES DUKPT key: %w", err)
	}
	return k, nil
}

func (k *DerivedKey) blockMech(iv []byte) (*pkcs11.Mechanism, int, error) {
	bs := 16
	ecb, cbc := uint(pkcs11.CKM_AES_ECB), uint(pkcs11.CKM_AES_CBC)
	switch k.alg {
	case dukpt.Alg2TDEA, dukpt.Alg3TDEA:
		bs, ecb, cbc = 8, pkcs11.CKM_DES3_ECB, pkcs11.CKM_DES3_CBC
	case dukpt.AlgHMAC256:
		return nil, 0, fmt.Errorf("HMAC key cannot encrypt: %w", ErrKeyType)
	}
	if iv == nil {
		return pkcs11.NewMechanism(ecb, nil), bs, nil
	}
	if err := checkIV("DUKPT key", iv, bs); err != nil {
		return nil, 0, err
	}
	return pkcs11.NewMechanism(cbc, append([]byte(nil), iv...)), bs, nil
}

func (k *DerivedKey) crypt(encrypt bool, iv, data []byte) ([]byte, error) {
	if k.destroyed.Load() {
		return nil, fmt.Errorf("DUKPT key: %w", ErrKeyNotFound)
	}
	m, bs, err := k.blockMech(iv)
	if err != nil {
		return nil, err
	}
	if err := checkBlocks("DUKPT key", data, bs); err != nil {
		return nil, err
	}
	var out []byte
	err = k.t.with(func(s *session) error {
		var err error
		out, err = k.t.cipherHandle(s, k.h, encrypt, m, data)
		return err
	})
	return out, err
}

// Encrypt encrypts whole blocks under the key: CBC with iv (16 bytes for
// AES, 8 for TDES), or ECB when iv is nil. No padding.
func (k *DerivedKey) Encrypt(iv, plaintext []byte) ([]byte, error) {
	return k.crypt(true, iv, plaintext)
}

// Decrypt decrypts whole blocks under the key: CBC with iv, or ECB when iv
// is nil. No padding.
func (k *DerivedKey) Decrypt(iv, ciphertext []byte) ([]byte, error) {
	return k.crypt(false, iv, ciphertext)
}

// MAC returns the MAC of data under a MAC working key: AES-CMAC (16 bytes)
// for AES keys, HMAC-SHA256 (32 bytes) for HMAC keys.
func (k *DerivedKey) MAC(data []byte) ([]byte, error) {
	if k.destroyed.Load() {
		return nil, fmt.Errorf("DUKPT key: %w", ErrKeyNotFound)
	}
	var m *pkcs11.Mechanism
	switch k.alg {
	case dukpt.AlgAES128, dukpt.AlgAES192, dukpt.AlgAES256:
		m = pkcs11.NewMechanism(pkcs11.CKM_AES_CMAC, nil)
	case dukpt.AlgHMAC256:
		m = pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)
	default:
		return nil, fmt.Errorf("MAC with a %04X key: %w", uint16(k.alg), ErrKeyType)
	}
	var out []byte
	err := k.t.with(func(s *session) error {
		var err error
		out, err = k.t.sign(s, k.h, m, data)
		return err
	})
	return out, err
}

// Destroy destroys the key object. It is idempotent.
func (k *DerivedKey) Destroy() error {
	if k.destroyed.Swap(true) {
		return nil
	}
	err := k.t.with(func(s *session) error { return k.t.destroy(s, k.h) })
	if errors.Is(err, ErrClosed) {
		return nil // the session objects died with the sessions
	}
	return err
}

// DecryptDUKPT derives the working key of usage and alg for ksn from the
// AES BDK bdkLabel inside the token, decrypts ciphertext with it in the
// token (CBC with iv, which is 16 bytes for AES working keys and 8 for
// TDES ones; ECB when iv is nil; no padding), destroys the working key and
// returns the plaintext. The plaintext
// is card data: the caller parses it and must never log it. It uses the
// device cache. A ciphertext the token rejects returns ErrDecrypt.
func (t *Token) DecryptDUKPT(bdkLabel string, ksn dukpt.AESKSN, usage dukpt.KeyUsage, alg dukpt.KeyAlgorithm, iv, ciphertext []byte) ([]byte, error) {
	tmpl, err := workingKeyTemplate(alg, usage)
	if err != nil {
		return nil, fmt.Errorf("DUKPT decrypt: %w", err)
	}
	if tmpl.usage&UseDecrypt == 0 {
		return nil, fmt.Errorf("DUKPT decrypt with usage %04X: %w", uint16(usage), ErrInput)
	}
	dk := DerivedKey{alg: alg, usage: usage}
	m, bs, err := dk.blockMech(iv)
	if err != nil {
		return nil, fmt.Errorf("DUKPT decrypt: %w", err)
	}
	if err := checkBlocks("DUKPT decrypt", ciphertext, bs); err != nil {
		return nil, err
	}
	var out []byte
	err = t.with(func(s *session) error {
		p, err := t.derivePath(s, bdkLabel, ksn, true)
		if err != nil {
			return err
		}
		wk, err := t.deriveWorking(s, p, ksn, usage, alg)
		t.finishPath(s, p, err)
		if err != nil {
			return err
		}
		out, err = t.cipherHandle(s, wk, false, m, ciphertext)
		if derr := t.destroy(s, wk); err == nil && derr != nil {
			err = fmt.Errorf("destroy working key: %w", derr)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("DUKPT decrypt for KSN %s: %w", ksn, err)
	}
	return out, nil
}

// AESInitialKeyForInjection derives a terminal's initial key (usage 8001)
// from the AES BDK bdkLabel inside the token as a short-lived session
// object that is non-sensitive and extractable, reads its value and
// destroys the object. The BDK itself stays sensitive and non-extractable.
// This is the key-injection step (hsmctl): the value is a terminal key in
// clear in process memory, which the caller must wipe after loading it.
// In production the initial key leaves the HSM only wrapped (TR-31) to a
// key-injection device.
func (t *Token) AESInitialKeyForInjection(bdkLabel string, ikid [8]byte) ([]byte, error) {
	var out []byte
	err := t.with(func(s *session) error {
		b, err := t.bdk(s, bdkLabel)
		if err != nil {
			return err
		}
		ksn := dukpt.NewAESKSN(ikid, 0)
		tmpl := intermediateTemplate(b.alg)
		tmpl.usage = 0
		tmpl.exportable = true
		h, err := t.deriveEncryptData(s, pkcs11.CKM_AES_ECB_ENCRYPT_DATA, b.h, derivationData(dukpt.UsageInitialKey, b.alg, ksn, 0), tmpl)
		if err != nil {
			return fmt.Errorf("derive initial key: %w", err)
		}
		t.derivations.Add(1)
		out, err = t.readValue(s, h)
		if derr := t.destroy(s, h); err == nil {
			err = derr
		}
		return err
	})
	if err != nil {
		clear(out)
		return nil, fmt.Errorf("initial key for %X under %q: %w", ikid, bdkLabel, err)
	}
	return out, nil
}
