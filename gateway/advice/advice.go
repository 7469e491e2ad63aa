// Package advice forwards the offline store's queued approvals (the
// gateway's stand-in approvals and terminals' own offline approvals) to the
// center as 1220/1221 advices, in order, windowed and rate-capped, and
// records each answer (docs/offline.md).
package advice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

// Uplink carries one request to the center and returns its response.
// *link.Client satisfies it.
type Uplink interface {
	RoundTrip(ctx context.Context, req []byte) ([]byte, error)
}

// errPassStopped ends a pass when the center asks to try later.
var errPassStopped = errors.New("advice: pass stopped")

// Queue is the part of the offline queue the forwarder uses.
// *offline.Queue satisfies it.
type Queue interface {
	Next(n int) ([]offline.Record, error)
	MarkSent(ids ...uint64) error
	MarkAnswered(id uint64, action string) (offline.Outcome, error)
	Purge(before time.Time) (int, error)
}

// Forwarder sends the stand-in approvals of the offline queue to the
// center as 1220 advices (1221 when repeated), in approval order, with a
// window of advices in flight and a bounded rate, and records each 1230's
// action code. Every advice carries the original request's DE 123, so the
// center takes each approval exactly once however often it is repeated.
//
// Run owns the forwarding goroutine; Trigger and Pass are safe to call
// concurrently with it (passes never overlap).
type Forwarder struct {
	Queue  Queue
	Uplink Uplink
	// Window is the number of advices in flight. Default 16.
	Window int
	// Rate caps advices sent per second. Default 200.
	Rate float64
	// Poll is how often Run looks at the queue while the link is up and
	// nothing triggered it. Default 1s.
	Poll time.Duration
	// PurgeAfter is how long accepted records stay in the file; Run purges
	// older ones about hourly. Zero: never purge.
	PurgeAfter time.Duration
	Logger     *slog.Logger
	// AfterPass, when set, is called by Run after each pass with the
	// number of advices the center answered (the gateway wakes the
	// signature queue with it: a signature of an offline sale is taken
	// only once its advice is at the center).
	AfterPass func(answered int)

	passMu    sync.Mutex // one pass at a time
	once      sync.Once
	trigger   chan struct{}
	lastPurge time.Time
}

func (a *Forwarder) init() {
	a.once.Do(func() { a.trigger = make(chan struct{}, 1) })
}

// Trigger asks Run for an immediate forwarding pass ("forward now"). It
// never blocks.
func (a *Forwarder) Trigger() {
	a.init()
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// Run forwards while ctx lasts: a pass whenever the link comes up, on
// Trigger, and every Poll while the link is up. lw may be nil (the uplink
// is then always tried).
func (a *Forwarder) Run(ctx context.Context, lw link.Watcher) {
	a.init()
	poll := a.Poll
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if lw != nil {
			if err := link.WaitUp(ctx, lw); err != nil {
				return
			}
		}
		n, err := a.Pass(ctx)
		if n > 0 || err != nil {
			a.Logger.Info("advice pass done", "forwarded", n, "stopped", err)
		}
		if a.AfterPass != nil {
			a.AfterPass(n)
		}
		a.maybePurge()
		var changed <-chan struct{}
		if lw != nil {
			_, changed = lw.Watch()
		}
		select {
		case <-ctx.Done():
			return
		case <-a.trigger:
		case <-t.C:
		case <-changed:
		}
	}
}

func (a *Forwarder) maybePurge() {
	if a.PurgeAfter <= 0 || time.Since(a.lastPurge) < time.Hour {
		return
	}
	a.lastPurge = time.Now()
	n, err := a.Queue.Purge(time.Now().Add(-a.PurgeAfter))
	if err != nil {
		a.Logger.Error("purge of accepted advices failed", "reason", err)
	} else if n > 0 {
		a.Logger.Info("purged accepted advices", "records", n)
	}
}

// Pass forwards queued records until the queue is empty, the link is down,
// or the center asks to try later; it returns how many advices the center
// answered. Records are marked sent (durably) before they go, so after a
// crash they go again as 1221 repeats.
func (a *Forwarder) Pass(ctx context.Context) (int, error) {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	window := a.Window
	if window <= 0 {
		window = 16
	}
	rate := a.Rate
	if rate <= 0 {
		rate = 200
	}
	pace := &pacer{interval: time.Duration(float64(time.Second) / rate)}
	answered := 0
	for ctx.Err() == nil {
		recs, err := a.Queue.Next(window)
		if err != nil {
			return answered, fmt.Errorf("read advice queue: %w", err)
		}
		if len(recs) == 0 {
			return answered, nil
		}
		ids := make([]uint64, len(recs))
		for i, r := range recs {
			ids[i] = r.ID
		}
		if err := a.Queue.MarkSent(ids...); err != nil {
			return answered, fmt.Errorf("mark advices sent: %w", err)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			stopErr error
		)
		for _, r := range recs {
			if err := pace.wait(ctx); err != nil {
				break
			}
			wg.Go(func() {
				out, err := a.forward(ctx, r)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					if stopErr == nil {
						stopErr = err
					}
				case out == offline.OutcomeRetry:
					if stopErr == nil {
						stopErr = errPassStopped
					}
					answered++
				default:
					answered++
				}
			})
		}
		wg.Wait()
		if stopErr != nil {
			return answered, stopErr
		}
	}
	return answered, ctx.Err()
}

// forward sends one record's advice and records the answer.
func (a *Forwarder) forward(ctx context.Context, r offline.Record) (offline.Outcome, error) {
	raw, err := Build(r)
	if err != nil {
		// The stored request cannot be turned into an advice: nothing the
		// center could answer. It stays queued and is reported each pass.
		a.Logger.Error("cannot build advice", "record", r.ID, "reason", err)
		return 0, err
	}
	resp, err := a.Uplink.RoundTrip(ctx, raw)
	if err != nil {
		if errors.Is(err, link.ErrOutcomeUnknown) {
			a.Logger.Warn("advice outcome unknown; it goes again as a repeat", "record", r.ID, "reason", err)
		}
		return 0, fmt.Errorf("send advice %d: %w", r.ID, err)
	}
	var ar iso93.AdviceResponse
	if err := iso93.UnpackInto(resp, &ar); err != nil {
		a.Logger.Error("advice answer unreadable; it goes again as a repeat", "record", r.ID, "reason", err)
		return 0, fmt.Errorf("advice %d answer: %w", r.ID, err)
	}
	if ar.IdempotencyKey != r.IdempotencyKey {
		a.Logger.Error("advice answer names another transaction; it goes again as a repeat", "record", r.ID)
		return 0, fmt.Errorf("advice %d answer: idempotency key mismatch", r.ID)
	}
	out, err := a.Queue.MarkAnswered(r.ID, string(ar.ActionCode))
	if err != nil {
		return 0, fmt.Errorf("record answer to advice %d: %w", r.ID, err)
	}
	if out == offline.OutcomeRejected {
		a.Logger.Warn("center declined an offline approval; listed for the merchant", "record", r.ID,
			"terminal", r.TerminalID, "masked_pan", r.MaskedPAN, "amount", r.Amount, "action", ar.ActionCode)
	}
	return out, nil
}

// Build builds the 1220/1221 of a stored record. A stand-in
// approval's advice is built from its original request: the same trace,
// payment and card data elements (so the same DE 123), DE 24 201 previous
// approval, DE 25 1003 stand-in, DE 38 the approval code the terminal was
// given. A terminal's advice (offline.OriginTerminal) is its own 1220,
// byte for byte, with the MTI of this send.
func Build(r offline.Record) ([]byte, error) {
	if r.Origin == offline.OriginTerminal {
		// The MTI is the message's first four ASCII digits: replacing them
		// keeps every other byte as the terminal sent it.
		if len(r.Message) < 4 || (string(r.Message[:4]) != iso93.MTIAdvice && string(r.Message[:4]) != iso93.MTIAdviceRepeat) {
			return nil, errors.New("stored terminal advice is not a 1220/1221")
		}
		return append([]byte(r.MTI()), r.Message[4:]...), nil
	}
	var req iso93.FinancialRequest
	if len(r.Message) >= 4 && string(r.Message[:4]) == iso93.MTIAuthorizationRequest {
		var m iso93.AuthorizationRequest
		if err := iso93.UnpackInto(r.Message, &m); err != nil {
			return nil, fmt.Errorf("unpack stored request: %w", err)
		}
		req = iso93.FinancialRequest(m)
	} else if err := iso93.UnpackInto(r.Message, &req); err != nil {
		return nil, fmt.Errorf("unpack stored request: %w", err)
	}
	adv := iso93.Advice{Trace: req.Trace, Payment: req.Payment, Card: req.Card, ApprovalCode: r.ApprovalCode}
	adv.FunctionCode = iso93.FunctionPreviousApproval
	adv.ReasonCode = iso93.ReasonStandIn
	adv.IdempotencyKey = r.IdempotencyKey
	return iso93.Pack(&adv, r.MTI())
}

// pacer spaces sends at least interval apart. It is used by one goroutine.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func (p *pacer) wait(ctx context.Context) error {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		now = p.next
	}
	p.next = now.Add(p.interval)
	return nil
}
