package link_test

import (
	"context"
	"crypto/tls"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

func TestClientConfigValidate(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	good := func() link.ClientConfig {
		return testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, "127.0.0.1:7443", "dr.example:7443")
	}
	tests := []struct {
		name   string
		mutate func(*link.ClientConfig)
		want   []string // substrings, one per expected error
	}{
		{"valid", func(*link.ClientConfig) {}, nil},
		{"zero_durations_use_defaults", func(c *link.ClientConfig) {
			c.EchoInterval, c.EchoTimeout, c.ConnectTimeout, c.BackoffMin, c.BackoffMax = 0, 0, 0, 0, 0
		}, nil},
		{"no_addrs", func(c *link.ClientConfig) { c.Addrs = nil }, []string{"Addrs is empty"}},
		{"bad_addr", func(c *link.ClientConfig) { c.Addrs = []string{"center"} }, []string{`Addrs[0] = "center"`}},
		{"no_tls", func(c *link.ClientConfig) { c.TLS = nil }, []string{"TLS is nil"}},
		{"no_cert_no_roots", func(c *link.ClientConfig) {
			c.TLS = &tls.Config{}
		}, []string{"no client certificate", "RootCAs is nil"}},
		{"insecure", func(c *link.ClientConfig) { c.TLS.InsecureSkipVerify = true }, []string{"InsecureSkipVerify"}},
		{"tls12", func(c *link.ClientConfig) { c.TLS.MaxVersion = tls.VersionTLS12 }, []string{"MaxVersion"}},
		{"no_id_no_control", func(c *link.ClientConfig) { c.GatewayID, c.Control = "", nil }, []string{"GatewayID", "Control is nil"}},
		{"echo_timeout_not_below_interval", func(c *link.ClientConfig) {
			c.EchoInterval, c.EchoTimeout = time.Second, time.Second
		}, []string{"EchoTimeout = 1s must be less than EchoInterval = 1s"}},
		{"negative", func(c *link.ClientConfig) { c.RequestTimeout = -1 }, []string{"RequestTimeout = -1ns is negative"}},
		{"backoff_inverted", func(c *link.ClientConfig) {
			c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond
		}, []string{"BackoffMin = 1s exceeds BackoffMax = 1ms"}},
		{"idle_not_above_echo", func(c *link.ClientConfig) {
			c.IdleTimeout, c.EchoInterval, c.EchoTimeout = time.Second, 2*time.Second, time.Second
		}, []string{"IdleTimeout = 1s must exceed EchoInterval = 2s"}},
		{"max_message", func(c *link.ClientConfig) { c.MaxMessage = 70000 }, []string{"MaxMessage = 70000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			checkConfigErr(t, cfg.Validate(), tt.want)
			if _, err := link.NewClient(cfg); (err == nil) != (tt.want == nil) {
				t.Fatalf("NewClient: %v", err)
			}
		})
	}
}

func TestServerConfigValidate(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	good := func() link.ServerConfig {
		return link.ServerConfig{Addr: ":7443", TLS: env.serverTLS.Clone(), Handler: echoHandler, Control: ctl}
	}
	tests := []struct {
		name   string
		mutate func(*link.ServerConfig)
		want   []string
	}{
		{"valid", func(*link.ServerConfig) {}, nil},
		{"bad_addr", func(c *link.ServerConfig) { c.Addr = "7443" }, []string{`Addr = "7443"`}},
		{"no_tls", func(c *link.ServerConfig) { c.TLS = nil }, []string{"TLS is nil"}},
		{"client_cert_optional", func(c *link.ServerConfig) {
			c.TLS.ClientAuth = tls.VerifyClientCertIfGiven
			c.TLS.ClientCAs = nil
		}, []string{"must be RequireAndVerifyClientCert", "ClientCAs is nil"}},
		{"no_server_cert", func(c *link.ServerConfig) { c.TLS.Certificates = nil }, []string{"no server certificate"}},
		{"config_for_client", func(c *link.ServerConfig) {
			c.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }
		}, []string{"GetConfigForClient"}},
		{"no_handler_no_control", func(c *link.ServerConfig) { c.Handler, c.Control = nil, nil }, []string{"Handler is nil", "Control is nil"}},
		{"max_streams", func(c *link.ServerConfig) { c.MaxStreams = -1 }, []string{"MaxStreams = -1"}},
		{"max_message", func(c *link.ServerConfig) { c.MaxMessage = 1 << 20 }, []string{"MaxMessage = 1048576"}},
		{"negative", func(c *link.ServerConfig) { c.StreamTimeout = -time.Second }, []string{"StreamTimeout = -1s is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			checkConfigErr(t, cfg.Validate(), tt.want)
			if _, err := link.NewServer(cfg); (err == nil) != (tt.want == nil) {
				t.Fatalf("NewServer: %v", err)
			}
		})
	}
}

func checkConfigErr(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("valid config refused: %v", err)
		}
		return
	}
	if !errors.Is(err, link.ErrConfig) {
		t.Fatalf("got %v, want ErrConfig", err)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != len(want) {
		t.Errorf("%d errors reported, want %d: %q", n, len(want), msg)
	}
}

// TestNetworkCodec runs the link with protocol/iso93's 1804/1814 codec on
// both ends.
func TestNetworkCodec(t *testing.T) {
	// The echoes run on a synctest bubble's clock (memnet_test.go).
	synctest.Test(t, func(t *testing.T) {
		mn := newMemNet()
		env := newPKI(t)
		var codec iso93.NetworkCodec
		center := &countingControl{Control: codec}
		gateway := &countingControl{Control: codec}
		srv := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: center, Handler: echoHandler, ListenPacket: mn.ListenPacket})
		cfg := testClientConfig(env.clientTLS(t, nil, "gw-iso"), gateway, srv.addr)
		cfg.Dial = mn.Dial
		cfg.GatewayID = "gw-iso"
		cfg.EchoInterval = 50 * time.Millisecond
		cfg.EchoTimeout = 40 * time.Millisecond
		c := startClient(t, cfg)
		waitUp(t, c.Client)
		resp, err := c.RoundTrip(context.Background(), []byte("1200..."))
		if err != nil || string(resp) != "R:1200..." {
			t.Fatalf("round trip: %q, %v", resp, err)
		}
		// The gateway accepts the center's sign-on and echo replies.
		poll.Until(t, waitLimit, "a sign-on and five accepted echoes", func() bool { return gateway.accepted.Load() >= 6 })
		if n := gateway.refused.Load(); n != 0 {
			t.Fatalf("%d control replies refused with the ISO codec", n)
		}
	})
}

// TestNoGoroutinesLeft checks that stopping a client and a server leaves
// no goroutine of theirs behind.
func TestNoGoroutinesLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		env := newPKI(t)
		ctl := newTestControl(t)
		srv := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: ctl, Handler: echoHandler})
		c, err := link.NewClient(testClientConfig(env.clientTLS(t, nil, "gw-1"), ctl, srv.addr))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		waitUp(t, c)
		for range 10 {
			if _, err := c.RoundTrip(context.Background(), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
		if c.State() != link.Down {
			t.Fatalf("state after Run returned: %v", c.State())
		}
		srv.stop(t)
	}()
	poll.Until(t, waitLimit, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// countingControl counts the center's control replies and the gateway's
// reply checks.
type countingControl struct {
	link.Control
	replies, accepted, refused atomic.Int32
}

func (c *countingControl) CheckReply(req, resp []byte) error {
	err := c.Control.CheckReply(req, resp)
	if err != nil {
		c.refused.Add(1)
	} else {
		c.accepted.Add(1)
	}
	return err
}

func (c *countingControl) Reply(req []byte) ([]byte, error) {
	c.replies.Add(1)
	return c.Control.Reply(req)
}
