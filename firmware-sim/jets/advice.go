package jets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// The advice queue (docs/termsim.md, "Advice queue"). An offline chip
// approval's 1220 goes into the terminal's non-volatile record in the same
// save that journals the approval, before the terminal says approved, and
// stays there until a 1230 ends it. One sender per link (adviceSender,
// owned by Serve) sends the queue oldest first, one advice at a time: at
// the start of the link, after every transaction command, before a
// command sends its own request to the host, and on a timer with capped
// backoff while advices remain. The first send of an advice in a process
// is a 1220, every later one (and every one after a restart, which may
// repeat a send) a 1221 with the same data elements, so the same DE 123
// idempotency key the gateway and the center deduplicate on.

// Advice queue defaults.
const (
	// DefaultAdviceRetry is the first wait before the queue is tried
	// again after an advice was not taken.
	DefaultAdviceRetry = 15 * time.Second
	// DefaultAdviceRetryMax caps the doubling wait.
	DefaultAdviceRetryMax = 5 * time.Minute
	// DefaultMaxPendingAdvices is how many undelivered offline approvals
	// the terminal holds; with that many queued, chip sales go online.
	DefaultMaxPendingAdvices = 32
)

// recordVersion is the version of the firmware's non-volatile record
// (stored) this firmware writes. Version 1 (written without a version
// field) had no advice queue; it is read as version 2 with an empty queue.
const recordVersion = 2

// ErrRecordVersion means the terminal's non-volatile record was written by
// a newer firmware: New refuses it rather than drop what it cannot read.
var ErrRecordVersion = errors.New("jets: terminal record written by a newer firmware")

// pendingAdvice is one offline approval's advice awaiting its 1230. Advice
// is the packed 1220 as first built (chip.go, offlineAdvice): the DUKPT
// card-data block and KSN, the masked PAN, the fingerprint and DE 55 (no
// card-data tags), never clear card data; its DE 123 is the idempotency
// key every send carries.
type pendingAdvice struct {
	STAN   string `json:"stan"`
	Ref    string `json:"ref"`
	Time   string `json:"time"`
	Advice []byte `json:"advice"`
}

// parseRecord reads the firmware's non-volatile record raw (as kept by
// device.Terminal.SaveLast): a version 1 record is read with an empty
// advice queue, a newer one than recordVersion is refused
// (ErrRecordVersion), and every queued advice must be a readable 1220 of
// terminal terminalID with its STAN and an idempotency key, each STAN
// once. Errors carry no card data.
func parseRecord(raw []byte, terminalID string) (stored, error) {
	var st stored
	if err := json.Unmarshal(raw, &st); err != nil {
		return stored{}, fmt.Errorf("read the terminal record: %w", err)
	}
	switch {
	case st.Version < 0:
		return stored{}, fmt.Errorf("terminal record version %d is not a version", st.Version)
	case st.Version > recordVersion:
		return stored{}, fmt.Errorf("terminal record version %d, this firmware reads up to %d: %w", st.Version, recordVersion, ErrRecordVersion)
	case st.Version < 2 && st.Advices != nil:
		return stored{}, errors.New("terminal record without a version (version 1) carries an advice queue (version 2 and later)")
	}
	seen := make(map[string]bool, len(st.Advices))
	for i, p := range st.Advices {
		h, err := iso93.Peek(p.Advice)
		if err != nil {
			return stored{}, fmt.Errorf("queued advice %d: %w", i, err)
		}
		var a iso93.Advice
		if err := iso93.UnpackInto(p.Advice, &a); err != nil {
			return stored{}, fmt.Errorf("queued advice %d: %w", i, err)
		}
		switch {
		case h.MTI != iso93.MTIAdvice:
			return stored{}, fmt.Errorf("queued advice %d is a %s, want a %s", i, h.MTI, iso93.MTIAdvice)
		case a.TerminalID != terminalID:
			return stored{}, fmt.Errorf("queued advice %d (STAN %s) is terminal %s's, not %s's", i, p.STAN, a.TerminalID, terminalID)
		case a.STAN != p.STAN:
			return stored{}, fmt.Errorf("queued advice %d: STAN %s in the message, %s in the record", i, a.STAN, p.STAN)
		case a.IdempotencyKey == "":
			return stored{}, fmt.Errorf("queued advice %d (STAN %s) has no idempotency key", i, p.STAN)
		case seen[p.STAN]:
			return stored{}, fmt.Errorf("queued advice %d: STAN %s queued twice", i, p.STAN)
		}
		seen[p.STAN] = true
	}
	return st, nil
}

// repeatAdvice returns the 1221 of the packed 1220 adv: the same data
// elements, so the same idempotency key.
func repeatAdvice(adv []byte) ([]byte, error) {
	var a iso93.Advice
	if err := iso93.UnpackInto(adv, &a); err != nil {
		return nil, fmt.Errorf("repeat advice: unpack the 1220: %w", err)
	}
	raw, err := iso93.Pack(&a, iso93.MTIAdviceRepeat)
	if err != nil {
		return nil, fmt.Errorf("repeat advice: pack 1221: %w", err)
	}
	return raw, nil
}

// adviceFate is what a 1230's action code does to the advice.
type adviceFate uint8

const (
	// adviceAccepted: 000 or 001. It leaves the queue; the RRN goes into
	// its journal entry.
	adviceAccepted adviceFate = iota + 1
	// adviceRefused: any code not listed under adviceRetry. It leaves the
	// queue; the approval stays in the journal and the refusal is logged
	// (what follows is for the gateway and the center).
	adviceRefused
	// adviceRetry: 906, 907, 909, 911, 913, 923 — the host did not take
	// the advice (the gateway answers 907 when its uplink is down, 913
	// while an earlier send of the same advice is still in flight). It
	// stays queued.
	adviceRetry
)

// fateOf classifies a 1230's action code.
func fateOf(a iso93.ActionCode) adviceFate {
	switch a {
	case iso93.ActionApproved, iso93.ActionHonourWithID:
		return adviceAccepted
	case iso93.ActionCutover, iso93.ActionIssuerInoperative, iso93.ActionSystemMalfunction,
		iso93.ActionIssuerTimedOut, iso93.ActionDuplicateTransmission, iso93.ActionRequestInProgress:
		return adviceRetry
	}
	return adviceRefused
}

// PendingAdvices returns how many offline approvals' advices await their
// 1230 (the terminal-link status has no field for it; termsim users and
// tests read it here).
func (f *Firmware) PendingAdvices() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.advices)
}

// adviceHead returns the oldest pending advice and whether it may have
// been sent before (it then goes as a 1221); ok is false when none is
// pending.
func (f *Firmware) adviceHead() (p pendingAdvice, repeat, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.advices) == 0 {
		return pendingAdvice{}, false, false
	}
	p = f.advices[0]
	return p, f.tried[p.STAN], true
}

func (f *Firmware) adviceTried(stan string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tried[stan] = true
}

func (f *Firmware) adviceQueued(stan string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.advices {
		if p.STAN == stan {
			return true
		}
	}
	return false
}

// busy reports whether a transaction command is running.
func (f *Firmware) busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur != nil
}

// adviceSender delivers the pending advices over one link, oldest first,
// one at a time: all of them go through its run goroutine, which Serve
// starts and waits for. Kick and Flush are safe for concurrent use.
type adviceSender struct {
	f     *Firmware
	ep    *tlink.Endpoint
	kick  chan struct{}      // buffered 1: a pass when run is free
	flush chan chan struct{} // a pass; run closes the channel after it
}

func newAdviceSender(f *Firmware, ep *tlink.Endpoint) *adviceSender {
	return &adviceSender{f: f, ep: ep, kick: make(chan struct{}, 1), flush: make(chan chan struct{})}
}

// Kick asks for a pass without waiting for it. It never blocks.
func (s *adviceSender) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Flush runs a pass and waits for it to end, or for ctx to end. A pass
// stops at the first advice not taken, so Flush waits for at most one
// unanswered advice (HostTimeout) beyond a pass already under way.
func (s *adviceSender) Flush(ctx context.Context) {
	done := make(chan struct{})
	select {
	case s.flush <- done:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// run sends until ctx ends: a pass at once (start-up), on every Kick and
// Flush, and, while advices remain after a pass that did not empty the
// queue, after AdviceRetry, doubling up to AdviceRetryMax; a pass that
// delivered one starts the doubling again. A timer that fires during a
// transaction command does nothing: the command's end kicks.
func (s *adviceSender) run(ctx context.Context) {
	f := s.f
	delay := f.cfg.AdviceRetry
	timer := time.NewTimer(delay)
	timer.Stop()
	defer timer.Stop()
	var retry <-chan time.Time
	for first := true; ; first = false {
		var done chan struct{}
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-s.kick:
			case done = <-s.flush:
			case <-retry:
				retry = nil
				if f.busy() {
					continue
				}
			}
		}
		ended, left := s.pass(ctx)
		if done != nil {
			close(done)
		}
		if left == 0 {
			retry, delay = nil, f.cfg.AdviceRetry
			continue
		}
		if ended > 0 {
			delay = f.cfg.AdviceRetry
		}
		f.log.Info("advices kept for a later pass", "pending", left, "retry_in", delay)
		timer.Reset(delay)
		retry = timer.C
		delay = min(2*delay, f.cfg.AdviceRetryMax)
	}
}

// pass sends the pending advices oldest first until the queue is empty or
// one is not taken; it returns how many left the queue and how many
// remain.
func (s *adviceSender) pass(ctx context.Context) (ended, left int) {
	for ctx.Err() == nil {
		p, repeat, ok := s.f.adviceHead()
		if !ok {
			return ended, 0
		}
		if !s.deliver(ctx, p, repeat) {
			break
		}
		ended++
	}
	return ended, s.f.PendingAdvices()
}

// deliver sends p (as a 1221 when repeat) and waits for its 1230. It
// reports whether the answer ended the advice's life and that was saved.
func (s *adviceSender) deliver(ctx context.Context, p pendingAdvice, repeat bool) bool {
	f := s.f
	raw, mti := p.Advice, iso93.MTIAdvice
	if repeat {
		r, err := repeatAdvice(p.Advice)
		if err != nil {
			// parseRecord and offlineAdvice checked the 1220: send it
			// as it is rather than never.
			f.log.Error("advice sent again as a 1220", "stan", p.STAN, "err", err)
		} else {
			raw, mti = r, iso93.MTIAdviceRepeat
		}
	}
	f.adviceTried(p.STAN)
	ans := device.Result{MTI: mti, STAN: p.STAN}
	resp, err := f.financial(ctx, s.ep, raw)
	if err == nil {
		err = f.cfg.Terminal.CompleteResult(resp, &ans)
	}
	if err != nil {
		f.log.Warn("offline approval advice not delivered; kept queued", "stan", p.STAN, "ref", p.Ref, "mti", mti, "err", err)
		return false
	}
	u := update{advised: p.STAN}
	fate := fateOf(ans.ActionCode)
	switch fate {
	case adviceRetry:
		f.log.Warn("offline approval advice not taken by the host; kept queued", "stan", p.STAN, "ref", p.Ref,
			"action_code", string(ans.ActionCode), "reason", ans.ActionCode.Description())
		return false
	case adviceAccepted:
		u.rrn = ans.RRN
	}
	if err := f.save(u); err != nil {
		// Still queued: it goes again, and the host deduplicates it.
		f.log.Error("record the answer to an offline approval advice; it will be sent again", "stan", p.STAN, "err", err)
		return false
	}
	if fate == adviceAccepted {
		f.log.Info("offline approval advice delivered", "stan", p.STAN, "ref", p.Ref, "rrn", ans.RRN, "pending", f.PendingAdvices())
	} else {
		f.log.Warn("offline approval advice refused by the host; the approval stays journalled", "stan", p.STAN, "ref", p.Ref,
			"action_code", string(ans.ActionCode), "reason", ans.ActionCode.Description(), "pending", f.PendingAdvices())
	}
	return true
}
