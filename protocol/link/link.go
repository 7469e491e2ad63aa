// Package link is the gateway-to-center link: ISO 8583 messages carried over
// QUIC (github.com/quic-go/quic-go) with mutual TLS 1.3 and the ALPN
// "posgate-link/1".
//
// The gateway runs a Client; the center runs a Server. After the handshake the
// client opens a control stream (the first bidirectional stream) and keeps it
// for the life of the connection: it signs on over it, and then echoes every
// EchoInterval. Each request/response pair travels on a stream of its own:
// the client opens a stream, writes one frame (protocol/frame), closes its
// send side and reads one frame back. The gateway's identity is the Subject
// CommonName of its client certificate. docs/uplink.md describes the wire use,
// timeouts, reconnection and failover in full.
package link

import (
	"context"
	"crypto/x509"
	"errors"
	"net"

	"github.com/quic-go/quic-go"
)

// ALPN is the TLS application protocol name of the link. Both ends set it;
// a peer that does not offer it fails the handshake.
const ALPN = "posgate-link/1"

// Control builds and checks the control-stream messages (sign-on and echo).
// protocol/iso93's NetworkCodec implements it with 1804/1814 messages.
// Implementations must be safe for concurrent use.
type Control interface {
	// SignOn returns a sign-on request for gatewayID with the given STAN.
	SignOn(gatewayID string, stan uint32) ([]byte, error)
	// Echo returns an echo-test request for gatewayID with the given STAN.
	Echo(gatewayID string, stan uint32) ([]byte, error)
	// CheckReply returns nil when resp is an accepted reply to req, and an
	// error saying why not otherwise.
	CheckReply(req, resp []byte) error
	// Reply is the center side: it answers a control request. A non-nil
	// error means the request was malformed or refused; the reply, if also
	// non-nil, is still sent to the client before the server acts on the
	// error.
	Reply(req []byte) ([]byte, error)
}

// Peer identifies the gateway at the other end of a server connection.
type Peer struct {
	// GatewayID is the Subject CommonName of the verified client certificate.
	GatewayID string
	// RemoteAddr is the gateway's UDP address.
	RemoteAddr net.Addr
	// Cert is the verified client certificate. Handlers must not modify it.
	Cert *x509.Certificate
}

// Handler serves one request of a gateway. ServeLink is called on its own
// goroutine for every request stream, concurrently for concurrent streams.
// ctx is cancelled when the gateway abandons the stream, the connection goes
// away, the server shuts down, or the server's HandlerTimeout passes.
//
// A non-nil, non-empty response is written back as one frame. A nil or empty
// response, or a non-nil error, resets the stream (the gateway sees ErrStream)
// and the error is logged; it must not carry card data. A panic is recovered,
// logged and treated the same way.
type Handler interface {
	ServeLink(ctx context.Context, p Peer, req []byte) ([]byte, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, p Peer, req []byte) ([]byte, error)

// ServeLink calls f(ctx, p, req).
func (f HandlerFunc) ServeLink(ctx context.Context, p Peer, req []byte) ([]byte, error) {
	return f(ctx, p, req)
}

var (
	// ErrLinkDown is returned by RoundTrip when the link is not up (the
	// request was not sent, and the gateway may stand in) or when it went
	// down during the request (then the error also matches
	// ErrOutcomeUnknown).
	ErrLinkDown = errors.New("link: link down")
	// ErrStream is returned by RoundTrip when the center reset the request
	// stream or answered with a malformed frame. It always comes with
	// ErrOutcomeUnknown.
	ErrStream = errors.New("link: stream failed")
	// ErrOutcomeUnknown marks RoundTrip errors that happened after the
	// request may have reached the center: a timeout, a stream reset, or
	// the link going down mid-request. The caller must treat the request as
	// possibly processed (a financial request gets reversed).
	ErrOutcomeUnknown = errors.New("link: outcome unknown")
	// ErrSignOnRefused is reported (in an Event) when the center refused
	// the sign-on or its reply was not accepted by Control.CheckReply.
	ErrSignOnRefused = errors.New("link: sign-on refused")
	// ErrEchoFailed is reported (in an Event) when an echo was not answered
	// in time or its reply was not accepted.
	ErrEchoFailed = errors.New("link: echo failed")
	// ErrClosed is returned by Run, WaitUp and RoundTrip after Close.
	ErrClosed = errors.New("link: client closed")
	// ErrRunning is returned by Run when Run is already running or has run.
	ErrRunning = errors.New("link: Run called twice")
	// ErrServerClosed is returned by Serve after its context is cancelled or
	// Close is called, and by Listen and Serve after Close.
	ErrServerClosed = errors.New("link: server closed")
	// ErrConfig is matched by every configuration error from Validate.
	ErrConfig = errors.New("link: invalid config")
)

// Connection close codes (QUIC application error codes) the link uses. The
// peer sees them in a *quic.ApplicationError.
const (
	// CodeClosing is a normal close: the client stops or drops a
	// connection after a failed echo.
	CodeClosing quic.ApplicationErrorCode = 0x0
	// CodeSignOnRefused closes a connection whose sign-on failed.
	CodeSignOnRefused quic.ApplicationErrorCode = 0x101
	// CodeControlError closes a connection whose control stream broke or
	// carried a malformed message.
	CodeControlError quic.ApplicationErrorCode = 0x102
	// CodeShutdown closes connections when the server shuts down.
	CodeShutdown quic.ApplicationErrorCode = 0x103
	// CodeBadPeer closes a connection whose client certificate has no
	// usable CommonName or which did not negotiate ALPN.
	CodeBadPeer quic.ApplicationErrorCode = 0x104
)

// Stream reset codes (QUIC stream error codes) the link uses.
const (
	// StreamBadFrame resets a stream whose request frame was malformed,
	// empty, too long, truncated or followed by trailing bytes.
	StreamBadFrame quic.StreamErrorCode = 0x201
	// StreamHandlerError resets a stream whose handler failed or panicked.
	StreamHandlerError quic.StreamErrorCode = 0x202
	// StreamTimeout resets a stream that was not completed in time.
	StreamTimeout quic.StreamErrorCode = 0x203
	// StreamCanceled resets a stream the client abandoned (its context
	// ended).
	StreamCanceled quic.StreamErrorCode = 0x204
)

// State is the client's link state.
type State int32

const (
	// Down: no usable connection; the client waits before trying again (or
	// is not running). RoundTrip returns ErrLinkDown.
	Down State = iota
	// Connecting: the client is dialling and signing on. RoundTrip returns
	// ErrLinkDown.
	Connecting
	// Up: signed on; RoundTrip sends requests.
	Up
)

// String returns "down", "connecting" or "up".
func (s State) String() string {
	switch s {
	case Down:
		return "down"
	case Connecting:
		return "connecting"
	case Up:
		return "up"
	default:
		return "invalid"
	}
}

// Event reports a change of the client's state.
type Event struct {
	// State is the new state.
	State State
	// Addr is the center address being tried (Connecting) or in use (Up);
	// empty for Down.
	Addr string
	// Err says why the link is down: the last dial, sign-on or echo failure,
	// or ErrClosed / the context error when the client stops. Nil otherwise.
	Err error
}
