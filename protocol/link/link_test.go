package link_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/pki"
)

func TestALPNMatchesPKI(t *testing.T) {
	if link.ALPN != pki.ALPN {
		t.Fatalf("link.ALPN %q != pki.ALPN %q", link.ALPN, pki.ALPN)
	}
}

func TestRoundTrip(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	var gotPeer atomic.Value
	srv := startServer(t, link.ServerConfig{
		TLS: env.serverTLS, Control: ctl,
		Handler: link.HandlerFunc(func(ctx context.Context, p link.Peer, req []byte) ([]byte, error) {
			gotPeer.Store(p)
			if len(req) == frame.MaxLen {
				return req, nil // the largest response a frame carries
			}
			return append([]byte("R:"), req...), nil
		}),
	})
	c := startClient(t, testClientConfig(env.clientTLS(t, nil, "gw-0042"), ctl, srv.addr))
	waitUp(t, c.Client)
	if c.Addr() != srv.addr {
		t.Errorf("Addr() = %q, want %q", c.Addr(), srv.addr)
	}

	tests := []struct {
		name string
		req  []byte
	}{
		{"one_byte", []byte{0x01}},
		{"typical_200", bytes.Repeat([]byte("1100"), 50)},
		{"largest_frame", bytes.Repeat([]byte{0xA5}, frame.MaxLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			resp, err := c.RoundTrip(ctx, tt.req)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			want := append([]byte("R:"), tt.req...)
			if len(tt.req) == frame.MaxLen {
				want = tt.req
			}
			if !bytes.Equal(resp, want) {
				t.Fatalf("response of %d bytes, want %d bytes", len(resp), len(want))
			}
			p := gotPeer.Load().(link.Peer)
			if p.GatewayID != "gw-0042" || p.Cert == nil || p.RemoteAddr == nil {
				t.Fatalf("peer %q cert %v addr %v", p.GatewayID, p.Cert != nil, p.RemoteAddr)
			}
		})
	}
	t.Run("empty_request_refused", func(t *testing.T) {
		if _, err := c.RoundTrip(context.Background(), nil); !errors.Is(err, frame.ErrEmpty) {
			t.Fatalf("empty request: %v", err)
		}
		if _, err := c.RoundTrip(context.Background(), make([]byte, frame.MaxLen+1)); !errors.Is(err, frame.ErrTooLong) {
			t.Fatalf("oversize request: %v", err)
		}
	})
	if n := ctl.signOns.Load(); n != 1 {
		t.Errorf("%d sign-ons, want 1", n)
	}
}

func TestRoundTripConcurrent(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	srv := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: ctl, Handler: echoHandler})
	c := startClient(t, testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv.addr))
	waitUp(t, c.Client)

	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req := fmt.Appendf(nil, "request-%03d-%s", i, bytes.Repeat([]byte{'x'}, 180))
			resp, err := c.RoundTrip(context.Background(), req)
			if err != nil {
				errs <- fmt.Errorf("request %d: %w", i, err)
				return
			}
			if !bytes.Equal(resp, append([]byte("R:"), req...)) {
				errs <- fmt.Errorf("request %d: answered with another request's response", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMaxStreamsBoundsConcurrency(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	var cur, peak atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, 16)
	srv := startServer(t, link.ServerConfig{
		TLS: env.serverTLS, Control: ctl, MaxStreams: 2,
		Handler: link.HandlerFunc(func(ctx context.Context, _ link.Peer, req []byte) ([]byte, error) {
			n := cur.Add(1)
			defer cur.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			arrived <- struct{}{}
			<-release
			return req, nil
		}),
	})
	c := startClient(t, testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv.addr))
	waitUp(t, c.Client)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if _, err := c.RoundTrip(context.Background(), []byte("x")); err != nil {
				t.Errorf("round trip: %v", err)
			}
		})
	}
	<-arrived
	<-arrived // two handlers are running; the other four wait for credit
	close(release)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent handlers %d, want 2 (MaxStreams)", p)
	}
}

func TestRoundTripWhenDown(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	cfg := testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, deadAddr(t))
	cfg.ConnectTimeout = 200 * time.Millisecond
	c := startClient(t, cfg)

	tests := []struct {
		name  string
		setup func()
		want  error
	}{
		{"never_up", func() {}, link.ErrLinkDown},
		{"closed", func() { c.Close() }, link.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			// A context already past its deadline proves RoundTrip does not
			// wait for anything before refusing.
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			_, err := c.RoundTrip(ctx, []byte("1100"))
			if !errors.Is(err, tt.want) || !errors.Is(err, link.ErrLinkDown) {
				t.Fatalf("got %v, want %v and ErrLinkDown", err, tt.want)
			}
			if errors.Is(err, link.ErrOutcomeUnknown) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("refusal while down claims the request may have been sent: %v", err)
			}
			if st := c.State(); st == link.Up {
				t.Fatalf("state %v", st)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.WaitUp(ctx); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("WaitUp after Close: %v", err)
	}
}

func TestRoundTripTimeout(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	handlerDone := make(chan error, 1)
	srv := startServer(t, link.ServerConfig{
		TLS: env.serverTLS, Control: ctl,
		Handler: link.HandlerFunc(func(ctx context.Context, _ link.Peer, req []byte) ([]byte, error) {
			<-ctx.Done() // never answers; ends when the gateway gives up
			handlerDone <- ctx.Err()
			return nil, ctx.Err()
		}),
	})
	cfg := testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv.addr)
	c := startClient(t, cfg)
	waitUp(t, c.Client)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.RoundTrip(ctx, []byte("1200"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, link.ErrOutcomeUnknown) {
		t.Fatalf("got %v, want DeadlineExceeded and ErrOutcomeUnknown", err)
	}
	select {
	case <-handlerDone:
	case <-time.After(waitLimit):
		t.Fatal("handler context not cancelled after the gateway abandoned the stream")
	}
	if c.State() != link.Up {
		t.Fatalf("one timed-out request took the link %v", c.State())
	}
}

func TestSignOnRefused(t *testing.T) {
	tests := []struct {
		name      string
		control   func(*testControl)
		authorize func(context.Context, link.Peer) error
	}{
		{"control_refuses", func(c *testControl) { c.refuseSignOn.Store(true) }, nil},
		{"authorize_refuses", func(*testControl) {}, func(context.Context, link.Peer) error {
			return errors.New("gateway disabled")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newPKI(t)
			ctl := newTestControl(t)
			tt.control(ctl)
			srv := startServer(t, link.ServerConfig{
				TLS: env.serverTLS, Control: ctl, Handler: echoHandler, Authorize: tt.authorize,
			})
			c := startClient(t, testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv.addr))
			evs := c.events.waitFor(t, "three refused sign-ons", func(evs []link.Event) bool {
				return downWith(evs, link.ErrSignOnRefused) >= 3
			})
			if n := count(evs, link.Up); n != 0 {
				t.Fatalf("link went up %d times after refused sign-ons", n)
			}
			if _, err := c.RoundTrip(context.Background(), []byte("x")); !errors.Is(err, link.ErrLinkDown) {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

func TestHandshakeRefused(t *testing.T) {
	env := newPKI(t)
	foreign, err := pki.NewCA("foreign CA", 30*day)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := env.ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	past, err := pki.LoadCA(env.ca.CertPEM(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	past.Now = func() time.Time { return time.Now().Add(-10 * day) } // issues certs that expired 3 days ago

	noCert := env.clientTLS(t, nil, "gw-1")
	noCert.Certificates = nil
	noCert.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &tls.Certificate{}, nil // sends no certificate
	}
	tests := []struct {
		name string
		tls  *tls.Config
	}{
		{"no_certificate", noCert},
		{"foreign_ca", env.clientTLS(t, foreign, "gw-1")},
		{"expired", env.clientTLS(t, past, "gw-1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl := newTestControl(t)
			var admitted atomic.Int32
			srv := startServer(t, link.ServerConfig{
				TLS: env.serverTLS, Control: ctl, Handler: echoHandler,
				Authorize: func(context.Context, link.Peer) error { admitted.Add(1); return nil },
			})
			c := startClient(t, testClientConfig(tt.tls, ctl, srv.addr))
			evs := c.events.waitFor(t, "two failed attempts", func(evs []link.Event) bool {
				n := 0
				for _, e := range evs {
					if e.State == link.Down && e.Err != nil {
						n++
					}
				}
				return n >= 2
			})
			if count(evs, link.Up) != 0 || admitted.Load() != 0 || ctl.signOns.Load() != 0 {
				t.Fatalf("refused client got through: ups %d, admitted %d, sign-ons %d",
					count(evs, link.Up), admitted.Load(), ctl.signOns.Load())
			}
		})
	}
}

func TestCenterFromForeignCARefused(t *testing.T) {
	env := newPKI(t)
	foreign, err := pki.NewCA("foreign CA", 30*day)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := foreign.IssueServer([]string{"127.0.0.1"}, 7*day)
	if err != nil {
		t.Fatal(err)
	}
	// The impostor trusts the gateway's CA, so only the gateway's check of
	// the center's certificate can stop the connection.
	impostorTLS, err := pki.ServerTLS(env.ca.CertPEM(), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctl := newTestControl(t)
	srv := startServer(t, link.ServerConfig{TLS: impostorTLS, Control: ctl, Handler: echoHandler})
	c := startClient(t, testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv.addr))
	evs := c.events.waitFor(t, "two failed attempts", func(evs []link.Event) bool {
		return downWith(evs, errAny) >= 2
	})
	var lastErr error
	for _, e := range evs {
		if e.State == link.Down && e.Err != nil {
			lastErr = e.Err
		}
	}
	var ve *tls.CertificateVerificationError
	if count(evs, link.Up) != 0 || ctl.signOns.Load() != 0 || !errors.As(lastErr, &ve) {
		t.Fatalf("gateway accepted an impostor center: ups %d, sign-ons %d, last error %v",
			count(evs, link.Up), ctl.signOns.Load(), lastErr)
	}
}

// errAny matches any non-nil error in downWith.
var errAny = errors.New("any")

// TestEchoTimeoutReconnects mutes the center's echo replies: the client
// declares the link down with ErrEchoFailed (a timeout) and signs on again.
// The echo timers run on a synctest bubble's clock over the in-memory
// network (memnet_test.go), so the test waits for no wall-clock time and
// cannot flap on a busy machine.
func TestEchoTimeoutReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mn := newMemNet()
		env := newPKI(t)
		ctl := newTestControl(t)
		srv := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: ctl, Handler: echoHandler, ListenPacket: mn.ListenPacket})
		t.Cleanup(ctl.open)
		cfg := testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv.addr)
		cfg.Dial = mn.Dial
		cfg.EchoInterval = 100 * time.Millisecond
		cfg.EchoTimeout = 80 * time.Millisecond
		c := startClient(t, cfg)
		waitUp(t, c.Client)
		poll.Until(t, waitLimit, "an answered echo", func() bool { return ctl.echoes.Load() >= 1 })
		ctl.muteEcho.Store(true) // the server stops answering echoes

		evs := c.events.waitFor(t, "down on echo timeout, then up again", func(evs []link.Event) bool {
			return downWith(evs, link.ErrEchoFailed) >= 1 && count(evs, link.Up) >= 2
		})
		for i, e := range evs {
			if e.State == link.Down && errors.Is(e.Err, link.ErrEchoFailed) {
				if !errors.Is(e.Err, context.DeadlineExceeded) && !isTimeout(e.Err) {
					t.Errorf("event %d: echo failure %v is not a timeout", i, e.Err)
				}
				break
			}
		}
		if n := ctl.signOns.Load(); n < 2 {
			t.Fatalf("%d sign-ons, want a new one after reconnecting", n)
		}
	})
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServerRestartSamePort(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	srv1 := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: ctl, Handler: echoHandler})
	c := startClient(t, testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv1.addr))
	waitUp(t, c.Client)

	srv1.stop(t)
	c.events.waitFor(t, "link down after the server stopped", func(evs []link.Event) bool {
		return evs[len(evs)-1].State != link.Up && count(evs, link.Up) == 1
	})
	if _, err := c.RoundTrip(context.Background(), []byte("x")); !errors.Is(err, link.ErrLinkDown) {
		t.Fatalf("round trip with server gone: %v", err)
	}

	srv2 := startServer(t, link.ServerConfig{Addr: srv1.addr, TLS: env.serverTLS, Control: ctl, Handler: echoHandler})
	c.events.waitFor(t, "link up again", func(evs []link.Event) bool { return count(evs, link.Up) >= 2 })
	waitUp(t, c.Client)
	resp, err := c.RoundTrip(context.Background(), []byte("after restart"))
	if err != nil || string(resp) != "R:after restart" {
		t.Fatalf("round trip after restart: %q, %v", resp, err)
	}
	_ = srv2
}

func TestFailover(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	primary := deadAddr(t)
	var onPrimary, onDR atomic.Int32
	counting := func(n *atomic.Int32) link.Handler {
		return link.HandlerFunc(func(ctx context.Context, p link.Peer, req []byte) ([]byte, error) {
			n.Add(1)
			return echoHandler(ctx, p, req)
		})
	}
	dr := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: ctl, Handler: counting(&onDR)})
	cfg := testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, primary, dr.addr)
	cfg.ConnectTimeout = time.Second // a dead primary costs this much per cycle
	c := startClient(t, cfg)
	waitUp(t, c.Client)
	if c.Addr() != dr.addr {
		t.Fatalf("up on %q, want the DR address %q", c.Addr(), dr.addr)
	}
	evs, _ := c.events.snapshot()
	if len(evs) < 2 || evs[0].State != link.Connecting || evs[0].Addr != primary {
		t.Fatalf("first attempt was not the primary: %v", evs)
	}
	if _, err := c.RoundTrip(context.Background(), []byte("via DR")); err != nil {
		t.Fatalf("round trip on DR: %v", err)
	}

	// The primary comes back; the client stays on the working DR site until
	// that link drops, and then tries the primary first again.
	back := startServer(t, link.ServerConfig{Addr: primary, TLS: env.serverTLS, Control: ctl, Handler: counting(&onPrimary)})
	for i := range 20 {
		if _, err := c.RoundTrip(context.Background(), []byte("still DR")); err != nil {
			t.Fatalf("round trip %d with both sites up: %v", i, err)
		}
	}
	if onPrimary.Load() != 0 || onDR.Load() != 21 || c.Addr() != dr.addr {
		t.Fatalf("left the working DR link: %d requests on primary, %d on DR, addr %q",
			onPrimary.Load(), onDR.Load(), c.Addr())
	}
	dr.stop(t)
	c.events.waitFor(t, "up on the primary", func(evs []link.Event) bool {
		last := evs[len(evs)-1]
		return count(evs, link.Up) >= 2 && last.State == link.Up && last.Addr == primary
	})
	if _, err := c.RoundTrip(context.Background(), []byte("via primary")); err != nil || onPrimary.Load() != 1 {
		t.Fatalf("round trip on primary: %v (%d requests there)", err, onPrimary.Load())
	}
	_ = back
}

func TestClientSTANsIncrease(t *testing.T) {
	// Drive many echoes through a control codec that records STANs; they
	// must stay in 1..iso93.MaxSTAN and increase.
	// The echoes run on a synctest bubble's clock (memnet_test.go).
	synctest.Test(t, func(t *testing.T) {
		mn := newMemNet()
		env := newPKI(t)
		rec := &stanControl{testControl: newTestControl(t)}
		srv := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: rec, Handler: echoHandler, ListenPacket: mn.ListenPacket})
		cfg := testClientConfig(env.clientTLS(t, nil, "gw-1"), rec, srv.addr)
		cfg.Dial = mn.Dial
		cfg.EchoInterval = 50 * time.Millisecond
		cfg.EchoTimeout = 40 * time.Millisecond
		cfg.BackoffMin = time.Millisecond
		c := startClient(t, cfg)
		waitUp(t, c.Client)
		poll.Until(t, waitLimit, "five STANs", func() bool { return len(rec.list()) >= 5 })
		got := rec.list()
		for i, s := range got {
			if s < 1 || s > iso93.MaxSTAN {
				t.Fatalf("STAN %d out of range", s)
			}
			if i > 0 && s <= got[i-1] {
				t.Fatalf("STANs not increasing: %v", got)
			}
		}
	})
}

type stanControl struct {
	*testControl
	mu    sync.Mutex
	stans []uint32
}

func (s *stanControl) note(stan uint32) {
	s.mu.Lock()
	s.stans = append(s.stans, stan)
	s.mu.Unlock()
}

func (s *stanControl) list() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.stans...)
}

func (s *stanControl) SignOn(id string, stan uint32) ([]byte, error) {
	s.note(stan)
	return s.testControl.SignOn(id, stan)
}

func (s *stanControl) Echo(id string, stan uint32) ([]byte, error) {
	s.note(stan)
	return s.testControl.Echo(id, stan)
}

// TestServerClose checks Close's contract: before Serve it releases the
// socket Listen opened; during Serve it ends Serve, closing the gateway's
// connection, and waits for it; afterwards Listen and Serve refuse.
func TestServerClose(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	newServer := func(addr string) *link.Server {
		t.Helper()
		s, err := link.NewServer(link.ServerConfig{Addr: addr, TLS: env.serverTLS, Control: ctl, Handler: echoHandler,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("before_serve_frees_the_port", func(t *testing.T) {
		s := newServer("127.0.0.1:0")
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		addr := s.Addr().String()
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("the port is still held after Close: %v", err)
		}
		pc.Close()
		if err := s.Listen(); !errors.Is(err, link.ErrServerClosed) {
			t.Fatalf("Listen after Close: %v, want ErrServerClosed", err)
		}
		if err := s.Serve(context.Background()); !errors.Is(err, link.ErrServerClosed) {
			t.Fatalf("Serve after Close: %v, want ErrServerClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})

	t.Run("during_serve_ends_it", func(t *testing.T) {
		s := newServer("127.0.0.1:0")
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		addr := s.Addr().String()
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background()) }()
		c := startClient(t, testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, addr))
		waitUp(t, c.Client)

		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		// Close waited for Serve: its result is already there.
		select {
		case err := <-served:
			if !errors.Is(err, link.ErrServerClosed) {
				t.Fatalf("Serve returned %v, want ErrServerClosed", err)
			}
		default:
			t.Fatal("Close returned before Serve did")
		}
		c.events.waitFor(t, "link down after Close", func(evs []link.Event) bool { return evs[len(evs)-1].State != link.Up })
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("the port is still held after Close: %v", err)
		}
		pc.Close()
		if err := s.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}
