package hsm

import (
	"container/list"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
	"github.com/posgate/posgate/emv/cryptogram"
)

// EMV issuer cryptograms in the token (EMV 4.4 Book 2 Annex A1).
//
// What runs in the token: the issuer master key for application
// cryptograms (IMK-AC) is a persistent, sensitive, non-extractable DES2
// object with CKA_DERIVE (import it with ImportTDES(label, value,
// UseDerive)). The ICC master key is derived from it with one
// C_DeriveKey(CKM_DES3_ECB_ENCRYPT_DATA) over option A's Y || (Y XOR FF..)
// into a sensitive, non-extractable DES2 session object. The AC session
// key is derived from the ICC master key the same way over the common
// session key data (R with F0, R with 0F) into a DES2 session object, and
// its left half KL into a single-DES session object (the same derivation
// over the first 8 bytes only). SoftHSM 2.6.1 has no CKM_DES3_MAC or
// retail-MAC mechanism, so ISO 9797-1 MAC algorithm 3 is assembled from
// two token operations: CKM_DES_CBC under KL (zero IV) over every padded
// block but the last, then CKM_DES3_ECB under the session key (which is
// E(KL) D(KR) E(KL)) over the last block XOR the CBC result. ARPC method 1
// is CKM_DES3_ECB under the ICC master key or the session key; method 2 is
// the same MAC under the session key. No key value ever leaves the token.
//
// AES IMKs (EMV Book 2 Annex A1 with n = 16; see package
// emv/cryptogram, aes.go, for the definitions): the IMK is a persistent,
// sensitive, non-extractable CKK_AES object (16, 24 or 32 bytes) with
// CKA_DERIVE (ImportAES(label, value, UseDerive)). The EMVIssuer reads the
// IMK's CKA_KEY_TYPE (and CKA_VALUE_LEN) once, on first use, and from then
// on uses the AES path for every request: the ICC master key is one
// C_DeriveKey(CKM_AES_ECB_ENCRYPT_DATA) over option C's Y (AES-128) or Y
// || (Y XOR FF..) (AES-192/256) into an AES session object of the IMK's
// length (CKA_VALUE_LEN keeps the leftmost k bits); the AC session key is
// one more over R (AES-128) or F1 || F2 (AES-192/256), R being the
// request's 8-byte R followed by 8 zero bytes (ATC || 00 x14). The
// application cryptogram is the leftmost 8 bytes of one C_Sign with
// CKM_AES_CMAC under the session key: nothing but the MAC is in process
// memory. ARPC method 1 is CKM_AES_ECB of (ARQC XOR ARC..) || 00 x8 under
// the ICC master key or the session key, cut to 8 bytes; method 2 the
// leftmost 4 bytes of the CMAC under the session key. Key check values of
// AES keys are the token's (KCV: CMAC of a zero block).
//
// What is in process memory: the card's PAN and PSN (the caller has them
// anyway), the derivation data (public functions of PAN, PSN and ATC), the
// transaction data, the expected and received cryptograms, and one 8-byte
// chaining value: the single-DES CBC result under KL before the last block.
// That value and the final MAC are plaintext/ciphertext pairs under parts
// of the AC session key, the known weakness of the retail MAC (a 2^56
// search recovers KL, then KR); a session key serves one ATC of one card,
// and every ARQC on the wire is such a pair already, so nothing here
// widens what an eavesdropper has. The ICC master key and the IMK are
// never exposed, not even as such pairs.
//
// Cache: per card (IMK label, Y) the ICC master key object is kept in the
// token, least recently used first out beyond the configured bound, so a
// card's next ARQC costs two derivations instead of three. The cache key
// is SHA-256 of the IMK label and Y, so no PAN is kept in the map. Objects
// are reference counted: an entry evicted while another goroutine uses it
// is destroyed by the last user. No lock is held across a token call.

// EMV errors callers branch on.
var (
	// ErrCryptogram is returned when an ARQC (or any application
	// cryptogram) does not verify under the card's session key.
	ErrCryptogram = errors.New("hsm: application cryptogram does not verify")
)

// DefaultMaxEMVCards is the default bound of an EMVIssuer's ICC master key
// cache.
const DefaultMaxEMVCards = 4096

// ARPCKey selects the key of ARPC method 1.
type ARPCKey int

// ARPC method 1 keys.
const (
	// ARPCKeyICCMaster encrypts under the ICC master key (the published
	// vector, and common for Visa CVN 10/18 profiles).
	ARPCKeyICCMaster ARPCKey = iota + 1
	// ARPCKeySession encrypts under the AC session key (EMV 4.x common
	// core definition).
	ARPCKeySession
)

// ARQCRequest is what the issuer needs to check one application
// cryptogram: the card (PAN digits and the BCD PAN sequence number from
// 5F34, 00 when absent), R of the common session key derivation
// (cryptogram.ACSessionR of the ATC for EMV CSK), the concatenated
// transaction data the card MACed, and the cryptogram from 9F26.
// PAN is card data: never log a request.
type ARQCRequest struct {
	PAN  string
	PSN  byte
	R    [8]byte
	Data []byte
	ARQC [8]byte
}

// EMVStats are cumulative counters of an EMVIssuer.
type EMVStats struct {
	// Derivations counts C_DeriveKey calls.
	Derivations uint64
	// CacheHits counts requests that found the card's ICC master key in
	// the cache; CacheMisses those that derived it.
	CacheHits, CacheMisses uint64
	// CachedCards is the number of ICC master keys currently cached.
	CachedCards int
}

// EMVIssuer computes and checks EMV cryptograms under one IMK-AC held in
// the token: the TDES variants for a DES2/DES3 IMK, the AES variants for
// an AES IMK (see the file notes), chosen by the IMK's key type, which
// is read once on first use. It is safe for concurrent use. Close it
// before the Token; after replacing the IMK in the token, Close it and
// make a new one (its cached ICC master keys, and the key type it read,
// come from the old IMK).
type EMVIssuer struct {
	t     *Token
	imk   string
	cache *iccCache // nil when disabled

	kindMu sync.Mutex
	kind   imkKind // zero until read from the token

	derivations, hits, misses atomic.Uint64
}

// imkKind is the family of an IMK: aesLen is 0 for TDES, else the AES key
// length in bytes (16, 24 or 32).
type imkKind struct {
	known  bool
	aesLen int
}

// icc is a card's ICC master key object and its family.
type icc struct {
	h    pkcs11.ObjectHandle
	kind imkKind
}

// EMVIssuer returns an EMVIssuer for the IMK-AC labelled imkLabel.
// maxCards bounds its ICC master key cache: 0 means DefaultMaxEMVCards,
// -1 disables the cache (every request derives the ICC master key and
// destroys it after use); other negative values are refused. The key is
// looked up on first use.
func (t *Token) EMVIssuer(imkLabel string, maxCards int) (*EMVIssuer, error) {
	if err := checkLabel(imkLabel); err != nil {
		return nil, fmt.Errorf("EMV issuer: %w", err)
	}
	if maxCards < -1 {
		return nil, fmt.Errorf("EMV issuer %q: maxCards %d: want -1 (off), 0 (default) or a positive bound: %w", imkLabel, maxCards, ErrInput)
	}
	e := &EMVIssuer{t: t, imk: imkLabel}
	if maxCards == 0 {
		maxCards = DefaultMaxEMVCards
	}
	if maxCards > 0 {
		e.cache = &iccCache{max: maxCards, m: map[[32]byte]*iccEntry{}, lru: list.New()}
	}
	return e, nil
}

// Close destroys the cached ICC master keys. Entries in use are destroyed
// by their last user. It is idempotent; the EMVIssuer stays usable (the
// cache refills).
func (e *EMVIssuer) Close() error {
	if e.cache == nil {
		return nil
	}
	victims := e.cache.reset()
	if len(victims) == 0 {
		return nil
	}
	err := e.t.with(func(s *session) error { return e.t.destroy(s, victims...) })
	if errors.Is(err, ErrClosed) {
		return nil // the sessions, and with them the objects, are gone
	}
	if err != nil {
		return fmt.Errorf("EMV issuer %q: close: %w", e.imk, err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (e *EMVIssuer) Stats() EMVStats {
	st := EMVStats{Derivations: e.derivations.Load(), CacheHits: e.hits.Load(), CacheMisses: e.misses.Load()}
	if e.cache != nil {
		st.CachedCards = e.cache.len()
	}
	return st
}

// ICCMasterKeyKCV returns the key check value (6 hex digits) of the card's
// ICC master key, derived in the token: for checking a card
// personalisation against the issuer's keys.
func (e *EMVIssuer) ICCMasterKeyKCV(pan string, psn byte) (string, error) {
	var out string
	err := e.withICC(pan, psn, func(s *session, mk icc) error {
		kcv, err := e.kcv(s, mk.h, mk.kind, UseEncrypt)
		if err != nil {
			return err
		}
		out = fmt.Sprintf("%X", kcv)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("EMV ICC master key KCV: %w", err)
	}
	return out, nil
}

// SessionKeyKCV returns the key check value of the card's common session
// key for r, derived in the token. For an AES IMK the session key's R is
// r followed by 8 zero bytes.
func (e *EMVIssuer) SessionKeyKCV(pan string, psn byte, r [8]byte) (string, error) {
	var out string
	err := e.withICC(pan, psn, func(s *session, mk icc) error {
		sk, err := e.deriveSession(s, mk, r, false)
		if err != nil {
			return err
		}
		defer func() { _ = e.t.destroy(s, sk.full) }()
		kcv, err := e.kcv(s, sk.full, mk.kind, UseEncrypt|UseSign)
		if err != nil {
			return err
		}
		out = fmt.Sprintf("%X", kcv)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("EMV session key KCV: %w", err)
	}
	return out, nil
}

// VerifyARQC checks req.ARQC against the MAC of req.Data under the card's
// AC session key, computed in the token. It returns nil when they match,
// ErrCryptogram when they do not, and another error when the token could
// not compute it. It does not check the ATC: see emv.ATCGuard.
func (e *EMVIssuer) VerifyARQC(req ARQCRequest) error {
	err := e.withICC(req.PAN, req.PSN, func(s *session, mk icc) error {
		return e.verify(s, mk, req)
	})
	if err != nil {
		return fmt.Errorf("verify ARQC: %w", err)
	}
	return nil
}

// VerifyARQCAndARPC1 verifies req as VerifyARQC does and, only when it
// verifies, returns the ARPC of method 1 for the authorisation response
// code arc under the key key selects; one token session, one ICC master
// key lookup. Issuer authentication data (tag 91) is ARPC || ARC.
func (e *EMVIssuer) VerifyARQCAndARPC1(req ARQCRequest, arc [2]byte, key ARPCKey) ([8]byte, error) {
	var out [8]byte
	err := e.withICC(req.PAN, req.PSN, func(s *session, mk icc) error {
		if err := e.verify(s, mk, req); err != nil {
			return err
		}
		var err error
		out, err = e.arpc1(s, mk, req, arc, key)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("verify ARQC and make ARPC method 1: %w", err)
	}
	return out, nil
}

// ARPC1 returns the ARPC of method 1 for req.ARQC and arc without
// verifying the ARQC (for a decline whose ARQC failed, issuers still
// answer with an ARPC over the ARQC received).
func (e *EMVIssuer) ARPC1(req ARQCRequest, arc [2]byte, key ARPCKey) ([8]byte, error) {
	var out [8]byte
	err := e.withICC(req.PAN, req.PSN, func(s *session, mk icc) error {
		var err error
		out, err = e.arpc1(s, mk, req, arc, key)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("ARPC method 1: %w", err)
	}
	return out, nil
}

// ARPC2 returns the 4-byte ARPC of method 2 for req.ARQC, the card status
// update csu and up to 8 bytes of proprietary authentication data: the
// leftmost 4 bytes of the MAC (retail MAC for TDES, CMAC for AES) over
// ARQC || CSU || prop under the AC session key, in the token. It does not verify the ARQC. Issuer
// authentication data (tag 91) is ARPC || CSU || prop.
func (e *EMVIssuer) ARPC2(req ARQCRequest, csu [4]byte, prop []byte) ([4]byte, error) {
	var out [4]byte
	data, err := cryptogram.ARPC2Data(req.ARQC, csu, prop)
	if err != nil {
		return out, fmt.Errorf("ARPC method 2: %w", ErrInput)
	}
	err = e.withICC(req.PAN, req.PSN, func(s *session, mk icc) error {
		sk, err := e.deriveSession(s, mk, req.R, true)
		if err != nil {
			return err
		}
		defer func() { _ = e.t.destroy(s, sk.full, sk.left) }()
		m, err := e.mac(s, mk.kind, sk, data)
		if err != nil {
			return err
		}
		copy(out[:], m[:4])
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("ARPC method 2: %w", err)
	}
	return out, nil
}

func (e *EMVIssuer) verify(s *session, mk icc, req ARQCRequest) error {
	sk, err := e.deriveSession(s, mk, req.R, true)
	if err != nil {
		return err
	}
	defer func() { _ = e.t.destroy(s, sk.full, sk.left) }()
	m, err := e.mac(s, mk.kind, sk, req.Data)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(m[:], req.ARQC[:]) != 1 {
		return ErrCryptogram
	}
	return nil
}

func (e *EMVIssuer) arpc1(s *session, mk icc, req ARQCRequest, arc [2]byte, key ARPCKey) ([8]byte, error) {
	var out [8]byte
	h := mk.h
	switch key {
	case ARPCKeyICCMaster:
	case ARPCKeySession:
		sk, err := e.deriveSession(s, mk, req.R, false)
		if err != nil {
			return out, err
		}
		defer func() { _ = e.t.destroy(s, sk.full) }()
		h = sk.full
	default:
		return out, fmt.Errorf("ARPC key selector %d: %w", key, ErrInput)
	}
	var c []byte
	var err error
	if mk.kind.aesLen > 0 {
		d := cryptogram.ARPC1DataAES(req.ARQC, arc)
		c, err = e.t.cipherHandle(s, h, true, pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil), d[:])
	} else {
		d := cryptogram.ARPC1Data(req.ARQC, arc)
		c, err = e.t.cipherHandle(s, h, true, pkcs11.NewMechanism(pkcs11.CKM_DES3_ECB, nil), d[:])
	}
	if err != nil {
		return out, err
	}
	copy(out[:], c)
	return out, nil
}

// sessionKeys are the AC session key's token objects.
type sessionKeys struct {
	full pkcs11.ObjectHandle // DES2 KL||KR, or the AES session key
	left pkcs11.ObjectHandle // DES2 KL||KL (single DES under KL), 0 when not derived or AES
}

// deriveSession derives the AC session key for r from the ICC master key
// mk, and for TDES its left half as a single-DES key when withLeft.
func (e *EMVIssuer) deriveSession(s *session, mk icc, r [8]byte, withLeft bool) (sessionKeys, error) {
	var sk sessionKeys
	var err error
	if n := mk.kind.aesLen; n > 0 {
		data, err := cryptogram.SessionKeyDataAES(cryptogram.ExtendR(r), n)
		if err != nil {
			return sk, fmt.Errorf("derive AC session key: %w", err)
		}
		e.derivations.Add(1)
		sk.full, err = e.t.deriveEncryptData(s, pkcs11.CKM_AES_ECB_ENCRYPT_DATA, mk.h, data, sessionKey{keyType: pkcs11.CKK_AES, valueLen: n, usage: UseEncrypt | UseSign})
		if err != nil {
			return sk, fmt.Errorf("derive AES AC session key: %w", err)
		}
		return sk, nil
	}
	data := cryptogram.SessionKeyData(r)
	e.derivations.Add(1)
	sk.full, err = e.t.deriveEncryptData(s, pkcs11.CKM_DES3_ECB_ENCRYPT_DATA, mk.h, data[:], sessionKey{keyType: pkcs11.CKK_DES2, usage: UseEncrypt})
	if err != nil {
		return sk, fmt.Errorf("derive AC session key: %w", err)
	}
	if !withLeft {
		return sk, nil
	}
	// KL || KL: the encryption of (R with F0) twice. As a DES2 key it
	// computes single DES under KL.
	var ll [16]byte
	copy(ll[:], data[:8])
	copy(ll[8:], data[:8])
	e.derivations.Add(1)
	sk.left, err = e.t.deriveEncryptData(s, pkcs11.CKM_DES3_ECB_ENCRYPT_DATA, mk.h, ll[:], sessionKey{keyType: pkcs11.CKK_DES2, usage: UseEncrypt})
	if err != nil {
		_ = e.t.destroy(s, sk.full)
		return sessionKeys{}, fmt.Errorf("derive AC session key half: %w", err)
	}
	return sk, nil
}

// mac computes the application cryptogram MAC of data under the session
// key sk: for TDES ISO 9797-1 MAC algorithm 3 with padding method 2 in two
// token operations, for AES the leftmost 8 bytes of CKM_AES_CMAC (see the
// file notes).
func (e *EMVIssuer) mac(s *session, kind imkKind, sk sessionKeys, data []byte) ([8]byte, error) {
	if kind.aesLen > 0 {
		var out [8]byte
		m, err := e.t.sign(s, sk.full, pkcs11.NewMechanism(pkcs11.CKM_AES_CMAC, nil), data)
		if err != nil {
			return out, fmt.Errorf("AES-CMAC: %w", err)
		}
		if len(m) < 8 {
			return out, fmt.Errorf("AES-CMAC of %d bytes: %w", len(m), ErrInput)
		}
		copy(out[:], m[:8])
		return out, nil
	}
	return e.t.retailMAC(s, sk.left, sk.full, cryptogram.Pad2(data))
}

// kcv returns the 3-byte check value of a derived key h of the IMK's
// family whose usages are u: the token's KCV (KCV of AES keys is the CMAC
// of a zero block, computed with whichever usage h has).
func (e *EMVIssuer) kcv(s *session, h pkcs11.ObjectHandle, kind imkKind, u Usage) ([]byte, error) {
	ki := KeyInfo{Kind: KindTDES, Usage: u}
	if kind.aesLen > 0 {
		ki.Kind = KindAES
	}
	return e.t.kcv(s, h, ki)
}

// imkKind returns the IMK's family, reading CKA_KEY_TYPE (and for AES
// CKA_VALUE_LEN) from the token the first time.
func (e *EMVIssuer) imkKind(s *session, imk pkcs11.ObjectHandle) (imkKind, error) {
	e.kindMu.Lock()
	k := e.kind
	e.kindMu.Unlock()
	if k.known {
		return k, nil
	}
	a, err := e.t.ctx.GetAttributeValue(s.h, imk, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return k, fmt.Errorf("read key type of %q: %w", e.imk, err)
	}
	switch kt := ulong(a[0].Value); kt {
	case pkcs11.CKK_DES2, pkcs11.CKK_DES3:
		k = imkKind{known: true}
	case pkcs11.CKK_AES:
		a, err := e.t.ctx.GetAttributeValue(s.h, imk, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil)})
		if err != nil {
			return k, fmt.Errorf("read key length of %q: %w", e.imk, err)
		}
		n := int(ulong(a[0].Value))
		if n != 16 && n != 24 && n != 32 {
			return k, fmt.Errorf("IMK %q is an AES key of %d bytes: %w", e.imk, n, ErrKeyType)
		}
		k = imkKind{known: true, aesLen: n}
	default:
		return k, fmt.Errorf("IMK %q has key type %#x, want DES2, DES3 or AES: %w", e.imk, kt, ErrKeyType)
	}
	e.kindMu.Lock()
	e.kind = k
	e.kindMu.Unlock()
	return k, nil
}

// retailMAC computes ISO 9797-1 MAC algorithm 3 of p, already padded to a
// whole number of 8-byte blocks, under the DES2 key full (KL||KR) whose
// left half is also in the token as left (a DES2 object KL||KL, which
// computes single DES under KL): CKM_DES3_CBC under left (zero IV) over
// every block but the last, then CKM_DES3_ECB under full over the last
// block XOR that chaining value. SoftHSM has neither a retail-MAC
// mechanism nor single DES, hence the two objects. Shared by the EMV
// cryptograms and the card verification values (cvv.go).
func (t *Token) retailMAC(s *session, left, full pkcs11.ObjectHandle, p []byte) ([8]byte, error) {
	var out [8]byte
	if len(p) == 0 || len(p)%8 != 0 {
		return out, fmt.Errorf("MAC input of %d bytes: %w", len(p), ErrInput)
	}
	last := p[len(p)-8:]
	var x [8]byte
	copy(x[:], last)
	if len(p) > 8 {
		c, err := t.cipherHandle(s, left, true, pkcs11.NewMechanism(pkcs11.CKM_DES3_CBC, make([]byte, 8)), p[:len(p)-8])
		if err != nil {
			return out, fmt.Errorf("MAC chaining: %w", err)
		}
		subtle.XORBytes(x[:], x[:], c[len(c)-8:])
		clear(c)
	}
	c, err := t.cipherHandle(s, full, true, pkcs11.NewMechanism(pkcs11.CKM_DES3_ECB, nil), x[:])
	clear(x[:])
	if err != nil {
		return out, fmt.Errorf("MAC final block: %w", err)
	}
	copy(out[:], c)
	return out, nil
}

// withICC runs f on a session with the card's ICC master key, from the
// cache or derived from the IMK.
func (e *EMVIssuer) withICC(pan string, psn byte, f func(s *session, mk icc) error) error {
	// Both options read the PAN and PSN alike: refuse a bad card before
	// any token call.
	if _, err := cryptogram.OptionCData(pan, psn); err != nil {
		return fmt.Errorf("card: %w: %w", ErrInput, err)
	}
	return e.t.withKey(e.imk, pkcs11.CKO_SECRET_KEY, func(s *session, imk pkcs11.ObjectHandle) error {
		kind, err := e.imkKind(s, imk)
		if err != nil {
			return err
		}
		mech, data, tmpl, err := iccDerivation(kind, pan, psn)
		if err != nil {
			return fmt.Errorf("card: %w: %w", ErrInput, err)
		}
		var key [32]byte
		if e.cache != nil {
			h := sha256.New()
			h.Write([]byte(e.imk))
			h.Write([]byte{0, byte(kind.aesLen)})
			h.Write(data)
			h.Sum(key[:0])
			if ent := e.cache.get(key); ent != nil {
				e.hits.Add(1)
				err := f(s, icc{h: ent.h, kind: kind})
				if v := e.cache.release(ent); v != 0 {
					_ = e.t.destroy(s, v)
				}
				return err
			}
		}
		e.misses.Add(1)
		e.derivations.Add(1)
		mk, err := e.t.deriveEncryptData(s, mech, imk, data, tmpl)
		if err != nil {
			return fmt.Errorf("derive ICC master key under %q: %w", e.imk, err)
		}
		if e.cache == nil {
			err := f(s, icc{h: mk, kind: kind})
			if derr := e.t.destroy(s, mk); err == nil {
				err = derr
			}
			return err
		}
		ent, victims := e.cache.add(key, mk)
		if len(victims) > 0 {
			_ = e.t.destroy(s, victims...)
		}
		err = f(s, icc{h: ent.h, kind: kind})
		if v := e.cache.release(ent); v != 0 {
			_ = e.t.destroy(s, v)
		}
		return err
	})
}

// iccDerivation returns the mechanism, derivation data and template of
// the ICC master key: option A (TDES) or option C (AES).
func iccDerivation(kind imkKind, pan string, psn byte) (uint, []byte, sessionKey, error) {
	if kind.aesLen > 0 {
		data, err := cryptogram.OptionCDerivationData(pan, psn, kind.aesLen)
		return pkcs11.CKM_AES_ECB_ENCRYPT_DATA, data, sessionKey{keyType: pkcs11.CKK_AES, valueLen: kind.aesLen, usage: UseDerive | UseEncrypt}, err
	}
	data, err := cryptogram.OptionADerivationData(pan, psn)
	return pkcs11.CKM_DES3_ECB_ENCRYPT_DATA, data[:], sessionKey{keyType: pkcs11.CKK_DES2, usage: UseDerive | UseEncrypt}, err
}

// iccCache maps cards to ICC master key session objects. Safe for
// concurrent use.
type iccCache struct {
	max int
	mu  sync.Mutex
	m   map[[32]byte]*iccEntry
	lru *list.List // front: most recent; values *iccEntry
}

type iccEntry struct {
	key     [32]byte
	h       pkcs11.ObjectHandle
	refs    int
	evicted bool
	elem    *list.Element
}

func (c *iccCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// get returns the entry for k with a reference taken, or nil.
func (c *iccCache) get(k [32]byte) *iccEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	ent := c.m[k]
	if ent == nil {
		return nil
	}
	ent.refs++
	c.lru.MoveToFront(ent.elem)
	return ent
}

// add caches h for k and returns the entry with a reference taken, and
// the handles the caller must destroy: evicted idle entries, and h itself
// when another goroutine cached k first (its entry is returned instead).
func (c *iccCache) add(k [32]byte, h pkcs11.ObjectHandle) (*iccEntry, []pkcs11.ObjectHandle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ent := c.m[k]; ent != nil {
		ent.refs++
		c.lru.MoveToFront(ent.elem)
		return ent, []pkcs11.ObjectHandle{h}
	}
	ent := &iccEntry{key: k, h: h, refs: 1}
	ent.elem = c.lru.PushFront(ent)
	c.m[k] = ent
	var victims []pkcs11.ObjectHandle
	for e := c.lru.Back(); len(c.m) > c.max && e != nil; {
		v := e.Value.(*iccEntry)
		e = e.Prev()
		if v == ent {
			continue
		}
		c.lru.Remove(v.elem)
		delete(c.m, v.key)
		if v.refs > 0 {
			v.evicted = true
		} else {
			victims = append(victims, v.h)
		}
	}
	return ent, victims
}

// release drops a reference; it returns the handle to destroy when the
// entry was evicted and this was its last user, else 0.
func (c *iccCache) release(ent *iccEntry) pkcs11.ObjectHandle {
	c.mu.Lock()
	defer c.mu.Unlock()
	ent.refs--
	if ent.evicted && ent.refs == 0 {
		return ent.h
	}
	return 0
}

// reset empties the cache, returning idle handles to destroy and marking
// busy entries for destruction by their last user.
func (c *iccCache) reset() []pkcs11.ObjectHandle {
	c.mu.Lock()
	defer c.mu.Unlock()
	var victims []pkcs11.ObjectHandle
	for k, ent := range c.m {
		delete(c.m, k)
		if ent.refs > 0 {
			ent.evicted = true
		} else {
			victims = append(victims, ent.h)
		}
	}
	c.lru.Init()
	return victims
}
