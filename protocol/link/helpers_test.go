package link_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/pki"
)

const day = 24 * time.Hour

// waitLimit bounds every wait on a condition in these tests.
const waitLimit = 20 * time.Second

// testControl is a tiny control codec: requests are "SO|id|stan" and
// "EC|id|stan", an accepted reply is "OK|" + request.
type testControl struct {
	refuseSignOn atomic.Bool   // answer sign-ons with "NO|..." and an error
	muteEcho     atomic.Bool   // hold echo replies until gate is closed
	gate         chan struct{} // closed by open
	gateOnce     sync.Once
	signOns      atomic.Int32
	echoes       atomic.Int32
}

func newTestControl(t testing.TB) *testControl {
	c := &testControl{gate: make(chan struct{})}
	t.Cleanup(c.open)
	return c
}

// open releases held echo replies. A test that mutes echoes registers it
// as a cleanup after starting its server, so that it runs before the
// server's shutdown waits for the held reply.
func (c *testControl) open() { c.gateOnce.Do(func() { close(c.gate) }) }

func (c *testControl) SignOn(id string, stan uint32) ([]byte, error) {
	return fmt.Appendf(nil, "SO|%s|%06d", id, stan), nil
}

func (c *testControl) Echo(id string, stan uint32) ([]byte, error) {
	return fmt.Appendf(nil, "EC|%s|%06d", id, stan), nil
}

func (c *testControl) CheckReply(req, resp []byte) error {
	if !bytes.Equal(resp, append([]byte("OK|"), req...)) {
		return errors.New("test control: reply not accepted")
	}
	return nil
}

func (c *testControl) Reply(req []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(req, []byte("SO|")):
		c.signOns.Add(1)
		if c.refuseSignOn.Load() {
			return append([]byte("NO|"), req...), errors.New("test control: sign-on refused")
		}
	case bytes.HasPrefix(req, []byte("EC|")):
		c.echoes.Add(1)
		if c.muteEcho.Load() {
			<-c.gate
		}
	default:
		return []byte("NO|"), errors.New("test control: unknown request")
	}
	return append([]byte("OK|"), req...), nil
}

// logRecorder is a slog handler that keeps every record's text, so tests
// can check what was logged (and that no message bytes were).
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logView{root: r, attrs: as}
}
func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func slogOf(r *logRecorder) *slog.Logger { return slog.New(r) }

// logView is a logRecorder with attributes added by Logger.With.
type logView struct {
	root  *logRecorder
	attrs []slog.Attr
}

func (v *logView) Enabled(context.Context, slog.Level) bool { return true }
func (v *logView) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(v.attrs...)
	return v.root.Handle(ctx, rec)
}
func (v *logView) WithAttrs(as []slog.Attr) slog.Handler {
	return &logView{root: v.root, attrs: append(append([]slog.Attr(nil), v.attrs...), as...)}
}
func (v *logView) WithGroup(string) slog.Handler { return v }

// pkiEnv is a link CA with a server certificate for 127.0.0.1.
type pkiEnv struct {
	ca        *pki.CA
	serverTLS *tls.Config
}

func newPKI(t testing.TB) *pkiEnv {
	t.Helper()
	ca, err := pki.NewCA("test link CA", 30*day)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, 7*day)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pki.ServerTLS(ca.CertPEM(), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &pkiEnv{ca: ca, serverTLS: st}
}

// clientTLS issues a gateway certificate from issuer (e.ca when nil) and
// returns a client configuration trusting e's CA. The key is wrapped so that
// only its crypto.Signer face shows, as with a token key.
func (e *pkiEnv) clientTLS(t testing.TB, issuer *pki.CA, gatewayID string) *tls.Config {
	t.Helper()
	if issuer == nil {
		issuer = e.ca
	}
	certPEM, keyPEM, err := issuer.IssueGateway(gatewayID, 7*day)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.SignerCertificate(certPEM, opaqueSigner{k.(crypto.Signer)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.ClientTLS(e.ca.CertPEM(), cert)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type opaqueSigner struct{ k crypto.Signer }

func (s opaqueSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s opaqueSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, d, o)
}

// echoHandler answers "R:" + request.
var echoHandler = link.HandlerFunc(func(_ context.Context, _ link.Peer, req []byte) ([]byte, error) {
	return append([]byte("R:"), req...), nil
})

// runningServer is a Server whose Serve runs until the test ends or stop.
type runningServer struct {
	*link.Server
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func (s *runningServer) stop(t testing.TB) {
	t.Helper()
	s.cancel()
	if err := <-s.done; !errors.Is(err, link.ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	s.done <- link.ErrServerClosed // let a second stop return at once
}

func startServer(t testing.TB, cfg link.ServerConfig) *runningServer {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := link.NewServer(cfg)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningServer{Server: s, addr: s.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-rs.done
	})
	return rs
}

// eventLog records a client's state events.
type eventLog struct {
	mu      sync.Mutex
	list    []link.Event
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

func (l *eventLog) add(ev link.Event) {
	l.mu.Lock()
	l.list = append(l.list, ev)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *eventLog) snapshot() ([]link.Event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]link.Event(nil), l.list...), l.changed
}

// waitFor waits until pred holds for the events so far, failing the test
// after waitLimit.
func (l *eventLog) waitFor(t testing.TB, what string, pred func([]link.Event) bool) []link.Event {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		evs, ch := l.snapshot()
		if pred(evs) {
			return evs
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s; events: %v", what, evs)
		}
	}
}

func count(evs []link.Event, st link.State) int {
	n := 0
	for _, e := range evs {
		if e.State == st {
			n++
		}
	}
	return n
}

// downWith counts Down events whose error matches target.
func downWith(evs []link.Event, target error) int {
	n := 0
	for _, e := range evs {
		if e.State == link.Down && e.Err != nil && (target == errAny || errors.Is(e.Err, target)) {
			n++
		}
	}
	return n
}

type runningClient struct {
	*link.Client
	events *eventLog
	done   chan error
}

// testClientConfig returns a client configuration with short test intervals.
func testClientConfig(tlsConf *tls.Config, ctl link.Control, addrs ...string) link.ClientConfig {
	return link.ClientConfig{
		Addrs:     addrs,
		TLS:       tlsConf,
		GatewayID: "gw-test-1",
		Control:   ctl,
		// Lenient: the test machine's 2 cores are shared, and a starved
		// echo must not flap links in tests that are not about echoes.
		EchoInterval:   5 * time.Second,
		EchoTimeout:    4 * time.Second,
		ConnectTimeout: 5 * time.Second,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     200 * time.Millisecond,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

func startClient(t testing.TB, cfg link.ClientConfig) *runningClient {
	t.Helper()
	evs := newEventLog()
	user := cfg.OnState
	cfg.OnState = func(ev link.Event) {
		evs.add(ev)
		if user != nil {
			user(ev)
		}
	}
	c, err := link.NewClient(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	rc := &runningClient{Client: c, events: evs, done: make(chan error, 1)}
	go func() { rc.done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		c.Close()
		if err := <-rc.done; !errors.Is(err, link.ErrClosed) {
			t.Errorf("Run returned %v, want ErrClosed", err)
		}
	})
	return rc
}

func waitUp(t testing.TB, c *link.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.WaitUp(ctx); err != nil {
		t.Fatalf("wait for link up: %v", err)
	}
}

// deadAddr returns a loopback UDP address with nothing listening on it.
func deadAddr(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}
