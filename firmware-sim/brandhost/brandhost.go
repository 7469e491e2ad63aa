// Package brandhost is a brand-host simulator: a TCP server speaking ISO
// 8583:1993 with the 2-byte length header of protocol/frame, standing in for
// an external card brand's authorization host in tests and demos.
//
// It answers 1100 and 1200 by a scripted rule (Rule; by default approve
// unless the amount ends in 51, which is declined 116, or the PAN is in
// Declines), 1220/1221 with 1230, 1420/1421 with 1430 and 1804 with 1814.
// ModeSilentRequests never answers 1100/1200 (to test timeouts);
// ModeSilentAll answers nothing. Every message received is kept (with the
// PAN masked) and can be waited for with WaitFor.
//
// Its message specification is the center's brand-host link,
// protocol/brandspec (iso93.Spec plus DE 14), as documented in
// docs/switching.md.
package brandhost

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/protocol/brandspec"
	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
)

// Mode selects what the simulator answers.
type Mode int

// Modes.
const (
	ModeAnswer         Mode = iota // answer everything
	ModeSilentRequests             // never answer 1100/1200; answer the rest
	ModeSilentAll                  // answer nothing
)

// Request is what a Rule sees of a 1100/1200. PAN is the clear PAN of DE 2
// (the simulator is outside the edge); never log it.
type Request struct {
	MTI    string
	PAN    string
	Expiry string
	Amount int64
	STAN   string
}

// Rule decides a 1100/1200 and returns the action code.
type Rule func(Request) iso93.ActionCode

// Record is one message the simulator received, with the PAN masked.
type Record struct {
	MTI          string
	STAN         string
	TerminalID   string
	MaskedPAN    string
	Expiry       string
	Amount       int64
	FunctionCode string
	ReasonCode   string
	OriginalData string
	ApprovalCode string
	// Answer is the action code sent back, "" when not answered.
	Answer string
}

// Server is the simulator. Set Rule, Declines and Logger before Serve;
// SetMode may be called at any time. Its methods are safe for concurrent
// use.
type Server struct {
	// Rule decides 1100/1200; nil means the default rule.
	Rule Rule
	// Declines maps clear PANs to the action code the default rule
	// answers for them.
	Declines map[string]iso93.ActionCode
	Logger   *slog.Logger

	ln net.Listener

	mu      sync.Mutex
	mode    Mode
	records []Record
	changed chan struct{} // closed and replaced on every new record
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// Listen opens the simulator's listener on addr ("127.0.0.1:0" for any
// port), with TLS when tlsConf is not nil.
func Listen(addr string, tlsConf *tls.Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("brandhost: listen: %w", err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	return &Server{ln: ln, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}}, nil
}

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetMode changes what the simulator answers from now on.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	s.mode = m
	s.mu.Unlock()
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Serve accepts connections until Close, serving each on its own
// goroutine, and waits for them to end. It always returns a non-nil error
// (net.ErrClosed after Close).
func (s *Server) Serve() error {
	defer s.wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return fmt.Errorf("brandhost: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return fmt.Errorf("brandhost: %w", net.ErrClosed)
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

// Close stops the listener and closes every connection; Serve returns
// once their goroutines ended.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return s.ln.Close()
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	for {
		raw, err := frame.Read(c, 0)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log().Warn("brandhost: connection closed", "reason", err)
			}
			return
		}
		resp, err := s.handle(raw)
		if err != nil {
			s.log().Warn("brandhost: message refused, closing connection", "reason", err)
			return
		}
		if resp == nil {
			continue
		}
		if err := frame.Write(c, resp); err != nil {
			return
		}
	}
}

// defaultRule approves unless the amount ends in 51 (116) or the PAN is
// in Declines.
func (s *Server) defaultRule(r Request) iso93.ActionCode {
	if code, ok := s.Declines[r.PAN]; ok {
		return code
	}
	if r.Amount%100 == 51 {
		return iso93.ActionInsufficientFunds
	}
	return iso93.ActionApproved
}

// handle answers one message; a nil answer means none is sent.
func (s *Server) handle(raw []byte) ([]byte, error) {
	msg := iso8583.NewMessage(brandspec.Spec)
	if err := msg.Unpack(raw); err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	mti, _ := msg.GetMTI()
	rec := Record{MTI: mti}
	rec.STAN, _ = msg.GetString(iso93.FieldSTAN)
	rec.TerminalID, _ = msg.GetString(iso93.FieldTerminalID)
	rec.Expiry, _ = msg.GetString(brandspec.FieldExpiry)
	rec.FunctionCode, _ = msg.GetString(iso93.FieldFunctionCode)
	rec.ReasonCode, _ = msg.GetString(iso93.FieldReasonCode)
	rec.OriginalData, _ = msg.GetString(iso93.FieldOriginalData)
	rec.ApprovalCode, _ = msg.GetString(iso93.FieldApprovalCode)
	pan, _ := msg.GetString(iso93.FieldPAN)
	rec.MaskedPAN = iso93.MaskPAN(pan)
	if amt, err := msg.GetString(iso93.FieldAmount); err == nil && amt != "" {
		rec.Amount, _ = strconv.ParseInt(amt, 10, 64)
	}
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()

	action := iso93.ActionApproved
	var answer bool
	switch mti {
	case iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest:
		answer = mode == ModeAnswer
		if err := iso93.Validate(msg); err != nil {
			action = iso93.ActionFormatError
		} else {
			rule := s.Rule
			if rule == nil {
				rule = s.defaultRule
			}
			action = rule(Request{MTI: mti, PAN: pan, Expiry: rec.Expiry, Amount: rec.Amount, STAN: rec.STAN})
		}
	case iso93.MTIReversal, iso93.MTIReversalRepeat:
		answer = mode != ModeSilentAll
		action = iso93.ActionReversalAccepted
	case iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		answer = mode != ModeSilentAll
	case iso93.MTINetworkManagement:
		answer = mode != ModeSilentAll
		action = iso93.ActionNetworkAccepted
	default:
		answer = false
	}
	if mti == iso93.MTIReversal || mti == iso93.MTIReversalRepeat || mti == iso93.MTIAdvice || mti == iso93.MTIAdviceRepeat {
		if err := iso93.Validate(msg); err != nil {
			action = iso93.ActionFormatError
		}
	}
	var out []byte
	if answer {
		resp, err := iso93.NewResponse(msg, action)
		if err != nil {
			return nil, fmt.Errorf("build response to %s: %w", mti, err)
		}
		if action == iso93.ActionApproved && (mti == iso93.MTIAuthorizationRequest || mti == iso93.MTIFinancialRequest) {
			code := "H" + rec.STAN[len(rec.STAN)-5:] // Validate made it 6 digits
			if err := resp.Field(iso93.FieldApprovalCode, code); err != nil {
				return nil, fmt.Errorf("set approval code: %w", err)
			}
		}
		if od, err := msg.GetString(iso93.FieldOriginalData); err == nil && od != "" && mti[:2] == "14" {
			_ = resp.Field(iso93.FieldOriginalData, od)
		}
		if out, err = iso93.PackMessage(resp); err != nil {
			return nil, fmt.Errorf("pack response to %s: %w", mti, err)
		}
		rec.Answer = string(action)
	}
	s.mu.Lock()
	s.records = append(s.records, rec)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return out, nil
}

// Records returns a copy of every message received so far, in order.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// WaitFor waits until a received message satisfies match (messages
// received before the call count) and returns it, or returns ctx's error.
func (s *Server) WaitFor(ctx context.Context, match func(Record) bool) (Record, error) {
	seen := 0
	for {
		s.mu.Lock()
		recs, ch := s.records[seen:], s.changed
		recs = append([]Record(nil), recs...)
		seen = len(s.records)
		s.mu.Unlock()
		for _, r := range recs {
			if match(r) {
				return r, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Record{}, fmt.Errorf("brandhost: wait for message: %w", ctx.Err())
		}
	}
}
