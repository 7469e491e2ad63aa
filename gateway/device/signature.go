package device

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// Signature reassembly limits.
const (
	// MaxSignature is the largest signature the manager reassembles
	// (tlink.MaxSignature, 64 KiB); the link refuses larger totals.
	MaxSignature = tlink.MaxSignature
	// SignatureTimeout is how long a partial signature waits for its next
	// chunk; after it the partial copy is dropped and the terminal is asked
	// to start again from offset 0.
	SignatureTimeout = 60 * time.Second
	// SignatureHold is how long a complete signature whose sale's message
	// (1100/1200, or the offline approval's 1220) has not arrived yet is
	// kept waiting for it. A terminal that approved a chip sale offline
	// sends the signature after the txn-result and the advice from its own
	// queue, so the signature may come first; the terminal's advice queue
	// retries within minutes.
	SignatureHold = 5 * time.Minute
	// recentFinancials is how many financial requests (and offline
	// approval advices) per device are remembered to link a signature to
	// its transaction, and how many complete signatures per device may
	// wait for theirs.
	recentFinancials = 8
)

// Signature is a cardholder's signature a terminal captured, reassembled,
// with the identifiers of the financial request it belongs to. It carries
// no card data: the transaction is named by terminal ID, STAN, local time
// and idempotency key, never by PAN.
type Signature struct {
	DeviceID       string                // the device that sent it
	Ref            string                // the transaction command's ref (tlink tag 0x01)
	MTI            string                // of the sale's message: 1100, 1200, or 1220/1221 for an offline approval
	TerminalID     string                // DE 41 of the financial request
	STAN           string                // DE 11
	LocalTime      string                // DE 12, YYMMDDhhmmss
	IdempotencyKey string                // DE 123 of the financial request
	Format         tlink.SignatureFormat // encoding of Data
	Data           []byte                // the encoded signature, 1..MaxSignature bytes
}

// SignatureSink takes complete signatures from the manager, for delivery to
// the center. Accept is called from the device's link goroutine without
// locks held; it must not block for long (queue and return). An error
// tells the terminal its signature was refused.
type SignatureSink interface {
	Accept(ctx context.Context, s Signature) error
}

// finRef is a financial request remembered to link a signature to it.
type finRef struct {
	mti, terminalID, stan, localTime, key string
}

// sigAssembly is a signature being reassembled.
type sigAssembly struct {
	ref, stan string
	format    tlink.SignatureFormat
	total     uint32
	data      []byte
	fin       finRef
	linked    bool      // fin is set: the sale's message was seen
	last      time.Time // when the last chunk arrived
}

// heldSig is a complete signature waiting for its sale's message.
type heldSig struct {
	sig   Signature // without the sale's identifiers beyond STAN
	since time.Time
}

// sigState is one device's signature state.
type sigState struct {
	fins []finRef // the last recentFinancials financial requests, oldest first
	cur  *sigAssembly
	held []heldSig // complete signatures waiting for their sale, oldest first
	// done names the last signature completed, so that a repeated last
	// chunk (its ack was lost) is answered complete again.
	doneRef, doneSTAN string
	doneTotal         uint32
}

// signatures holds every device's signature state; mu guards the map and
// every state in it. It is never held across a send or the sink.
type signatures struct {
	mu  sync.Mutex
	dev map[string]*sigState
}

// find returns the newest remembered financial message with this STAN.
func (st *sigState) find(stan string) (finRef, bool) {
	for i := len(st.fins) - 1; i >= 0; i-- {
		if st.fins[i].stan == stan {
			return st.fins[i], true
		}
	}
	return finRef{}, false
}

// linkHeld takes out of st.held the signatures of STAN stan, completed with
// f's identifiers, and those held longer than SignatureHold.
func (st *sigState) linkHeld(f finRef, now time.Time) (ready []Signature, expired []Signature) {
	keep := st.held[:0]
	for _, h := range st.held {
		switch {
		case now.Sub(h.since) > SignatureHold:
			expired = append(expired, h.sig)
		case f.stan != "" && h.sig.STAN == f.stan:
			ready = append(ready, withSale(h.sig, f))
		default:
			keep = append(keep, h)
		}
	}
	clear(st.held[len(keep):])
	st.held = keep
	return ready, expired
}

// withSale fills in the identifiers of the sale's message.
func withSale(s Signature, f finRef) Signature {
	s.MTI, s.TerminalID, s.LocalTime, s.IdempotencyKey = f.mti, f.terminalID, f.localTime, f.key
	return s
}

func (s *signatures) state(id string) *sigState {
	if s.dev == nil {
		s.dev = map[string]*sigState{}
	}
	st := s.dev[id]
	if st == nil {
		st = &sigState{}
		s.dev[id] = st
	}
	return st
}

// noteFinancial remembers a 1100/1200 the device sent, or the 1220/1221
// advice of a sale it approved offline (function code 201 without DE 56:
// a chip card's TC under the floor limit; a completion advice names its
// pre-authorization in DE 56 and takes no signature), so that the sale's
// signature can be linked to it by STAN. The center links the signature
// to the authorization its advice created (same key, terminal, STAN and
// local time).
func (m *Manager) noteFinancial(d *device, raw []byte) {
	mti, msg, err := iso93.Unpack(raw)
	if err != nil || !signable(mti, msg) {
		return
	}
	var f finRef
	f.mti = mti
	f.terminalID, _ = msg.GetString(iso93.FieldTerminalID)
	f.stan, _ = msg.GetString(iso93.FieldSTAN)
	f.localTime, _ = msg.GetString(iso93.FieldLocalTime)
	f.key, _ = msg.GetString(iso93.FieldIdempotencyKey)
	if f.stan == "" {
		return
	}
	m.sigs.mu.Lock()
	st := m.sigs.state(d.id)
	st.fins = append(st.fins, f)
	if len(st.fins) > recentFinancials {
		st.fins = st.fins[len(st.fins)-recentFinancials:]
	}
	ready, expired := st.linkHeld(f, m.cfg.Now())
	m.sigs.mu.Unlock()
	m.dropExpired(d.id, expired)
	for _, s := range ready {
		// Accept queues and returns (SignatureSink); the terminal was told
		// complete when the signature was held.
		if err := m.cfg.Signatures.Accept(context.Background(), s); err != nil {
			m.log.Error("held signature lost: the sink refused it", "device", d.id, "ref", s.Ref, "stan", s.STAN, "reason", err)
			continue
		}
		m.log.Info("signature received", "device", d.id, "ref", s.Ref, "stan", s.STAN, "bytes", len(s.Data), "held", true)
	}
}

// dropExpired logs the held signatures whose sale never showed up.
func (m *Manager) dropExpired(id string, expired []Signature) {
	for _, s := range expired {
		m.log.Error("held signature dropped: no financial request or advice with its STAN arrived", "device", id,
			"ref", s.Ref, "stan", s.STAN, "hold", SignatureHold)
	}
}

// signable reports whether a signature may follow a message of this MTI:
// a 1100 or 1200, or an offline approval's 1220/1221 (function code 201,
// no original data).
func signable(mti string, msg *iso8583.Message) bool {
	switch mti {
	case iso93.MTIFinancialRequest, iso93.MTIAuthorizationRequest:
		return true
	case iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		fc, _ := msg.GetString(iso93.FieldFunctionCode)
		return fc == iso93.FunctionPreviousApproval && msg.GetField(iso93.FieldOriginalData) == nil
	}
	return false
}

// signature handles one KindSignature chunk from d: it reassembles the
// signature, acknowledges the chunk, and hands a complete signature to the
// SignatureSink.
func (m *Manager) signature(ctx context.Context, d *device, ep *tlink.Endpoint, payload []byte) {
	var c tlink.Signature
	if err := c.UnmarshalBinary(payload); err != nil {
		m.log.Warn("unreadable signature chunk ignored", "device", d.id, "reason", err)
		return
	}
	ack, complete, held, why := m.sigChunk(d.id, c)
	if held {
		m.log.Info("signature held until its sale's message arrives", "device", d.id, "ref", c.Ref, "stan", c.STAN, "hold", SignatureHold)
	}
	if complete != nil {
		if m.cfg.Signatures == nil {
			ack.Status, why = tlink.SignatureRefused, "no signature sink configured"
		} else if err := m.cfg.Signatures.Accept(ctx, *complete); err != nil {
			ack.Status, why = tlink.SignatureRefused, err.Error()
		} else {
			m.log.Info("signature received", "device", d.id, "ref", c.Ref, "stan", c.STAN, "bytes", len(complete.Data))
		}
	}
	if ack.Status == tlink.SignatureRefused {
		m.log.Warn("signature refused", "device", d.id, "ref", c.Ref, "stan", c.STAN, "reason", why)
	}
	p, err := ack.MarshalBinary()
	if err == nil {
		err = ep.Send(ctx, tlink.KindSignatureAck, p)
	}
	if err != nil {
		m.log.Warn("signature ack not delivered", "device", d.id, "ref", c.Ref, "reason", err)
	}
}

// sigChunk applies chunk c to the device's state and returns the ack, the
// complete signature when c finished it and its sale is known, whether c
// finished a signature that is now held for its sale's message, and why
// it was refused.
func (m *Manager) sigChunk(id string, c tlink.Signature) (tlink.SignatureAck, *Signature, bool, string) {
	now := m.cfg.Now()
	ack := tlink.SignatureAck{Ref: c.Ref, Status: tlink.SignatureOK}
	end := c.Offset + uint32(len(c.Data))
	m.sigs.mu.Lock()
	st := m.sigs.state(id)
	_, expired := st.linkHeld(finRef{}, now)
	defer m.dropExpired(id, expired) // after the unlock below (deferred calls run last in, first out)
	defer m.sigs.mu.Unlock()
	if st.cur != nil && now.Sub(st.cur.last) > SignatureTimeout {
		st.cur = nil
	}
	if c.Ref == st.doneRef && c.STAN == st.doneSTAN && c.Total == st.doneTotal && end == c.Total {
		// The last chunk again: its ack was lost.
		ack.Status, ack.NextOffset = tlink.SignatureComplete, c.Total
		return ack, nil, false, ""
	}
	if c.Offset == 0 {
		fin, linked := st.find(c.STAN)
		if !linked && st.cur != nil && st.cur.ref == c.Ref && st.cur.stan == c.STAN {
			fin, linked = st.cur.fin, st.cur.linked
		}
		// A STAN not seen yet starts the signature unlinked: the sale's
		// message may still be on its way (an offline approval's advice).
		st.cur = &sigAssembly{ref: c.Ref, stan: c.STAN, format: c.Format, total: c.Total, fin: fin, linked: linked,
			data: make([]byte, 0, c.Total)}
	}
	a := st.cur
	switch {
	case a == nil || a.ref != c.Ref || a.stan != c.STAN:
		// Nothing under way for this signature (expired, or the gateway
		// restarted): start again.
		ack.Status, ack.NextOffset = tlink.SignatureResend, 0
		return ack, nil, false, ""
	case a.total != c.Total || a.format != c.Format:
		st.cur = nil
		ack.Status = tlink.SignatureRefused
		return ack, nil, false, "chunk changes the signature's size or format"
	case c.Offset > uint32(len(a.data)):
		ack.Status, ack.NextOffset = tlink.SignatureResend, uint32(len(a.data))
		return ack, nil, false, ""
	case end <= uint32(len(a.data)):
		// Already held (a repeat after a lost ack).
		ack.NextOffset = uint32(len(a.data))
		return ack, nil, false, ""
	}
	a.data = append(a.data, c.Data[uint32(len(a.data))-c.Offset:]...)
	a.last = now
	ack.NextOffset = uint32(len(a.data))
	if ack.NextOffset < a.total {
		return ack, nil, false, ""
	}
	st.cur = nil
	sig := Signature{DeviceID: id, Ref: a.ref, STAN: a.stan, Format: a.format, Data: a.data}
	if !a.linked {
		a.fin, a.linked = st.find(a.stan)
	}
	if !a.linked {
		switch {
		case m.cfg.Signatures == nil:
			ack.Status = tlink.SignatureRefused
			return ack, nil, false, "no signature sink configured"
		case len(st.held) >= recentFinancials:
			ack.Status = tlink.SignatureRefused
			return ack, nil, false, fmt.Sprintf("no financial request with STAN %s on this device, and %d signatures already wait for theirs", a.stan, len(st.held))
		}
		st.held = append(st.held, heldSig{sig: sig, since: now})
	}
	st.doneRef, st.doneSTAN, st.doneTotal = a.ref, a.stan, a.total
	ack.Status = tlink.SignatureComplete
	if !a.linked {
		return ack, nil, true, ""
	}
	sig = withSale(sig, a.fin)
	return ack, &sig, false, ""
}
