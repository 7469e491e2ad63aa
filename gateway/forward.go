package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/match"
)

// Uplink carries one request to the center and returns its response.
// *link.Client satisfies it.
type Uplink interface {
	RoundTrip(ctx context.Context, req []byte) ([]byte, error)
}

// Forwarder relays financial messages from terminals to the center without
// repacking them: it reads only the header fields it needs (iso93.Peek),
// refuses a second in-flight request with the same MTI class, terminal ID
// and STAN, and answers with a 1993 action code of its own when the message
// is malformed or the center cannot be reached.
//
// When the request was not sent because the link is down (or the gateway is
// not enrolled), a 1100/1200 is decided by Offline under the stand-in policy
// and answered only after an approval is durable; when the request may have
// reached the center (link.ErrOutcomeUnknown) it is answered 911 and
// reversed, never decided in stand-in: the center may have approved it.
//
// A terminal's offline approval advice (a 1220/1221 with function code 201
// and no original data, sent after the chip card approved the sale
// offline) is first sent to the center; when no final answer comes back
// it is kept in Advices, durably, and answered 1230 with action code 000
// ("accepted for forwarding"), and the AdviceForwarder delivers it later
// (advice.go, docs/offline.md).
//
// Forwarder is safe for concurrent use.
type Forwarder struct {
	Uplink  Uplink
	Timeout time.Duration // per request; zero means 10s
	Logger  *slog.Logger
	Metrics *Metrics
	// Reverser receives requests whose outcome at the center is unknown.
	// Nil means such requests are only logged.
	Reverser *Reverser
	// Offline decides requests that could not be sent. Nil means they are
	// answered 907.
	Offline StandIn
	// StandInMetrics counts stand-in decisions; nil records nothing.
	StandInMetrics *StandInMetrics
	// Advices keeps terminals' offline approval advices that could not
	// be delivered at once. Nil means they are relayed like any request
	// and answered 907 when the center cannot be reached.
	Advices AdviceStore

	inflight match.Table
}

// Handle processes one terminal request and returns the bytes to answer the
// terminal with. It returns an error, and no answer, only when no answer can
// be built (the bytes are not a readable ISO 8583:1993 message); the caller
// then closes the connection with a logged reason.
func (f *Forwarder) Handle(ctx context.Context, raw []byte) ([]byte, error) {
	start := time.Now()
	mti := "unknown"
	var uplink time.Duration
	// The gateway's own share of the answer time is everything but the
	// uplink round trip. Deferred first so that it runs last and also
	// counts releasing the in-flight entry.
	defer func() { f.Metrics.observeGateway(mti, time.Since(start)-uplink) }()
	h, err := iso93.Peek(raw)
	if err != nil {
		// Peek walks the same layout as a full unpack: a message it cannot
		// read has no trace fields to echo, so no answer can be built.
		mti = mtiOrUnknown(raw)
		f.Metrics.observe(mti, "closed", time.Since(start))
		return nil, fmt.Errorf("unreadable terminal message: %w", err)
	}
	mti = h.MTI
	key := match.KeyOf(h)
	p, err := f.inflight.Begin(key)
	if err != nil {
		f.Logger.Warn("duplicate in-flight request refused", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN)
		return f.reply(raw, h, iso93.ActionDuplicateTransmission, start)
	}
	defer p.Cancel()

	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if f.Advices != nil && isAdviceMTI(h.MTI) && h.FunctionCode == iso93.FunctionPreviousApproval {
		adv, err := terminalAdviceFrom(raw)
		switch {
		case errors.Is(err, errNotOfflineAdvice):
			// A completion advice: relayed like any request.
		case err != nil:
			// The center would refuse it with 904 as well; nothing is kept.
			f.Logger.Warn("terminal advice refused as malformed", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
			return f.reply(raw, h, iso93.ActionFormatError, start)
		default:
			return f.terminalAdvice(rctx, raw, h, adv, start, &uplink)
		}
	}
	sent := time.Now()
	resp, err := f.Uplink.RoundTrip(rctx, raw)
	uplink = time.Since(sent)
	if err != nil {
		// A request that may have reached the center is reversed, never
		// left hanging, and never decided in stand-in.
		if errors.Is(err, link.ErrOutcomeUnknown) {
			f.Logger.Warn("center did not answer in time; reversing", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
			if needsReversal(h.MTI) && f.Reverser != nil {
				f.Reverser.Enqueue(raw)
			}
			return f.reply(raw, h, iso93.ActionIssuerTimedOut, start)
		}
		if f.Offline != nil && (errors.Is(err, link.ErrLinkDown) || errors.Is(err, ErrNotEnrolled)) {
			return f.standIn(raw, h, start)
		}
		f.Logger.Warn("center unreachable; request not sent", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return f.reply(raw, h, iso93.ActionIssuerInoperative, start)
	}
	rh, err := iso93.Peek(resp)
	if err != nil || match.KeyOf(rh) != key {
		f.Logger.Error("center answer does not match the request", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return f.reply(raw, h, iso93.ActionSystemMalfunction, start)
	}
	f.Metrics.observe(h.MTI, rh.ActionCode, time.Since(start))
	return resp, nil
}

func (f *Forwarder) reply(raw []byte, h iso93.Header, code iso93.ActionCode, start time.Time) ([]byte, error) {
	resp, err := errorReply(raw, code)
	if err != nil {
		return nil, fmt.Errorf("build %s reply to %s: %w", code, h.MTI, err)
	}
	f.Metrics.observe(h.MTI, string(code), time.Since(start))
	return resp, nil
}

func needsReversal(mti string) bool {
	return mti == iso93.MTIAuthorizationRequest || mti == iso93.MTIFinancialRequest
}

func mtiOrUnknown(raw []byte) string {
	if len(raw) >= 4 {
		for _, c := range raw[:4] {
			if c < '0' || c > '9' {
				return "unknown"
			}
		}
		return string(raw[:4])
	}
	return "unknown"
}

// TerminalServer accepts terminal TCP connections carrying length-framed
// ISO 8583:1993 messages and answers each through the Forwarder. Requests on
// one connection are handled concurrently; answers are written whole.
type TerminalServer struct {
	Forwarder *Forwarder
	Logger    *slog.Logger
	// MaxFrame bounds an incoming message. Zero means 8 KiB.
	MaxFrame int
}

// Serve accepts connections on l until ctx is done. Serve always returns a
// non-nil error and closes l; it waits for every connection it started.
func (s *TerminalServer) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept terminal connection: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *TerminalServer) serveConn(ctx context.Context, c net.Conn) {
	log := s.Logger.With("remote", c.RemoteAddr().String())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	defer func() {
		if r := recover(); r != nil {
			log.Error("terminal connection dropped after an internal error", "panic", fmt.Sprint(r))
		}
	}()
	max := s.MaxFrame
	if max <= 0 {
		max = 8 << 10
	}
	var (
		wmu sync.Mutex
		wg  sync.WaitGroup
	)
	defer wg.Wait()
	for {
		raw, err := frame.Read(c, max)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				log.Warn("terminal connection closed", "reason", err)
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					log.Error("terminal request dropped after an internal error", "panic", fmt.Sprint(r))
					cancel()
				}
			}()
			resp, err := s.Forwarder.Handle(ctx, raw)
			if err != nil {
				log.Warn("closing terminal connection", "reason", err)
				cancel()
				return
			}
			wmu.Lock()
			err = frame.Write(c, resp)
			wmu.Unlock()
			if err != nil {
				log.Warn("write to terminal failed", "reason", err)
				cancel()
			}
		}()
	}
}

// errorReply answers raw with the given action code. It needs the request to
// unpack far enough to echo its trace fields; otherwise it returns an error.
func errorReply(raw []byte, code iso93.ActionCode) ([]byte, error) {
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		return nil, err
	}
	resp, err := iso93.NewResponse(msg, code)
	if err != nil {
		return nil, err
	}
	return iso93.PackMessage(resp)
}
