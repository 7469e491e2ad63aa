package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/quic-go/quic-go"
)

// Client defaults, used where a ClientConfig field is zero.
const (
	DefaultEchoInterval   = 10 * time.Second
	DefaultEchoTimeout    = 3 * time.Second
	DefaultRequestTimeout = 15 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultIdleTimeout    = 30 * time.Second
)

// DialFunc opens a QUIC connection to addr. quic.DialAddr is one.
type DialFunc func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error)

// ClientConfig configures a Client. Zero durations and sizes mean the
// default named in the field's comment.
type ClientConfig struct {
	// Addrs are the center's link addresses ("host:port"), tried in order:
	// the primary first, then disaster-recovery sites. Required.
	Addrs []string
	// TLS holds the gateway's client certificate (Certificates or
	// GetClientCertificate; the private key may be any crypto.Signer, such
	// as a PKCS#11 token key) and the link CA in RootCAs. Required. The
	// client uses a copy with MinVersion TLS 1.3 and NextProtos [ALPN].
	TLS *tls.Config
	// GatewayID is this gateway's ID, sent in the sign-on and echo messages.
	// It should equal the CommonName of the client certificate, which is
	// what the center trusts. Required.
	GatewayID string
	// Control builds and checks sign-on and echo messages. Required.
	Control Control
	// EchoInterval is the time between echoes on an idle or busy link.
	// Default 10s.
	EchoInterval time.Duration
	// EchoTimeout bounds the wait for an echo reply; a late or refused reply
	// takes the link down. Must be less than EchoInterval. Default 3s.
	EchoTimeout time.Duration
	// RequestTimeout bounds a RoundTrip whose context has no earlier
	// deadline. Default 15s.
	RequestTimeout time.Duration
	// ConnectTimeout bounds one connection attempt: the QUIC handshake plus
	// the sign-on exchange. Default 5s.
	ConnectTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between reconnection cycles,
	// which doubles after each failed cycle (with jitter: a wait is drawn
	// from [d/2, d)). Defaults 100ms and 10s.
	BackoffMin, BackoffMax time.Duration
	// IdleTimeout is the QUIC idle timeout. Default 30s; it must exceed
	// EchoInterval, since echoes are what keep an idle link alive.
	IdleTimeout time.Duration
	// MaxMessage bounds the body of a response frame. Default frame.MaxLen.
	MaxMessage int
	// Logger receives state changes and failures; it never receives message
	// bytes. Default slog.Default().
	Logger *slog.Logger
	// OnState, if set, is called with every state change, in order, from
	// the goroutine running Run. It must not block and must not call
	// Close; State and RoundTrip are fine.
	OnState func(Event)
	// Dial opens connections. Default quic.DialAddr.
	Dial DialFunc
}

// Validate reports every invalid field of cfg, each error naming the field,
// its value and the rule; all match ErrConfig. It applies no defaults.
func (cfg *ClientConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("link client config: "+format+": %w", append(args, ErrConfig)...))
	}
	if len(cfg.Addrs) == 0 {
		bad("Addrs is empty, need at least one host:port")
	}
	for i, a := range cfg.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			bad("Addrs[%d] = %q is not host:port", i, a)
		}
	}
	if cfg.TLS == nil {
		bad("TLS is nil")
	} else {
		t := cfg.TLS
		if len(t.Certificates) == 0 && t.GetClientCertificate == nil {
			bad("TLS has no client certificate (Certificates or GetClientCertificate)")
		}
		if t.RootCAs == nil {
			bad("TLS.RootCAs is nil, need the link CA")
		}
		if t.InsecureSkipVerify {
			bad("TLS.InsecureSkipVerify = true, the center must be verified")
		}
		if t.MaxVersion != 0 && t.MaxVersion < tls.VersionTLS13 {
			bad("TLS.MaxVersion = %#x, the link needs TLS 1.3", t.MaxVersion)
		}
	}
	if cfg.GatewayID == "" {
		bad("GatewayID is empty")
	}
	if cfg.Control == nil {
		bad("Control is nil")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"EchoInterval", cfg.EchoInterval}, {"EchoTimeout", cfg.EchoTimeout},
		{"RequestTimeout", cfg.RequestTimeout}, {"ConnectTimeout", cfg.ConnectTimeout},
		{"BackoffMin", cfg.BackoffMin}, {"BackoffMax", cfg.BackoffMax}, {"IdleTimeout", cfg.IdleTimeout},
	} {
		if d.v < 0 {
			bad("%s = %v is negative", d.name, d.v)
		}
	}
	d := cfg.withDefaults()
	if d.EchoTimeout >= d.EchoInterval {
		bad("EchoTimeout = %v must be less than EchoInterval = %v", d.EchoTimeout, d.EchoInterval)
	}
	if d.BackoffMin > d.BackoffMax {
		bad("BackoffMin = %v exceeds BackoffMax = %v", d.BackoffMin, d.BackoffMax)
	}
	if d.IdleTimeout <= d.EchoInterval {
		bad("IdleTimeout = %v must exceed EchoInterval = %v", d.IdleTimeout, d.EchoInterval)
	}
	if cfg.MaxMessage < 0 || cfg.MaxMessage > frame.MaxLen {
		bad("MaxMessage = %d is outside 0..%d", cfg.MaxMessage, frame.MaxLen)
	}
	return errors.Join(errs...)
}

func (cfg ClientConfig) withDefaults() ClientConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.EchoInterval, DefaultEchoInterval)
	def(&cfg.EchoTimeout, DefaultEchoTimeout)
	def(&cfg.RequestTimeout, DefaultRequestTimeout)
	def(&cfg.ConnectTimeout, DefaultConnectTimeout)
	def(&cfg.BackoffMin, DefaultBackoffMin)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	def(&cfg.IdleTimeout, DefaultIdleTimeout)
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = frame.MaxLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		cfg.Dial = quic.DialAddr
	}
	return cfg
}

// Client is the gateway end of the link. Run owns the connection: it dials,
// signs on, echoes and reconnects. RoundTrip sends requests while the link is
// up. All methods are safe for concurrent use.
type Client struct {
	cfg   ClientConfig
	tls   *tls.Config
	quic  *quic.Config
	log   *slog.Logger
	stan  atomic.Uint32
	start atomic.Bool

	mu      sync.Mutex
	state   State
	addr    string
	conn    *quic.Conn // non-nil only while Up
	changed chan struct{}
	closed  bool
	cancel  context.CancelFunc // cancels Run; nil until Run starts
	done    chan struct{}      // closed when Run returns
}

// NewClient validates cfg and returns a Client that is Down until Run
// brings it up.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Addrs = append([]string(nil), cfg.Addrs...)
	tlsConf := cfg.TLS.Clone()
	tlsConf.MinVersion = tls.VersionTLS13
	tlsConf.NextProtos = []string{ALPN}
	return &Client{
		cfg: cfg,
		tls: tlsConf,
		quic: &quic.Config{
			HandshakeIdleTimeout: cfg.ConnectTimeout,
			MaxIdleTimeout:       cfg.IdleTimeout,
			// The center opens no streams yet (pushes are future work,
			// see docs/uplink.md): refuse them at the transport.
			MaxIncomingStreams:    -1,
			MaxIncomingUniStreams: -1,
		},
		log:     cfg.Logger.With("gateway", cfg.GatewayID),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// State returns the current link state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Addr returns the center address in use while the link is up, and the
// address being tried while connecting; "" when down.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Watcher reports a link's state and its changes. *Client satisfies it;
// consumers that only wait for the link take a Watcher.
type Watcher interface {
	Watch() (State, <-chan struct{})
}

// WaitUp blocks until w reports Up or ctx ends. It returns nil when the link
// is up and ctx.Err() otherwise.
func WaitUp(ctx context.Context, w Watcher) error {
	for {
		s, ch := w.Watch()
		if s == Up {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Watch returns the current state and a channel that is closed at the next
// state change. It lets callers wait for a state without missing changes.
func (c *Client) Watch() (State, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.changed
}

// WaitUp blocks until the link is up, ctx ends (returning ctx.Err()), or the
// client is closed (ErrClosed).
func (c *Client) WaitUp(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, ch, closed := c.state, c.changed, c.closed
		c.mu.Unlock()
		if st == Up {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Client) setState(ev Event, conn *quic.Conn) {
	c.mu.Lock()
	if c.state == ev.State && c.addr == ev.Addr {
		c.mu.Unlock()
		return
	}
	c.state, c.addr, c.conn = ev.State, ev.Addr, conn
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	switch ev.State {
	case Up:
		c.log.Info("link up", "addr", ev.Addr)
	case Down:
		if ev.Err != nil {
			c.log.Warn("link down", "err", ev.Err)
		}
	}
	if c.cfg.OnState != nil {
		c.cfg.OnState(ev)
	}
}

// Run connects to the center and keeps the link up until ctx ends or Close
// is called; it then closes the connection and returns ctx.Err() or
// ErrClosed. It tries Addrs in order; after a dropped link or a failed cycle
// through all addresses it waits a jittered, exponentially growing backoff
// and starts again from the first address. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.start.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(c.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.cancel = cancel
	c.mu.Unlock()

	stopErr := func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return ErrClosed
		}
		return ctx.Err()
	}
	backoff := c.cfg.BackoffMin
	for {
		var lastErr error
		wasUp := false
		for _, addr := range c.cfg.Addrs {
			c.setState(Event{State: Connecting, Addr: addr}, nil)
			wasUp, lastErr = c.session(ctx, addr)
			if ctx.Err() != nil {
				err := stopErr()
				c.setState(Event{State: Down, Err: err}, nil)
				return err
			}
			if wasUp {
				break
			}
			c.log.Warn("link connect failed", "addr", addr, "err", lastErr)
		}
		if wasUp {
			backoff = c.cfg.BackoffMin
		}
		c.setState(Event{State: Down, Err: lastErr}, nil)
		wait := backoff/2 + rand.N(backoff/2+1)
		if !wasUp {
			backoff = min(2*backoff, c.cfg.BackoffMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			err := stopErr()
			c.setState(Event{State: Down, Err: err}, nil)
			return err
		case <-t.C:
		}
	}
}

// session dials addr, signs on and echoes until the connection fails or ctx
// ends. wasUp reports whether the sign-on succeeded.
func (c *Client) session(ctx context.Context, addr string) (wasUp bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.cfg.Dial(cctx, addr, c.tls.Clone(), c.quic)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", addr, err)
	}
	closeCode, closeMsg := CodeClosing, "gateway closing"
	defer func() { _ = conn.CloseWithError(closeCode, closeMsg) }()
	// Cancelling ctx closes the connection, which unblocks every read.
	stop := context.AfterFunc(ctx, func() { _ = conn.CloseWithError(CodeClosing, "gateway stopping") })
	defer stop()

	ctl, err := conn.OpenStreamSync(cctx)
	if err != nil {
		return false, fmt.Errorf("open control stream to %s: %w", addr, err)
	}
	deadline, _ := cctx.Deadline()
	req, err := c.cfg.Control.SignOn(c.cfg.GatewayID, c.nextSTAN())
	if err != nil {
		return false, fmt.Errorf("build sign-on: %w", err)
	}
	resp, err := c.exchange(ctl, req, deadline)
	if err != nil {
		if refused(err) {
			err = fmt.Errorf("%w: %w", ErrSignOnRefused, err)
		}
		return false, fmt.Errorf("sign on to %s: %w", addr, err)
	}
	if err := c.cfg.Control.CheckReply(req, resp); err != nil {
		closeCode, closeMsg = CodeSignOnRefused, "sign-on reply not accepted"
		return false, fmt.Errorf("sign on to %s: %w: %w", addr, ErrSignOnRefused, err)
	}

	c.setState(Event{State: Up, Addr: addr}, conn)
	// Runs before the connection is closed, so that RoundTrip sees Down
	// rather than a dead connection.
	defer func() { c.setState(Event{State: Down, Err: err}, nil) }()
	t := time.NewTimer(c.cfg.EchoInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-conn.Context().Done():
			return true, fmt.Errorf("connection to %s lost: %w: %w", addr, ErrLinkDown, context.Cause(conn.Context()))
		case <-t.C:
		}
		req, err := c.cfg.Control.Echo(c.cfg.GatewayID, c.nextSTAN())
		if err != nil {
			closeCode, closeMsg = CodeControlError, "cannot build echo"
			return true, fmt.Errorf("build echo: %w", err)
		}
		resp, err := c.exchange(ctl, req, time.Now().Add(c.cfg.EchoTimeout))
		if err == nil {
			err = c.cfg.Control.CheckReply(req, resp)
		}
		if err != nil {
			closeCode, closeMsg = CodeControlError, "echo failed"
			return true, fmt.Errorf("echo to %s: %w: %w", addr, ErrEchoFailed, err)
		}
		t.Reset(c.cfg.EchoInterval)
	}
}

// refused reports whether err is the center closing the connection because
// it refused the sign-on.
func refused(err error) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && ae.Remote && ae.ErrorCode == CodeSignOnRefused
}

// exchange writes one control frame and reads the reply before deadline.
func (c *Client) exchange(s *quic.Stream, req []byte, deadline time.Time) ([]byte, error) {
	_ = s.SetDeadline(deadline)
	if err := frame.Write(s, req); err != nil {
		return nil, fmt.Errorf("write control frame: %w", err)
	}
	resp, err := frame.Read(s, c.cfg.MaxMessage)
	if err != nil {
		return nil, fmt.Errorf("read control frame: %w", err)
	}
	return resp, nil
}

func (c *Client) nextSTAN() uint32 {
	for {
		old := c.stan.Load()
		next := iso93.NextSTAN(old)
		if c.stan.CompareAndSwap(old, next) {
			return next
		}
	}
}

// RoundTrip sends req to the center on a new stream and returns the
// response. When the link is not up it returns ErrLinkDown at once, without
// sending. It waits at most until ctx's deadline or RequestTimeout, whichever
// is sooner. Errors after the request may have been sent match
// ErrOutcomeUnknown as well as ErrLinkDown, ErrStream or the context error.
// Neither errors nor logs carry message bytes.
func (c *Client) RoundTrip(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) == 0 {
		return nil, fmt.Errorf("link round trip: %w", frame.ErrEmpty)
	}
	if len(req) > frame.MaxLen {
		return nil, fmt.Errorf("link round trip: request of %d bytes: %w", len(req), frame.ErrTooLong)
	}
	c.mu.Lock()
	conn, closed := c.conn, c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("link round trip: %w: %w", ErrLinkDown, ErrClosed)
	}
	if conn == nil {
		return nil, ErrLinkDown
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			// Waiting for stream credit; nothing was sent.
			return nil, fmt.Errorf("link round trip: open stream: %w", ctx.Err())
		}
		return nil, fmt.Errorf("link round trip: open stream: %w: %w", ErrLinkDown, err)
	}
	stop := context.AfterFunc(ctx, func() {
		s.CancelWrite(StreamCanceled)
		s.CancelRead(StreamCanceled)
	})
	defer stop()
	resp, err := c.roundTrip(s, req)
	if err == nil {
		return resp, nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("link round trip: %w: %w", ErrOutcomeUnknown, ctx.Err())
	case conn.Context().Err() != nil:
		return nil, fmt.Errorf("link round trip: %w: %w: %w", ErrLinkDown, ErrOutcomeUnknown, err)
	default:
		return nil, fmt.Errorf("link round trip: %w: %w: %w", ErrStream, ErrOutcomeUnknown, err)
	}
}

func (c *Client) roundTrip(s *quic.Stream, req []byte) ([]byte, error) {
	if err := frame.Write(s, req); err != nil {
		s.CancelRead(StreamCanceled)
		return nil, fmt.Errorf("write request: %w", err)
	}
	if err := s.Close(); err != nil {
		s.CancelRead(StreamCanceled)
		return nil, fmt.Errorf("close request side: %w", err)
	}
	resp, err := frame.Read(s, c.cfg.MaxMessage)
	if err != nil {
		s.CancelRead(StreamCanceled)
		return nil, fmt.Errorf("read response: %w", err)
	}
	// The center closes its side after one frame; anything else is a
	// protocol error.
	if _, err := frame.Read(s, 1); err != io.EOF {
		s.CancelRead(StreamCanceled)
		return nil, fmt.Errorf("after response: want end of stream, got %w", errOr(err, "a trailing frame"))
	}
	return resp, nil
}

func errOr(err error, what string) error {
	if err != nil {
		return err
	}
	return errors.New(what)
}

// Close stops Run, if it is running, and waits for it to return; the
// connection is closed and the state is Down. After Close, RoundTrip, WaitUp
// and Run return ErrClosed. Close is idempotent and always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cancel := c.cancel
	close(c.changed) // wake WaitUp callers so they see closed
	c.changed = make(chan struct{})
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-c.done
	}
	return nil
}
