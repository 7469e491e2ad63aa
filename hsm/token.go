package hsm

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// Token is an open, logged-in connection to one PKCS#11 token with a pool of
// sessions. It is safe for concurrent use by multiple goroutines; each
// operation borrows one session for its duration, so at most
// Config.PoolSize operations run in the token at once and the rest wait.
type Token struct {
	mod   *module
	ctx   *pkcs11.Ctx
	slot  uint
	label string

	pool     chan *session
	sessions []*session
	done     chan struct{}
	closing  sync.Once
	closeErr error

	mu      sync.RWMutex
	handles map[handleKey]pkcs11.ObjectHandle // label lookups, guarded by mu

	dukpt *dukptCache

	derivations atomic.Uint64
	cacheHits   atomic.Uint64
	cacheMisses atomic.Uint64
}

// session is one pooled PKCS#11 session with its private C buffer.
type session struct {
	h   pkcs11.SessionHandle
	buf cBuf
}

type handleKey struct {
	label string
	class uint
}

// Open loads the module (C_Initialize once per process), finds the token by
// label, opens Config.PoolSize read-write sessions and logs the user in.
// The caller must Close the Token. For SoftHSM2, SOFTHSM2_CONF must name
// the configuration of the token before the process's first Open (see
// UseSoftHSMConf).
func Open(cfg Config) (*Token, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	mod, err := acquireModule(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	t := &Token{
		mod:     mod,
		ctx:     mod.ctx,
		label:   cfg.TokenLabel,
		pool:    make(chan *session, cfg.PoolSize),
		done:    make(chan struct{}),
		handles: map[handleKey]pkcs11.ObjectHandle{},
	}
	if err := t.open(cfg); err != nil {
		t.closeSessions()
		_ = mod.release()
		return nil, err
	}
	t.dukpt = newDUKPTCache(cfg.MaxDUKPTDevices)
	return t, nil
}

func (t *Token) open(cfg Config) error {
	slot, err := findSlot(t.ctx, cfg.TokenLabel)
	if err != nil {
		return err
	}
	t.slot = slot
	for i := 0; i < cfg.PoolSize; i++ {
		h, err := t.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("open session %d on token %q: %w", i, cfg.TokenLabel, err)
		}
		s := &session{h: h, buf: newCBuf()}
		t.sessions = append(t.sessions, s)
		t.pool <- s
	}
	// Login state is per application and token: one login covers every
	// session, including those of another Token on the same token.
	if err := t.ctx.Login(t.sessions[0].h, pkcs11.CKU_USER, cfg.PIN); err != nil && !rvIs(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		if rvIs(err, pkcs11.CKR_PIN_INCORRECT) {
			return fmt.Errorf("log in to token %q: wrong PIN: %w", cfg.TokenLabel, err)
		}
		return fmt.Errorf("log in to token %q: %w", cfg.TokenLabel, err)
	}
	return nil
}

// findSlot returns the slot whose token carries label.
func findSlot(ctx *pkcs11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("list slots: %w", err)
	}
	for _, s := range slots {
		info, err := ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if strings.TrimRight(info.Label, " \x00") == label && info.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			return s, nil
		}
	}
	return 0, fmt.Errorf("token %q among %d slots: %w", label, len(slots), ErrTokenNotFound)
}

// Label returns the token label the Token was opened with.
func (t *Token) Label() string { return t.label }

// Close waits for running operations to return their sessions, destroys
// the DUKPT cache's session objects, closes every session and releases the
// module (C_Finalize after the process's last Token). Methods called after
// Close return ErrClosed. Close is idempotent.
func (t *Token) Close() error {
	t.closing.Do(func() {
		close(t.done)
		// Collect every session: in-flight operations return theirs.
		for range t.sessions {
			<-t.pool
		}
		// Closing the sessions destroys all session objects, including the
		// DUKPT cache's; drop the cache's handles first.
		t.dukpt.reset()
		t.closeErr = errors.Join(t.closeSessions(), t.mod.release())
	})
	return t.closeErr
}

func (t *Token) closeSessions() error {
	var errs []error
	for _, s := range t.sessions {
		if err := t.ctx.CloseSession(s.h); err != nil {
			errs = append(errs, fmt.Errorf("close session: %w", err))
		}
		s.buf.free()
	}
	t.sessions = nil
	return errors.Join(errs...)
}

// get borrows a session; put returns it.
func (t *Token) get() (*session, error) {
	select {
	case <-t.done:
		return nil, ErrClosed
	default:
	}
	select {
	case s := <-t.pool:
		return s, nil
	case <-t.done:
		return nil, ErrClosed
	}
}

func (t *Token) put(s *session) { t.pool <- s }

// with runs f on a borrowed session.
func (t *Token) with(f func(s *session) error) error {
	s, err := t.get()
	if err != nil {
		return err
	}
	defer t.put(s)
	return f(s)
}

// find returns the handle of the single object of class with label, from
// the cache or the token.
func (t *Token) find(s *session, label string, class uint) (pkcs11.ObjectHandle, error) {
	k := handleKey{label, class}
	t.mu.RLock()
	h, ok := t.handles[k]
	t.mu.RUnlock()
	if ok {
		return h, nil
	}
	hs, err := t.findAll(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}, 2)
	if err != nil {
		return 0, fmt.Errorf("find key %q: %w", label, err)
	}
	switch len(hs) {
	case 0:
		return 0, fmt.Errorf("key %q: %w", label, ErrKeyNotFound)
	case 1:
	default:
		return 0, fmt.Errorf("key %q: %w", label, ErrDuplicateLabel)
	}
	t.mu.Lock()
	t.handles[k] = hs[0]
	t.mu.Unlock()
	return hs[0], nil
}

// findAll returns up to max objects matching tmpl (all when max <= 0).
func (t *Token) findAll(s *session, tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	if err := t.ctx.FindObjectsInit(s.h, tmpl); err != nil {
		return nil, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := t.ctx.FindObjects(s.h, 64)
		if err != nil {
			_ = t.ctx.FindObjectsFinal(s.h)
			return nil, fmt.Errorf("C_FindObjects: %w", err)
		}
		out = append(out, hs...)
		if len(hs) == 0 || (max > 0 && len(out) >= max) {
			break
		}
	}
	if err := t.ctx.FindObjectsFinal(s.h); err != nil {
		return nil, fmt.Errorf("C_FindObjectsFinal: %w", err)
	}
	return out, nil
}

// labelTaken reports whether any object carries label.
func (t *Token) labelTaken(s *session, label string) (bool, error) {
	hs, err := t.findAll(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}, 1)
	if err != nil {
		return false, fmt.Errorf("look up label %q: %w", label, err)
	}
	return len(hs) > 0, nil
}

// forget drops cached handles for label.
func (t *Token) forget(label string) {
	t.mu.Lock()
	for k := range t.handles {
		if k.label == label {
			delete(t.handles, k)
		}
	}
	t.mu.Unlock()
}

// Stats are cumulative counters of a Token's DUKPT work.
type Stats struct {
	// Derivations counts C_DeriveKey calls made for DUKPT.
	Derivations uint64
	// CacheHits counts DUKPT requests that found their device's initial
	// key in the cache; CacheMisses those that derived it from the BDK.
	CacheHits, CacheMisses uint64
	// CachedDevices is the number of devices currently cached.
	CachedDevices int
}

// Stats returns a snapshot of the counters. It is safe to call at any time.
func (t *Token) Stats() Stats {
	return Stats{
		Derivations:   t.derivations.Load(),
		CacheHits:     t.cacheHits.Load(),
		CacheMisses:   t.cacheMisses.Load(),
		CachedDevices: t.dukpt.len(),
	}
}
