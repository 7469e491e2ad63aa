// Package devicetest is a fake payment terminal for tests of the device
// manager and the POS API: it speaks the terminal link (terminal/tlink)
// over any byte stream, answers status and last-transaction queries,
// and answers a transaction command the way a JET-S-class terminal does:
// it sends a financial request (an ISO 8583:1993 1200 built with
// protocol/iso93, carrying only a dummy encrypted block and a masked PAN),
// waits for the financial response, keeps the outcome as its last
// transaction, and sends the txn-result.
//
// It carries no real card data: the card-data block is filler bytes and
// the PAN appears only masked.
package devicetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// Terminal is a fake payment terminal. Its last transaction survives
// between Serve calls, like a terminal's non-volatile storage. Set the
// fields before the first Serve; the methods are safe for concurrent use.
type Terminal struct {
	// Serial is reported in the status response; a hot-attached terminal
	// is identified by it. Default "FAKE0001".
	Serial string
	// TerminalID is DE 41 of its financial requests. Default "T0000001".
	TerminalID string
	// MaskedPAN is DE 124 of its financial requests. Default
	// "411111******1111".
	MaskedPAN string
	// BeforeResult, when set, is called after the financial exchange of a
	// command, with the command's ref, once the outcome is stored as the
	// last transaction. Returning false keeps the txn-result from being
	// sent (the test then pulls the cable, or lets the gateway time out).
	BeforeResult func(ref string) bool

	mu       sync.Mutex
	last     tlink.LastTxn
	commands []string // refs of the transaction commands received
	stan     int
}

// Commands returns the refs of the transaction commands received so far,
// in order.
func (t *Terminal) Commands() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.commands...)
}

// Serve runs the terminal on rw until ctx ends or the link fails, and
// returns Run's error. It closes rw.
func (t *Terminal) Serve(ctx context.Context, rw io.ReadWriteCloser, cfg tlink.Config) error {
	ep := tlink.New(rw, cfg)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	runErr := make(chan error, 1)
	wg.Go(func() {
		runErr <- ep.Run(ctx)
		cancel()
	})
	wg.Go(func() {
		for {
			m, err := ep.Receive(ctx)
			if err != nil {
				return
			}
			switch {
			case m.Kind == tlink.KindStatusRequest:
				var q tlink.RefOnly
				_ = q.UnmarshalBinary(m.Payload)
				st := tlink.Status{Ref: q.Ref, DeviceKind: 1, State: tlink.StateIdle, Model: "FAKE-1", Serial: t.serial(), Firmware: "1.0.0", Protocol: tlink.ProtocolVersion}
				t.send(ctx, ep, tlink.KindStatusResponse, &st)
			case m.Kind == tlink.KindLastTxnQuery:
				var q tlink.RefOnly
				_ = q.UnmarshalBinary(m.Payload)
				t.mu.Lock()
				lt := t.last
				if lt.Txn != nil {
					c := *lt.Txn
					lt.Txn = &c
				}
				t.mu.Unlock()
				lt.Ref = q.Ref
				t.send(ctx, ep, tlink.KindLastTxnResponse, &lt)
			case tlink.IsTxnCommand(m.Kind):
				var c tlink.TxnCommand
				if err := c.UnmarshalBinary(m.Payload); err != nil {
					continue
				}
				wg.Go(func() { t.transact(ctx, ep, m.Kind, c) })
			}
		}
	})
	return <-runErr
}

func (t *Terminal) serial() string {
	if t.Serial == "" {
		return "FAKE0001"
	}
	return t.Serial
}

func (t *Terminal) send(ctx context.Context, ep *tlink.Endpoint, k tlink.Kind, p interface{ MarshalBinary() ([]byte, error) }) {
	b, err := p.MarshalBinary()
	if err != nil {
		return
	}
	_ = ep.Send(ctx, k, b)
}

func (t *Terminal) transact(ctx context.Context, ep *tlink.Endpoint, k tlink.Kind, c tlink.TxnCommand) {
	t.mu.Lock()
	t.commands = append(t.commands, c.Ref)
	t.stan++
	stan := fmt.Sprintf("%06d", t.stan%1000000)
	res := &tlink.TxnResult{Ref: c.Ref, Amount: c.Amount, Currency: c.Currency, Outcome: tlink.OutcomePending, STAN: stan}
	t.last = tlink.LastTxn{Command: k, Txn: res}
	t.mu.Unlock()

	final := tlink.TxnResult{Ref: c.Ref, Amount: c.Amount, Currency: c.Currency, Outcome: tlink.OutcomeFailed, STAN: stan}
	raw, err := t.request(stan, c)
	if err == nil {
		var m tlink.Message
		m, err = ep.Request(ctx, tlink.KindFinancialRequest, raw)
		if err == nil {
			var resp iso93.FinancialResponse
			if err = iso93.UnpackInto(m.Payload, &resp); err == nil {
				final.ActionCode = string(resp.ActionCode)
				final.ApprovalCode = resp.ApprovalCode
				if resp.ActionCode == iso93.ActionApproved {
					final.Outcome = tlink.OutcomeApproved
				} else {
					final.Outcome = tlink.OutcomeDeclined
				}
			}
		}
	}
	final.Time = "20260101120000"
	t.mu.Lock()
	t.last = tlink.LastTxn{Command: k, Txn: &final}
	t.mu.Unlock()
	if t.BeforeResult != nil && !t.BeforeResult(c.Ref) {
		return
	}
	t.send(ctx, ep, tlink.KindTxnResult, &final)
}

func (t *Terminal) request(stan string, c tlink.TxnCommand) ([]byte, error) {
	tid := t.TerminalID
	if tid == "" {
		tid = "T0000001"
	}
	pan := t.MaskedPAN
	if pan == "" {
		pan = "411111******1111"
	}
	amount := int64(c.Amount)
	cur := c.Currency
	if cur == "" {
		cur = "392"
	}
	req := iso93.FinancialRequest{
		Trace: iso93.Trace{
			TransmissionTime: "0101120000",
			STAN:             stan,
			LocalTime:        "260101120000",
			FunctionCode:     iso93.FunctionOriginalFinancial,
			AcquirerID:       "99000001",
			TerminalID:       tid,
			MerchantID:       "MERCHANT0000001",
			IdempotencyKey:   tid + "-" + stan,
		},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: amount, POSDataCode: "510101513001", Currency: cur},
		Card: iso93.Card{
			CardData:    bytes.Repeat([]byte{0xAA}, 48),
			KSN:         bytes.Repeat([]byte{0x01}, 12),
			Fingerprint: "00112233445566778899aabbccddeeff",
			MaskedPAN:   pan,
		},
	}
	return iso93.Pack(&req, iso93.MTIFinancialRequest)
}

// Approve is an uplink round trip (forward.Uplink) that approves every
// request with action code 000 and approval code "A1B2C3".
func Approve(_ context.Context, req []byte) ([]byte, error) {
	_, msg, err := iso93.Unpack(req)
	if err != nil {
		return nil, err
	}
	resp, err := iso93.NewResponse(msg, iso93.ActionApproved)
	if err != nil {
		return nil, err
	}
	if err := resp.Field(38, "A1B2C3"); err != nil {
		return nil, err
	}
	return iso93.PackMessage(resp)
}

// UplinkFunc adapts a function to forward.Uplink.
type UplinkFunc func(ctx context.Context, req []byte) ([]byte, error)

// RoundTrip calls f.
func (f UplinkFunc) RoundTrip(ctx context.Context, req []byte) ([]byte, error) { return f(ctx, req) }

// Plug serves a Terminal on a TCP listener that a test can pull and plug
// back on the same address, as a terminal whose cable is pulled.
type Plug struct {
	// Addr is the listen address, fixed at the first listen.
	Addr string

	t    testing.TB
	term *Terminal
	ctx  context.Context

	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewPlug listens on a free loopback port and serves term on every
// connection until the test ends.
func NewPlug(t testing.TB, term *Terminal) *Plug {
	p := &Plug{t: t, term: term, ctx: t.Context()}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.Pull)
	return p
}

func (p *Plug) listen(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("devicetest: listen: %v", err)
	}
	p.Addr = l.Addr().String()
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Go(func() { _ = p.term.Serve(p.ctx, c, tlink.Config{}) })
		}
	})
}

// Pull closes the listener and every connection and waits until the
// terminal has stopped serving them.
func (p *Plug) Pull() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// PlugIn listens again on Addr.
func (p *Plug) PlugIn() { p.listen(p.Addr) }
