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
	// recentFinancials is how many financial requests (and offline
	// approval advices) per device are remembered to link a signature to
	// its transaction.
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
	last      time.Time // when the last chunk arrived
}

// sigState is one device's signature state.
type sigState struct {
	fins []finRef // the last recentFinancials financial requests, oldest first
	cur  *sigAssembly
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
	defer m.sigs.mu.Unlock()
	st := m.sigs.state(d.id)
	st.fins = append(st.fins, f)
	if len(st.fins) > recentFinancials {
		st.fins = st.fins[len(st.fins)-recentFinancials:]
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
	ack, complete, why := m.sigChunk(d.id, c)
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
// complete signature when c finished it, and why it was refused.
func (m *Manager) sigChunk(id string, c tlink.Signature) (tlink.SignatureAck, *Signature, string) {
	now := m.cfg.Now()
	ack := tlink.SignatureAck{Ref: c.Ref, Status: tlink.SignatureOK}
	end := c.Offset + uint32(len(c.Data))
	m.sigs.mu.Lock()
	defer m.sigs.mu.Unlock()
	st := m.sigs.state(id)
	if st.cur != nil && now.Sub(st.cur.last) > SignatureTimeout {
		st.cur = nil
	}
	if c.Ref == st.doneRef && c.STAN == st.doneSTAN && c.Total == st.doneTotal && end == c.Total {
		// The last chunk again: its ack was lost.
		ack.Status, ack.NextOffset = tlink.SignatureComplete, c.Total
		return ack, nil, ""
	}
	if c.Offset == 0 {
		var fin *finRef
		for i := len(st.fins) - 1; i >= 0; i-- {
			if st.fins[i].stan == c.STAN {
				fin = &st.fins[i]
				break
			}
		}
		if fin == nil {
			if st.cur != nil && st.cur.ref == c.Ref && st.cur.stan == c.STAN {
				fin = &st.cur.fin
			} else {
				ack.Status = tlink.SignatureRefused
				return ack, nil, fmt.Sprintf("no financial request with STAN %s on this device", c.STAN)
			}
		}
		st.cur = &sigAssembly{ref: c.Ref, stan: c.STAN, format: c.Format, total: c.Total, fin: *fin,
			data: make([]byte, 0, c.Total)}
	}
	a := st.cur
	switch {
	case a == nil || a.ref != c.Ref || a.stan != c.STAN:
		// Nothing under way for this signature (expired, or the gateway
		// restarted): start again.
		ack.Status, ack.NextOffset = tlink.SignatureResend, 0
		return ack, nil, ""
	case a.total != c.Total || a.format != c.Format:
		st.cur = nil
		ack.Status = tlink.SignatureRefused
		return ack, nil, "chunk changes the signature's size or format"
	case c.Offset > uint32(len(a.data)):
		ack.Status, ack.NextOffset = tlink.SignatureResend, uint32(len(a.data))
		return ack, nil, ""
	case end <= uint32(len(a.data)):
		// Already held (a repeat after a lost ack).
		ack.NextOffset = uint32(len(a.data))
		return ack, nil, ""
	}
	a.data = append(a.data, c.Data[uint32(len(a.data))-c.Offset:]...)
	a.last = now
	ack.NextOffset = uint32(len(a.data))
	if ack.NextOffset < a.total {
		return ack, nil, ""
	}
	st.cur = nil
	st.doneRef, st.doneSTAN, st.doneTotal = a.ref, a.stan, a.total
	ack.Status = tlink.SignatureComplete
	return ack, &Signature{DeviceID: id, Ref: a.ref, MTI: a.fin.mti, TerminalID: a.fin.terminalID, STAN: a.stan,
		LocalTime: a.fin.localTime, IdempotencyKey: a.fin.key, Format: a.format, Data: a.data}, ""
}
