package routing

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/posgate/posgate/protocol/brandspec"
	"github.com/posgate/posgate/protocol/frame"
)

// DefaultHostTimeout is how long the center waits for a brand host's answer
// when HostConfig.Timeout is zero.
const DefaultHostTimeout = 5 * time.Second

// Sentinel errors of the brand-host client.
var (
	// ErrHostTimeout means the request was (or may have been) delivered and
	// no answer came in time: the sender owes the host a reversal.
	ErrHostTimeout = errors.New("routing: brand host did not answer in time")
	// ErrHostUnavailable means the request was not delivered (no
	// connection could be made): nothing is owed to the host.
	ErrHostUnavailable = errors.New("routing: brand host unavailable")
	// ErrUnknownHost means a route names a host that is not configured.
	ErrUnknownHost = errors.New("routing: brand host not configured")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("routing: client closed")
)

// HostConfig describes one brand host.
type HostConfig struct {
	// Name is the destination BIN routes use.
	Name string
	// Addr is the host's TCP address, host:port.
	Addr string
	// Timeout bounds the wait for an answer; zero means DefaultHostTimeout.
	Timeout time.Duration
	// TLS, when set, wraps the connection in TLS with this configuration
	// (production needs it: the link carries clear PANs).
	TLS *tls.Config
	// ConnectTimeout bounds connecting; zero means Timeout.
	ConnectTimeout time.Duration
}

func (h HostConfig) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultHostTimeout
}

// Client is a connection to one brand host that reconnects on demand. Many
// requests may be in flight at once; responses are paired with requests by
// MatchKey. A Client is safe for concurrent use; Close stops it.
type Client struct {
	cfg HostConfig
	log *slog.Logger

	mu     sync.Mutex
	conn   *connection.Connection // nil or possibly closed
	closed bool
}

// NewClient returns a client for the host; it connects on the first Send.
func NewClient(cfg HostConfig, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log.With("host", cfg.Name)}
}

// Name returns the host's name.
func (c *Client) Name() string { return c.cfg.Name }

// Timeout returns the host's answer timeout.
func (c *Client) Timeout() time.Duration { return c.cfg.timeout() }

func alive(conn *connection.Connection) bool {
	if conn == nil {
		return false
	}
	select {
	case <-conn.Done():
		return false
	default:
		return true
	}
}

// connect returns a live connection, dialling one if needed. The lock is
// not held while dialling.
func (c *Client) connect(ctx context.Context) (*connection.Connection, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if alive(c.conn) {
		conn := c.conn
		c.mu.Unlock()
		return conn, nil
	}
	c.mu.Unlock()

	ct := c.cfg.ConnectTimeout
	if ct <= 0 {
		ct = c.cfg.timeout()
	}
	opts := []connection.Option{
		connection.ConnectTimeout(ct),
		connection.SendTimeout(c.cfg.timeout()),
		connection.SetRequestIDGenerator(matchKeyGenerator{}),
		connection.ErrorHandler(func(err error) { c.log.Warn("brand-host link error", "reason", err) }),
		connection.InboundMessageHandler(func(_ *connection.Connection, m *iso8583.Message) {
			mti, _ := m.GetMTI()
			stan, _ := m.GetString(11)
			c.log.Info("unmatched message from brand host (late answer?)", "mti", mti, "stan", stan)
		}),
	}
	if c.cfg.TLS != nil {
		opts = append(opts, connection.SetTLSConfig(func(t *tls.Config) {
			src := c.cfg.TLS
			t.RootCAs, t.Certificates, t.ServerName, t.MinVersion = src.RootCAs, src.Certificates, src.ServerName, src.MinVersion
		}))
	}
	conn, err := connection.New(c.cfg.Addr, brandspec.Spec, frame.ReadLength, frame.WriteLength, opts...)
	if err != nil {
		return nil, fmt.Errorf("host %s: configure connection: %w", c.cfg.Name, err)
	}
	if err := conn.ConnectCtx(ctx); err != nil {
		return nil, fmt.Errorf("host %s: %w: %w", c.cfg.Name, ErrHostUnavailable, err)
	}
	c.mu.Lock()
	if !c.closed && !alive(c.conn) {
		c.conn = conn
		c.mu.Unlock()
		return conn, nil
	}
	// Closed meanwhile, or another caller connected first: keep one.
	other, closed := c.conn, c.closed
	c.mu.Unlock()
	conn.Close() // nothing is in flight on this fresh connection
	if closed {
		return nil, ErrClosed
	}
	return other, nil
}

// Send sends msg (a brandspec.Spec request) and returns the host's response. It
// returns an error wrapping ErrHostUnavailable when msg was not delivered
// and ErrHostTimeout when it may have been but no answer came within the
// host's timeout (or before ctx ended).
func (c *Client) Send(ctx context.Context, msg *iso8583.Message) (*iso8583.Message, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	timeout := c.cfg.timeout()
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	resp, err := conn.Send(msg, connection.SendTimeout(timeout))
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, connection.ErrSendTimeout):
		return nil, fmt.Errorf("host %s: %w", c.cfg.Name, ErrHostTimeout)
	case errors.Is(err, connection.ErrConnectionClosed):
		// Whether the host got it is unknown: treat it as delivered.
		return nil, fmt.Errorf("host %s: connection lost: %w", c.cfg.Name, ErrHostTimeout)
	}
	return nil, fmt.Errorf("host %s: send: %w", c.cfg.Name, err)
}

// Close closes the connection, waiting for requests in flight to end (at
// most the host timeout each). Send fails with ErrClosed afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		return conn.Close()
	}
	return nil
}
