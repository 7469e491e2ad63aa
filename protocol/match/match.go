// Package match pairs ISO 8583 responses with the requests waiting for
// them, keyed by message class, terminal and trace number.
package match

import (
	"context"
	"errors"
	"sync"

	"github.com/posgate/posgate/protocol/iso93"
)

// Sentinel errors.
var (
	// ErrInFlight is returned by Begin when a request with the same key is
	// already waiting for its response.
	ErrInFlight = errors.New("match: request with the same key already in flight")
	// ErrCanceled is returned by Wait after Cancel or CancelAll.
	ErrCanceled = errors.New("match: request canceled")
)

// Key identifies a request and its response: the message class (the first
// two MTI digits, so "11" for both 1100 and 1110, "12" for 1200/1210 and
// 1220/1221/1230, "14" for 1420/1421/1430), the terminal id (DE 41) and
// the STAN (DE 11). It relies on a terminal never reusing a STAN while a
// request with it is in flight.
type Key struct {
	Class      string
	TerminalID string
	STAN       string
}

// KeyOf returns the key of a request or response header; a response yields
// the same key as its request. An MTI shorter than two characters yields
// that MTI as the class.
func KeyOf(h iso93.Header) Key {
	class := h.MTI
	if len(class) > 2 {
		class = class[:2]
	}
	return Key{Class: class, TerminalID: h.TerminalID, STAN: h.STAN}
}

// Table holds the requests waiting for responses. The zero value is an
// empty table ready for use. A Table is safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	pending map[Key]*Pending
}

type state uint8

const (
	waiting state = iota
	completed
	canceled
)

// Pending is one request in flight, returned by Table.Begin. Its methods
// are safe for concurrent use.
type Pending struct {
	t    *Table
	key  Key
	done chan struct{} // closed on completion or cancellation
	// guarded by t.mu until done is closed; read-only afterwards
	state state
	resp  []byte
}

// Begin registers a request under key and returns its Pending. If a
// request with the same key is in flight it returns ErrInFlight and leaves
// that request untouched. The caller must end every Pending with Cancel
// (typically deferred) or see it completed; Cancel after completion is a
// no-op.
func (t *Table) Begin(key Key) (*Pending, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pending[key]; ok {
		return nil, ErrInFlight
	}
	if t.pending == nil {
		t.pending = make(map[Key]*Pending)
	}
	p := &Pending{t: t, key: key, done: make(chan struct{})}
	t.pending[key] = p
	return p, nil
}

// Complete hands resp to the request waiting under key, frees the key and
// reports whether there was such a request. A response for which it returns
// false is late or unsolicited. resp is handed over as is; the caller must
// not modify it afterwards.
func (t *Table) Complete(key Key, resp []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pending[key]
	if !ok {
		return false
	}
	delete(t.pending, key)
	p.state, p.resp = completed, resp
	close(p.done)
	return true
}

// CancelAll cancels every request in flight (their Wait returns
// ErrCanceled), frees all keys and returns how many there were. A link
// that goes down calls it so that no caller waits for its timeout.
func (t *Table) CancelAll() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.pending)
	for k, p := range t.pending {
		delete(t.pending, k)
		p.state = canceled
		close(p.done)
	}
	return n
}

// Len returns the number of requests in flight.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Key returns the key p was registered under.
func (p *Pending) Key() Key { return p.key }

// Wait blocks until the response arrives, p is canceled or ctx is done. It
// returns the response, ErrCanceled, or ctx.Err(). When ctx ends first the
// key stays registered until Cancel, so a response arriving meanwhile is
// still taken; Wait may be called again.
func (p *Pending) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.state == completed {
		return p.resp, nil
	}
	return nil, ErrCanceled
}

// Cancel frees p's key so that a later Begin with it succeeds and a late
// response is reported by Complete as unmatched. Waiters get ErrCanceled
// unless the response arrived first. Cancel is idempotent.
func (p *Pending) Cancel() {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.state != waiting {
		return
	}
	if t.pending[p.key] == p {
		delete(t.pending, p.key)
	}
	p.state = canceled
	close(p.done)
}
