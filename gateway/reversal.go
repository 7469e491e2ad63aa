package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

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

// Reverser sends timeout reversals to the center until each is answered:
// 1420 first, then 1421 repeats with capped backoff. It holds them in memory
// only: a gateway restart loses pending reversals (the durable bbolt queue is
// built with offline store-and-forward). Reverser is safe for concurrent use;
// Run owns its goroutines.
type Reverser struct {
	Uplink Uplink
	Logger *slog.Logger
	// Retry bounds the wait between attempts. Defaults 1s and 1m.
	RetryMin, RetryMax time.Duration

	mu      sync.Mutex
	queue   chan iso93.Reversal
	pending int
}

func (r *Reverser) ch() chan iso93.Reversal {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.queue == nil {
		r.queue = make(chan iso93.Reversal, 1024)
	}
	return r.queue
}

// Enqueue schedules the reversal of orig. It never blocks; when the queue is
// full the reversal is logged as lost.
func (r *Reverser) Enqueue(orig []byte) {
	rev, err := reversalFor(orig)
	if err != nil {
		r.Logger.Error("cannot build timeout reversal", "reason", err)
		return
	}
	select {
	case r.ch() <- rev:
		r.mu.Lock()
		r.pending++
		r.mu.Unlock()
	default:
		r.Logger.Error("reversal queue full: reversal not sent", "terminal", rev.TerminalID, "stan", rev.STAN)
	}
}

// Pending returns how many reversals are queued or in progress.
func (r *Reverser) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending
}

// Run sends queued reversals until ctx is done, one at a time in order.
func (r *Reverser) Run(ctx context.Context) {
	q := r.ch()
	for {
		select {
		case <-ctx.Done():
			return
		case rev := <-q:
			r.send(ctx, rev)
			r.mu.Lock()
			r.pending--
			r.mu.Unlock()
		}
	}
}

func (r *Reverser) send(ctx context.Context, rev iso93.Reversal) {
	minWait, maxWait := r.RetryMin, r.RetryMax
	if minWait <= 0 {
		minWait = time.Second
	}
	if maxWait < minWait {
		maxWait = time.Minute
	}
	wait := minWait
	mti := iso93.MTIReversal
	for attempt := 1; ; attempt++ {
		raw, err := iso93.Pack(&rev, mti)
		if err != nil {
			r.Logger.Error("cannot pack reversal", "reason", err)
			return
		}
		resp, err := r.Uplink.RoundTrip(ctx, raw)
		if err == nil {
			var rr iso93.ReversalResponse
			if err = iso93.UnpackInto(resp, &rr); err == nil {
				r.Logger.Info("timeout reversal answered", "terminal", rev.TerminalID, "stan", rev.STAN, "action", rr.ActionCode, "attempt", attempt)
				return
			}
		}
		if ctx.Err() != nil {
			r.Logger.Warn("timeout reversal still pending at shutdown", "terminal", rev.TerminalID, "stan", rev.STAN)
			return
		}
		r.Logger.Warn("timeout reversal not answered; will repeat", "terminal", rev.TerminalID, "stan", rev.STAN, "attempt", attempt, "reason", err)
		mti = iso93.MTIReversalRepeat
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
