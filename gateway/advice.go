package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/match"
)

// AdviceQueue is the part of the offline queue the forwarder uses.
// *offline.Queue satisfies it.
type AdviceQueue interface {
	Next(n int) ([]offline.Record, error)
	MarkSent(ids ...uint64) error
	MarkAnswered(id uint64, action string) (offline.Outcome, error)
	Purge(before time.Time) (int, error)
}

// AdviceForwarder sends the stand-in approvals of the offline queue to the
// center as 1220 advices (1221 when repeated), in approval order, with a
// window of advices in flight and a bounded rate, and records each 1230's
// action code. Every advice carries the original request's DE 123, so the
// center takes each approval exactly once however often it is repeated.
//
// Run owns the forwarding goroutine; Trigger and Pass are safe to call
// concurrently with it (passes never overlap).
type AdviceForwarder struct {
	Queue  AdviceQueue
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

func (a *AdviceForwarder) init() {
	a.once.Do(func() { a.trigger = make(chan struct{}, 1) })
}

// Trigger asks Run for an immediate forwarding pass ("forward now"). It
// never blocks.
func (a *AdviceForwarder) Trigger() {
	a.init()
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// Run forwards while ctx lasts: a pass whenever the link comes up, on
// Trigger, and every Poll while the link is up. lw may be nil (the uplink
// is then always tried).
func (a *AdviceForwarder) Run(ctx context.Context, lw LinkWatcher) {
	a.init()
	poll := a.Poll
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if lw != nil {
			if err := waitUp(ctx, lw); err != nil {
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

func (a *AdviceForwarder) maybePurge() {
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
func (a *AdviceForwarder) Pass(ctx context.Context) (int, error) {
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
func (a *AdviceForwarder) forward(ctx context.Context, r offline.Record) (offline.Outcome, error) {
	raw, err := adviceFor(r)
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

// adviceFor builds the 1220/1221 of a stored record. A stand-in
// approval's advice is built from its original request: the same trace,
// payment and card data elements (so the same DE 123), DE 24 201 previous
// approval, DE 25 1003 stand-in, DE 38 the approval code the terminal was
// given. A terminal's advice (offline.OriginTerminal) is its own 1220,
// byte for byte, with the MTI of this send.
func adviceFor(r offline.Record) ([]byte, error) {
	if r.Origin == offline.OriginTerminal {
		// The MTI is the message's first four ASCII digits: replacing them
		// keeps every other byte as the terminal sent it.
		if len(r.Message) < 4 || !isAdviceMTI(string(r.Message[:4])) {
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

// AdviceStore keeps terminals' offline approval advices durably until the
// AdviceForwarder delivers them. *offline.Store satisfies it.
type AdviceStore interface {
	Enqueue(a offline.Advice) (offline.Queued, error)
}

// errNotOfflineAdvice marks a 1220 with function code 201 that is not an
// offline approval (a completion advice, which names its
// pre-authorization in DE 56): it is relayed like any request.
var errNotOfflineAdvice = errors.New("gateway: advice is a completion, not an offline approval")

func isAdviceMTI(mti string) bool { return mti == iso93.MTIAdvice || mti == iso93.MTIAdviceRepeat }

// terminalAdviceFrom reads a terminal's offline approval advice: a
// 1220/1221 with function code 201 and no DE 56. It must pass the
// message rules (iso93.Validate: DE 38, DE 123, card data, ...), carry the
// card data only as the encrypted block (DE 120, never a clear DE 2), and
// its DE 55, when present, must pass de55.ParseRequest (no card-data
// tags) with a cryptogram that is not an AAC: the gateway keeps nothing
// the center would refuse as malformed, and no clear card data.
func terminalAdviceFrom(raw []byte) (offline.Advice, error) {
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		return offline.Advice{}, fmt.Errorf("unpack advice: %w", err)
	}
	if msg.GetField(iso93.FieldOriginalData) != nil {
		return offline.Advice{}, errNotOfflineAdvice
	}
	if err := iso93.Validate(msg); err != nil {
		return offline.Advice{}, fmt.Errorf("advice: %w", err)
	}
	var m iso93.Advice
	if err := msg.Unmarshal(&m); err != nil {
		return offline.Advice{}, fmt.Errorf("read advice: %w", iso93.ErrMalformed)
	}
	if len(m.CardData) == 0 || m.PAN != "" {
		return offline.Advice{}, errors.New("advice: card data must be the encrypted block (DE 120), never DE 2")
	}
	chip, err := chipDecision(m.ICCData)
	if err != nil {
		return offline.Advice{}, fmt.Errorf("advice: %w", err)
	}
	if chip == standin.ChipAAC {
		return offline.Advice{}, errors.New("advice: DE 55 names an AAC, the card declined the sale")
	}
	return offline.Advice{
		IdempotencyKey: m.IdempotencyKey,
		TerminalID:     m.TerminalID,
		MerchantID:     m.MerchantID,
		Brand:          BrandOf(m.MaskedPAN),
		Fingerprint:    m.Fingerprint,
		MaskedPAN:      m.MaskedPAN,
		Amount:         m.Amount,
		Currency:       m.Currency,
		ApprovalCode:   m.ApprovalCode,
		Chip:           chip,
		Message:        raw,
	}, nil
}

// terminalAdvice delivers a terminal's offline approval advice: it is sent
// to the center first, and the center's final answer (accepted, or
// declined) is relayed. Without one — link down, not enrolled, outcome
// unknown, a "try later" code (906, 907, 909, 911, 923) or an answer that
// does not match — the advice is stored in f.Advices (fsync) and only then
// answered 1230 with 000, "accepted for forwarding"; the AdviceForwarder
// sends it (as a 1221 when it may have reached the center already). If it
// cannot be stored the terminal is answered 909. *uplink receives the
// round-trip time.
func (f *Forwarder) terminalAdvice(ctx context.Context, raw []byte, h iso93.Header, adv offline.Advice, start time.Time, uplink *time.Duration) ([]byte, error) {
	sent := time.Now()
	resp, err := f.Uplink.RoundTrip(ctx, raw)
	*uplink = time.Since(sent)
	var why string
	switch {
	case err == nil:
		rh, perr := iso93.Peek(resp)
		switch {
		case perr != nil || match.KeyOf(rh) != match.KeyOf(h):
			why = "center answer does not match the advice"
		case offline.Classify(rh.ActionCode) == offline.OutcomeRetry:
			why = "center answered " + rh.ActionCode
		default:
			if offline.Classify(rh.ActionCode) == offline.OutcomeRejected {
				f.Logger.Warn("center declined a terminal's offline approval", "terminal", h.TerminalID, "stan", h.STAN,
					"masked_pan", adv.MaskedPAN, "amount", adv.Amount, "action", rh.ActionCode)
			}
			f.Metrics.observe(h.MTI, rh.ActionCode, time.Since(start))
			return resp, nil
		}
		adv.Sent = true
	case errors.Is(err, link.ErrOutcomeUnknown):
		why, adv.Sent = err.Error(), true
	default:
		why = err.Error()
	}
	q, err := f.Advices.Enqueue(adv)
	if err != nil {
		f.Logger.Error("terminal advice neither delivered nor stored", "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return f.reply(raw, h, iso93.ActionSystemMalfunction, start)
	}
	f.Logger.Info("terminal advice stored for forwarding", "terminal", h.TerminalID, "stan", h.STAN, "record", q.RecordID,
		"duplicate", q.Duplicate, "reason", why)
	return f.reply(raw, h, iso93.ActionApproved, start)
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
