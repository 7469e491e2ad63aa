// Package outbox delivers what the gateway owes the center and keeps
// durably until the center has it: timeout reversals (1420/1421 until a
// final 1430) and captured signatures (1304 file actions). Each sender
// reloads what a previous run left in the offline store before new work
// (docs/offline.md, docs/uplink.md, docs/signatures.md).
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/protocol/iso93"
)

// reversalFor builds the 1420 timeout reversal of an original 1100/1200 whose
// outcome is unknown. It carries the original's STAN (the match key differs by
// class), DE 56 naming the original, and an idempotency key derived from the
// original's, so the center reverses at most once however often it is sent.
func reversalFor(orig []byte) (iso93.Reversal, error) {
	var req iso93.FinancialRequest
	if err := iso93.UnpackInto(orig, &req); err != nil {
		return iso93.Reversal{}, fmt.Errorf("unpack original: %w", err)
	}
	mti := string(orig[:4])
	od, err := iso93.OriginalData{MTI: mti, STAN: req.STAN, LocalTime: req.LocalTime, AcquirerID: req.AcquirerID}.Encode()
	if err != nil {
		return iso93.Reversal{}, fmt.Errorf("original data: %w", err)
	}
	rev := iso93.Reversal{
		Trace:        req.Trace,
		Payment:      req.Payment,
		OriginalData: od,
		Fingerprint:  req.Fingerprint,
		MaskedPAN:    req.MaskedPAN,
	}
	rev.FunctionCode = iso93.FunctionFullReversal
	rev.ReasonCode = iso93.ReasonTimeoutReversal
	if req.IdempotencyKey != "" {
		k := req.IdempotencyKey + "-R"
		if len(k) > 64 {
			k = k[len(k)-64:]
		}
		rev.IdempotencyKey = k
	}
	return rev, nil
}

// ReversalStore keeps timeout reversals across restarts (the offline
// store's gw.reversal bucket, docs/offline.md). *offline.Store satisfies
// it. AddReversal returns after the record is durable.
type ReversalStore interface {
	AddReversal(key string, msg []byte) (uint64, error)
	DeleteReversal(ids ...uint64) error
	LoadReversals(fn func(id uint64, key string, msg []byte, err error)) error
}

// DefaultReversalQueue bounds the reversals a Reverser without a Store
// holds.
const DefaultReversalQueue = 1024

// Reverser sends timeout reversals to the center until each gets a final
// 1430: 1420 first, then 1421 repeats with capped backoff. A 1430 whose
// action code means "try later" (906, 907, 909, 911, 923, as for advices:
// offline.Classify) is not final and the reversal is repeated.
//
// With a Store, Enqueue writes the packed 1420 durably before it returns
// (so before the terminal is answered), the record is deleted when the
// final 1430 arrives, and Run first reloads the reversals a previous run
// left and sends them, as 1421 repeats (the 1420 may have reached the
// center before the restart); the idempotency key is the same, so the
// center reverses at most once. Without a Store reversals live in memory
// only, at most DefaultReversalQueue of them.
//
// Reverser is safe for concurrent use; Run owns its goroutine.
type Reverser struct {
	Uplink Uplink
	Logger *slog.Logger
	// Store keeps the reversals across restarts; nil: memory only.
	Store ReversalStore
	// Retry bounds the wait between attempts. Defaults 1s and 1m.
	RetryMin, RetryMax time.Duration

	mu       sync.Mutex
	q        []*pendingReversal
	known    map[uint64]bool // store ids queued by this process
	inflight int
	wake     chan struct{}
	failures atomic.Uint64 // attempts the center did not answer finally
}

// pendingReversal is one reversal to send.
type pendingReversal struct {
	rev    iso93.Reversal
	id     uint64 // store id; 0 when not stored
	repeat bool   // send as 1421 from the first attempt
}

func (r *Reverser) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Reverser) signal() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
	return r.wake
}

// reversalKey names a stored reversal: its idempotency key, or the
// original's terminal, STAN and local time when it has none.
func reversalKey(rev iso93.Reversal) string {
	if rev.IdempotencyKey != "" {
		return rev.IdempotencyKey
	}
	return "R-" + rev.TerminalID + "-" + rev.STAN + "-" + rev.LocalTime
}

// Enqueue schedules the reversal of orig. With a Store it returns once the
// reversal is durable; when it cannot be stored it is still sent from
// memory (and logged). It never waits for the center.
func (r *Reverser) Enqueue(orig []byte) {
	rev, err := reversalFor(orig)
	if err != nil {
		r.log().Error("cannot build timeout reversal", "reason", err)
		return
	}
	p := &pendingReversal{rev: rev}
	if r.Store != nil {
		raw, err := iso93.Pack(&rev, iso93.MTIReversal)
		if err == nil {
			p.id, err = r.Store.AddReversal(reversalKey(rev), raw)
		}
		if err != nil {
			r.log().Error("timeout reversal not stored: a restart before it is answered loses it", "terminal", rev.TerminalID, "stan", rev.STAN, "reason", err)
		}
	}
	wake := r.signal()
	r.mu.Lock()
	if r.Store == nil && len(r.q) >= DefaultReversalQueue {
		r.mu.Unlock()
		r.log().Error("reversal queue full: reversal not sent", "terminal", rev.TerminalID, "stan", rev.STAN)
		return
	}
	r.q = append(r.q, p)
	if p.id != 0 {
		if r.known == nil {
			r.known = make(map[uint64]bool)
		}
		r.known[p.id] = true
	}
	r.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// Failures returns how many reversal attempts ended without a final
// answer (no answer, or a "try later" code) since the Reverser started.
func (r *Reverser) Failures() uint64 { return r.failures.Load() }

// Pending returns how many reversals are queued or in progress.
func (r *Reverser) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q) + r.inflight
}

// load queues, ahead of those enqueued since start, the reversals a
// previous run stored. A record that cannot be read is logged and left in
// the store (it names no card data: only the key is read).
func (r *Reverser) load() {
	if r.Store == nil {
		return
	}
	var old []*pendingReversal
	err := r.Store.LoadReversals(func(id uint64, key string, msg []byte, err error) {
		if err == nil {
			var rev iso93.Reversal
			if err = iso93.UnpackInto(msg, &rev); err == nil {
				old = append(old, &pendingReversal{rev: rev, id: id, repeat: true})
				return
			}
			err = fmt.Errorf("unpack stored 1420: %w", err)
		}
		r.log().Error("stored timeout reversal unreadable; left in the store", "id", id, "key", key, "reason", err)
	})
	if err != nil {
		r.log().Error("cannot load stored timeout reversals", "reason", err)
	}
	r.mu.Lock()
	var n int
	r.q, n = requeue(r.q, old, r.known, func(p *pendingReversal) uint64 { return p.id })
	r.mu.Unlock()
	if n > 0 {
		r.log().Info("timeout reversals from before the restart queued", "count", n)
	}
}

// Run sends queued reversals until ctx is done, one at a time in order.
// It first queues the reversals a previous run left in the Store.
func (r *Reverser) Run(ctx context.Context) {
	wake := r.signal()
	r.load()
	for {
		r.mu.Lock()
		var p *pendingReversal
		if len(r.q) > 0 {
			p, r.q = r.q[0], r.q[1:]
			r.inflight++
		}
		r.mu.Unlock()
		if p == nil {
			select {
			case <-ctx.Done():
				return
			case <-wake:
				continue
			}
		}
		done := r.send(ctx, p)
		if done && p.id != 0 {
			if err := r.Store.DeleteReversal(p.id); err != nil {
				// Sent again after a restart: the center answers the
				// repeat from its record of the key.
				r.log().Error("answered timeout reversal not deleted from the store", "terminal", p.rev.TerminalID, "stan", p.rev.STAN, "reason", err)
			}
		}
		r.mu.Lock()
		r.inflight--
		if p.id != 0 {
			delete(r.known, p.id)
		}
		r.mu.Unlock()
	}
}

// send sends p until a final 1430 (true) or until ctx ends (false).
func (r *Reverser) send(ctx context.Context, p *pendingReversal) bool {
	rev := p.rev
	minWait, maxWait := r.RetryMin, r.RetryMax
	if minWait <= 0 {
		minWait = time.Second
	}
	if maxWait < minWait {
		maxWait = time.Minute
	}
	wait := minWait
	mti := iso93.MTIReversal
	if p.repeat {
		mti = iso93.MTIReversalRepeat
	}
	for attempt := 1; ; attempt++ {
		raw, err := iso93.Pack(&rev, mti)
		if err != nil {
			r.log().Error("cannot pack reversal", "reason", err)
			return true
		}
		resp, err := r.Uplink.RoundTrip(ctx, raw)
		if err == nil {
			var rr iso93.ReversalResponse
			if err = iso93.UnpackInto(resp, &rr); err == nil {
				if offline.Classify(string(rr.ActionCode)) != offline.OutcomeRetry {
					r.log().Info("timeout reversal answered", "terminal", rev.TerminalID, "stan", rev.STAN, "action", rr.ActionCode, "attempt", attempt)
					return true
				}
				err = fmt.Errorf("center answered %s", rr.ActionCode)
			}
		}
		if ctx.Err() != nil {
			r.log().Warn("timeout reversal still pending at shutdown", "terminal", rev.TerminalID, "stan", rev.STAN, "stored", p.id != 0)
			return false
		}
		r.failures.Add(1)
		r.log().Warn("timeout reversal not answered; will repeat", "terminal", rev.TerminalID, "stan", rev.STAN, "attempt", attempt, "reason", err)
		mti = iso93.MTIReversalRepeat
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
