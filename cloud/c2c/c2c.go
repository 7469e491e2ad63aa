// Package c2c is the center-to-center port: an ISO 8583:1993 TCP listener
// (2-byte length header, protocol/frame) where a merchant's head-office
// payment server sends its terminals' requests straight to the center, with
// DE 2 in clear (the head office is PCI scoped) or with the DE 120
// encrypted block. Requests feed the same authorization switch as the QUIC
// link.
//
// A connection's identity is its head office: the common name of its TLS
// client certificate, or for plain TCP the allow-list entry of its remote
// address. It may act only for the terminals of merchants of that head
// office (others are answered 120 and audited by the switch). Many
// requests may be in flight on one connection and are answered as they
// are decided, so answers can come back out of order; a request whose key
// (message class, terminal, STAN) is already in flight is answered 913.
// docs/switching.md is the reference.
package c2c

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/match"
)

// Defaults of Config's zero fields.
const (
	DefaultMaxInFlight = 64
	DefaultIdleTimeout = 10 * time.Minute
)

// authorizeTimeout bounds one decision, brand-host round trip included.
const authorizeTimeout = time.Minute

// Sentinel errors.
var (
	// ErrConfig is wrapped by Listen for a configuration it cannot use.
	ErrConfig = errors.New("c2c: bad configuration")
	// ErrUnknownPeer is the reason a connection from an address on no
	// allow-list (or a TLS client without a common name) is closed.
	ErrUnknownPeer = errors.New("c2c: peer is not a known head office")
)

// Authorizer decides requests. *authz.Switch satisfies it.
type Authorizer interface {
	Authorize(ctx context.Context, r authz.Request) (authz.Response, error)
}

// Config configures the port.
type Config struct {
	// Addr is the TCP listen address, host:port.
	Addr string
	// TLS, when set, makes the port TLS-only; it must require and verify
	// client certificates (tls.RequireAndVerifyClientCert). The client
	// certificate's common name is the head-office (merchant) id.
	TLS *tls.Config
	// AllowList maps remote IP addresses of plain-TCP peers to their
	// head-office id. Without TLS a peer not on it is refused.
	AllowList map[string]string
	// Switch decides the requests.
	Switch Authorizer
	// Store, when set, receives an audit record for every refused
	// connection.
	Store *store.Store
	// Logger receives connection events; never card data.
	Logger *slog.Logger
	// MaxInFlight bounds concurrent requests per connection; zero means
	// DefaultMaxInFlight. The port stops reading a connection while it is
	// at the bound.
	MaxInFlight int
	// IdleTimeout closes a connection that sends nothing for that long
	// (head offices send 1804 echo tests); zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Now is the clock for DE 7 of replies; nil means time.Now.
	Now func() time.Time
}

// Server is a listening center-to-center port. Serve runs it; it is safe
// for concurrent use.
type Server struct {
	cfg Config
	ln  net.Listener
	log *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen checks cfg and opens the listener.
func Listen(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Switch == nil {
		errs = append(errs, errors.New("c2c config: Switch is required"))
	}
	if cfg.TLS != nil && cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		errs = append(errs, errors.New("TLS must require and verify client certificates"))
	}
	if cfg.TLS == nil && len(cfg.AllowList) == 0 {
		errs = append(errs, errors.New("plain TCP needs an allow-list of head-office addresses"))
	}
	for ip := range cfg.AllowList {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("allow-list key %q is not an IP address", ip))
		}
	}
	if cfg.MaxInFlight < 0 || cfg.IdleTimeout < 0 {
		errs = append(errs, errors.New("MaxInFlight and IdleTimeout must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("c2c: listen: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, ln: ln, log: log, conns: map[net.Conn]struct{}{}}, nil
}

// Addr returns the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until ctx is done, then closes the listener and
// every connection, waits for their requests in flight to be answered (or
// abandoned) and returns ctx's error. It returns earlier with the accept
// error if the listener fails. Serve always returns a non-nil error.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.shutdown() })
	defer stop()
	defer s.wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.shutdown()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("c2c: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
}

// identify returns the peer's head-office id.
func (s *Server) identify(ctx context.Context, c net.Conn) (net.Conn, string, error) {
	if s.cfg.TLS != nil {
		tc := tls.Server(c, s.cfg.TLS)
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			return tc, "", fmt.Errorf("TLS handshake: %w", err)
		}
		certs := tc.ConnectionState().PeerCertificates
		if len(certs) == 0 || certs[0].Subject.CommonName == "" {
			return tc, "", fmt.Errorf("client certificate has no common name: %w", ErrUnknownPeer)
		}
		return tc, certs[0].Subject.CommonName, nil
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c, "", fmt.Errorf("remote address: %w", err)
	}
	if ip := net.ParseIP(host); ip != nil {
		for k, ho := range s.cfg.AllowList {
			if net.ParseIP(k).Equal(ip) {
				return c, ho, nil
			}
		}
	}
	return c, "", fmt.Errorf("address %s: %w", host, ErrUnknownPeer)
}

func (s *Server) audit(kind, actor, detail string) {
	if s.cfg.Store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: kind, Actor: actor, Detail: detail})
		return err
	})
	if err != nil {
		s.log.Error("c2c: audit failed", "kind", kind, "reason", err)
	}
}

// conn is one head office's connection.
type conn struct {
	s        *Server
	c        net.Conn
	office   string
	log      *slog.Logger
	inflight match.Table
	out      chan []byte
}

func (s *Server) serveConn(ctx context.Context, raw net.Conn) {
	nc, office, err := s.identify(ctx, raw)
	if err != nil {
		s.log.Warn("c2c: connection refused", "remote", raw.RemoteAddr().String(), "reason", err)
		s.audit("c2c_refused", "c2c:"+raw.RemoteAddr().String(), err.Error())
		nc.Close()
		return
	}
	s.mu.Lock()
	delete(s.conns, raw)
	s.conns[nc] = struct{}{}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		nc.Close()
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
	cn := &conn{s: s, c: nc, office: office, log: s.log.With("head_office", office, "remote", raw.RemoteAddr().String()),
		out: make(chan []byte, s.cfg.MaxInFlight)}
	cn.log.Info("c2c: head office connected")
	cn.run(ctx)
}

// run reads requests until the connection fails, answering each on its
// own goroutine; a writer goroutine owns the socket's write side. It
// returns after both and every request goroutine ended.
func (cn *conn) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var writer sync.WaitGroup
	writer.Go(func() {
		for b := range cn.out {
			if err := frame.Write(cn.c, b); err != nil {
				cn.log.Warn("c2c: write failed, closing", "reason", err)
				cn.c.Close()
				cancel()
				// Keep draining so request goroutines never block.
			}
		}
	})
	var reqs sync.WaitGroup
	sem := make(chan struct{}, cn.s.cfg.MaxInFlight)
	reason := cn.readLoop(ctx, sem, &reqs)
	cn.log.Info("c2c: connection closed", "reason", reason)
	cn.c.Close()
	reqs.Wait()
	close(cn.out)
	writer.Wait()
}

func (cn *conn) readLoop(ctx context.Context, sem chan struct{}, reqs *sync.WaitGroup) error {
	for {
		if err := cn.c.SetReadDeadline(time.Now().Add(cn.s.cfg.IdleTimeout)); err != nil {
			return err
		}
		raw, err := frame.Read(cn.c, 0)
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		reqs.Go(func() {
			defer func() { <-sem }()
			defer func() {
				if p := recover(); p != nil {
					cn.log.Error("c2c: request handler panicked, closing connection", "panic", fmt.Sprint(p))
					cn.c.Close()
				}
			}()
			if resp := cn.handle(ctx, raw); resp != nil {
				cn.out <- resp
			}
		})
	}
}

func (cn *conn) now() time.Time {
	if cn.s.cfg.Now != nil {
		return cn.s.cfg.Now()
	}
	return time.Now()
}

// handle answers one message; nil means no answer (the connection is
// closing).
func (cn *conn) handle(ctx context.Context, raw []byte) []byte {
	h, err := iso93.Peek(raw)
	if err != nil {
		cn.log.Warn("c2c: malformed message", "reason", err)
		return cn.formatError(raw)
	}
	if h.MTI == iso93.MTINetworkManagement {
		resp, err := iso93.NetworkCodec{Now: cn.s.cfg.Now}.Reply(raw)
		if err != nil {
			cn.log.Warn("c2c: network management refused", "reason", err)
		}
		return resp
	}
	key := match.KeyOf(h)
	p, err := cn.inflight.Begin(key)
	if err != nil {
		cn.log.Warn("c2c: duplicate request in flight", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN)
		return cn.replyRaw(raw, iso93.ActionDuplicateTransmission, authz.Response{})
	}
	defer p.Cancel()
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		cn.log.Warn("c2c: malformed message", "reason", err)
		return cn.formatError(raw)
	}
	return cn.answer(ctx, h.MTI, msg)
}

// formatError answers an unreadable request with 904 when its MTI is a
// request this port serves, echoing nothing else.
func (cn *conn) formatError(raw []byte) []byte {
	if len(raw) < 4 {
		return nil
	}
	respMTI, ok := iso93.ResponseMTI(string(raw[:4]))
	if !ok {
		return nil
	}
	m := iso93.NewMessage(respMTI)
	_ = m.Field(iso93.FieldTransmissionTime, iso93.TransmissionTime(cn.now()))
	_ = m.Field(iso93.FieldActionCode, string(iso93.ActionFormatError))
	out, err := iso93.PackMessage(m)
	if err != nil {
		return nil
	}
	return out
}

func (cn *conn) replyRaw(raw []byte, action iso93.ActionCode, res authz.Response) []byte {
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		return cn.formatError(raw)
	}
	return cn.reply(msg, action, res)
}

// reply packs the response to msg; nil when msg has no response MTI.
func (cn *conn) reply(msg *iso8583.Message, action iso93.ActionCode, res authz.Response) []byte {
	resp, err := iso93.NewResponse(msg, action)
	if err != nil {
		cn.log.Warn("c2c: no response to this message", "reason", err)
		return nil
	}
	if res.ApprovalCode != "" {
		_ = resp.Field(iso93.FieldApprovalCode, res.ApprovalCode)
	}
	if res.RRN != "" {
		_ = resp.Field(iso93.FieldRRN, res.RRN)
	}
	if len(res.ICCData) > 0 {
		// Issuer authentication data (ARPC) and scripts for the card.
		if err := resp.BinaryField(iso93.FieldICCData, res.ICCData); err != nil {
			cn.log.Error("c2c: set DE 55", "reason", err)
			return nil
		}
	}
	out, err := iso93.PackMessage(resp)
	if err != nil {
		cn.log.Error("c2c: pack response", "reason", err)
		return nil
	}
	return out
}

// answer validates, maps and decides one request.
func (cn *conn) answer(ctx context.Context, mti string, msg *iso8583.Message) []byte {
	if err := iso93.Validate(msg); err != nil {
		cn.log.Warn("c2c: request refused", "mti", mti, "reason", err)
		return cn.reply(msg, iso93.ActionFormatError, authz.Response{})
	}
	r, code, err := cn.request(mti, msg)
	if err != nil {
		cn.log.Warn("c2c: request refused", "mti", mti, "reason", err)
		return cn.reply(msg, code, authz.Response{})
	}
	// A decision is not abandoned when the head office disconnects: it
	// records its answer, which a repeat then gets.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), authorizeTimeout)
	defer cancel()
	res, err := cn.s.cfg.Switch.Authorize(actx, r)
	if err != nil {
		cn.log.Error("c2c: authorization failed", "mti", mti, "terminal", r.TerminalID, "stan", r.STAN, "reason", err)
		return cn.reply(msg, iso93.ActionSystemMalfunction, authz.Response{})
	}
	return cn.reply(msg, res.ActionCode, res)
}

// request maps a validated message to an authz.Request for this head
// office; on error code is the action code to answer.
func (cn *conn) request(mti string, msg *iso8583.Message) (authz.Request, iso93.ActionCode, error) {
	var t iso93.Trace
	var p iso93.Payment
	var c iso93.Card
	var orig *authz.OriginalData
	switch mti {
	case iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest, iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		var m iso93.FinancialRequest
		if err := msg.Unmarshal(&m); err != nil {
			return authz.Request{}, iso93.ActionFormatError, fmt.Errorf("unmarshal %s: %w", mti, err)
		}
		t, p, c = m.Trace, m.Payment, m.Card
	case iso93.MTIReversal, iso93.MTIReversalRepeat:
		var m iso93.Reversal
		if err := msg.Unmarshal(&m); err != nil {
			return authz.Request{}, iso93.ActionFormatError, fmt.Errorf("unmarshal %s: %w", mti, err)
		}
		t, p = m.Trace, m.Payment
		od, err := iso93.ParseOriginalData(m.OriginalData)
		if err != nil {
			return authz.Request{}, iso93.ActionFormatError, fmt.Errorf("DE 56: %w", err)
		}
		orig = &authz.OriginalData{MTI: od.MTI, STAN: od.STAN, LocalTime: od.LocalTime}
	default:
		return authz.Request{}, iso93.ActionInvalidTransaction, fmt.Errorf("MTI %s not served on the center-to-center port", mti)
	}
	r := authz.Request{
		MTI: mti, GatewayID: "c2c:" + cn.office, HeadOfficeID: cn.office,
		TerminalID: t.TerminalID, STAN: t.STAN, ProcessingCode: p.ProcessingCode, Amount: p.Amount,
		Currency: p.Currency, LocalTime: t.LocalTime, IdempotencyKey: t.IdempotencyKey,
		FunctionCode: t.FunctionCode, POSDataCode: p.POSDataCode, Original: orig,
		KSN: c.KSN, CardBlock: c.CardData, Fingerprint: c.Fingerprint,
		// A head office's chip request is verified like any other: its
		// ARQC (or an advice's TC) in the token, the ARPC back in DE 55.
		ICCData: c.ICCData,
	}
	if c.PAN != "" {
		pan, err := card.ParsePAN(string(c.PAN))
		if err != nil {
			return authz.Request{}, iso93.ActionInvalidCardNumber, fmt.Errorf("DE 2: %w", err)
		}
		r.PAN = pan
	}
	if r.IdempotencyKey == "" {
		r.IdempotencyKey = derivedKey(cn.office, mti, t)
	}
	return r, "", nil
}

// derivedKey is the idempotency key of a request without DE 123: a hash of
// the head office and the request's identifying fields, so a repeat maps
// to the same key.
func derivedKey(office, mti string, t iso93.Trace) string {
	switch mti { // a repeat is the same request
	case iso93.MTIAdviceRepeat:
		mti = iso93.MTIAdvice
	case iso93.MTIReversalRepeat:
		mti = iso93.MTIReversal
	}
	sum := sha256.Sum256([]byte(office + "\x00" + mti + "\x00" + t.TerminalID + "\x00" + t.STAN + "\x00" + t.LocalTime))
	return "c2c-" + hex.EncodeToString(sum[:16])
}
