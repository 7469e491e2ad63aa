// Package forward is the gateway's ISO 8583 forwarding path: it relays
// terminals' financial messages to the center over the uplink without
// repacking them, hands requests the center could not be sent to stand-in,
// schedules the reversal of requests whose outcome is unknown, keeps
// terminals' offline approval advices, and serves terminals' TCP
// connections. Clear card data never reaches it: terminals send the
// DUKPT-encrypted card-data block.
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/match"
)

// ErrNotEnrolled is the uplink error of a gateway that has no link
// certificate yet: nothing is sent, and a sale is decided in stand-in as
// when the link is down.
var ErrNotEnrolled = errors.New("gateway: not enrolled with the center")

// Reverser schedules the timeout reversal of a request whose outcome at
// the center is unknown. *outbox.Reverser satisfies it.
type Reverser interface {
	Enqueue(orig []byte)
}

// StandIn decides a 1100/1200 the center could not be sent.
// *standin.Decider satisfies it; its errors are standin's sentinels.
type StandIn interface {
	Decide(raw []byte, h iso93.Header) (device.Answer, error)
}

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
// not enrolled), a 1100/1200 is decided by StandIn under the stand-in policy
// and answered only after an approval is durable; when the request may have
// reached the center (link.ErrOutcomeUnknown) it is answered 911 and
// reversed, never decided in stand-in: the center may have approved it.
//
// A terminal's offline approval advice (a 1220/1221 with function code 201
// and no original data, sent after the chip card approved the sale
// offline) is first sent to the center; when no final answer comes back
// it is kept in Advices, durably, and answered 1230 with action code 000
// ("accepted for forwarding"), and the advice.Forwarder delivers it later
// (gateway/advice, docs/offline.md).
//
// Forwarder is safe for concurrent use.
type Forwarder struct {
	Uplink  Uplink
	Timeout time.Duration // per request; zero means 10s
	Logger  *slog.Logger
	Metrics *Metrics
	// Reverser receives requests whose outcome at the center is unknown.
	// Nil means such requests are only logged.
	Reverser Reverser
	// StandIn decides requests that could not be sent. Nil means they are
	// answered 907.
	StandIn StandIn
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
	a, err := f.Exchange(ctx, raw)
	return a.Message, err
}

// Exchange is Handle that also returns the stand-in decision behind the
// answer, when there is one (device.Handler): the device manager carries
// it into the POS transaction the exchange belongs to.
func (f *Forwarder) Exchange(ctx context.Context, raw []byte) (device.Answer, error) {
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
		return device.Answer{}, fmt.Errorf("unreadable terminal message: %w", err)
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
		if f.StandIn != nil && (errors.Is(err, link.ErrLinkDown) || errors.Is(err, ErrNotEnrolled)) {
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
	return device.Answer{Message: resp}, nil
}

// standIn has f.StandIn decide a request the center could not be sent and
// answers with the decision, or with the action code the failure names.
func (f *Forwarder) standIn(raw []byte, h iso93.Header, start time.Time) (device.Answer, error) {
	a, err := f.StandIn.Decide(raw, h)
	switch {
	case err == nil:
		f.Metrics.observe(h.MTI, a.StandIn.ActionCode, time.Since(start))
		return a, nil
	case errors.Is(err, standin.ErrMalformed):
		return f.reply(raw, h, iso93.ActionFormatError, start)
	case errors.Is(err, standin.ErrNoAnswer):
		return f.reply(raw, h, iso93.ActionSystemMalfunction, start)
	default: // ErrNotSale, ErrUndecided
		return f.reply(raw, h, iso93.ActionIssuerInoperative, start)
	}
}

func (f *Forwarder) reply(raw []byte, h iso93.Header, code iso93.ActionCode, start time.Time) (device.Answer, error) {
	resp, err := errorReply(raw, code)
	if err != nil {
		return device.Answer{}, fmt.Errorf("build %s reply to %s: %w", code, h.MTI, err)
	}
	f.Metrics.observe(h.MTI, string(code), time.Since(start))
	return device.Answer{Message: resp}, nil
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
