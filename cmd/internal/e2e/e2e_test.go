package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/center"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cmd/internal/demo"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/gateway"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/p2pe/redact"
	"github.com/posgate/posgate/protocol/iso93"
)

func TestMain(m *testing.M) {
	code := hsmtest.Run(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for daemons whose config names their listen address.
func freeAddr(t *testing.T, network string) string {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type system struct {
	centerCfg  center.Config
	gatewayCfg gateway.Config
	keys       keybundle.Keys
	logs       *syncBuffer
	stop       func()
}

// startSystem seeds a center, enrols a gateway, injects one terminal and
// runs both daemons until the test ends.
func startSystem(t *testing.T) *system {
	t.Helper()
	hsmtest.Token(t) // one SoftHSM2 token per test process, shared by both daemons under distinct labels
	tc := hsmtest.Config()
	dir := t.TempDir()
	logs := &syncBuffer{}
	log, err := redact.NewLogger(io.MultiWriter(logs, testWriter{t}), redact.LogConfig{Format: "text", Level: "debug"})
	if err != nil {
		t.Fatal(err)
	}

	cc := center.Config{
		DataDir: filepath.Join(dir, "center"),
		Link:    center.LinkConfig{Listen: freeAddr(t, "udp")},
		HTTP:    center.HTTPConfig{Listen: freeAddr(t, "tcp")},
		HSM:     hsm.TokenConfig{SoftHSMDir: "-", TokenLabel: tc.TokenLabel, PIN: tc.PIN},
		Keys: center.KeysConfig{
			BDK:         hsmtest.Label(t, "bdk"),
			Vault:       hsmtest.Label(t, "vault"),
			Fingerprint: hsmtest.Label(t, "fp"),
		},
	}
	gc := gateway.Config{
		DataDir:   filepath.Join(dir, "gateway"),
		GatewayID: "GW000001",
		Center: gateway.CenterConfig{
			Addrs:          []string{cc.Link.Listen},
			EchoInterval:   time.Second,
			EchoTimeout:    500 * time.Millisecond,
			RequestTimeout: 5 * time.Second,
		},
		Terminals: gateway.TerminalConfig{Listen: freeAddr(t, "tcp")},
		HTTP:      gateway.HTTPConfig{Listen: freeAddr(t, "tcp")},
		HSM:       gateway.HSMConfig{TokenConfig: hsm.TokenConfig{SoftHSMDir: "-", TokenLabel: tc.TokenLabel, PIN: tc.PIN}, IdentityLabel: hsmtest.Label(t, "gw-id")},
	}
	if err := cc.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := gc.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	// Center: token keys, store, demo data.
	parts, err := center.Open(ctx, cc, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, parts.Store, parts.Vault, gc.GatewayID, 1, 1, io.Discard); err != nil {
		t.Fatal(err)
	}
	// Key injection for terminal T0000001.
	ikid := [8]byte{0, 0, 0, 1, 0, 0, 0, 1}
	ik, err := parts.Token.AESInitialKeyForInjection(cc.Keys.BDK, ikid)
	if err != nil {
		t.Fatal(err)
	}
	fpKey, err := center.LoadFingerprintKey(cc.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	keys := keybundle.Keys{TerminalID: demo.TerminalID(1), IKID: ikid, InitialKey: ik, FingerprintKey: fpKey}
	if err := parts.Close(); err != nil {
		t.Fatal(err)
	}

	// Gateway enrolment: CSR from its token key, signed by the center's CA.
	gtok, err := gateway.OpenToken(gc)
	if err != nil {
		t.Fatal(err)
	}
	csrPath, err := gateway.WriteCSR(gc, gtok)
	gtok.Close()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := os.ReadFile(csrPath)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, caPEM, err := center.Enrol(cc.DataDir, gc.GatewayID, csr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gc.Center.Cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gc.Center.CACert, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- center.Run(runCtx, cc, log.With("daemon", "cardcenter")) })
	wg.Go(func() { errs <- runGateway(runCtx, gc, log.With("daemon", "posgate")) })
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("daemon stopped with: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	waitLinkUp(t, gc.HTTP.Listen)
	return &system{centerCfg: cc, gatewayCfg: gc, keys: keys, logs: logs, stop: stop}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitLinkUp polls the gateway's metrics until the link is signed on.
func waitLinkUp(t *testing.T, httpAddr string) {
	t.Helper()
	poll.Until(t, 20*time.Second, "the gateway's link up (posgate_link_up 1)", func() bool {
		return strings.Contains(metrics(httpAddr), "\nposgate_link_up 1")
	})
}

func TestFirstSaleEndToEnd(t *testing.T) {
	sys := startSystem(t)
	term, err := device.New(sys.keys, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := term.Connect(ctx, sys.gatewayCfg.Terminals.Listen); err != nil {
		t.Fatal(err)
	}
	defer term.Close()

	for _, c := range deck.Cards() {
		t.Run(c.Name, func(t *testing.T) {
			res, err := term.Sale(ctx, c, 1200)
			if err != nil {
				t.Fatalf("sale: %v", err)
			}
			if string(res.ActionCode) != c.Expect {
				t.Fatalf("card %s: action %s, want %s", res.MaskedPAN, res.ActionCode, c.Expect)
			}
			if res.Approved() != (c.Expect == string(iso93.ActionApproved)) {
				t.Fatalf("approved = %v for action %s", res.Approved(), res.ActionCode)
			}
			if res.Approved() && len(res.ApprovalCode) != 6 {
				t.Fatalf("approval code %q, want 6 characters", res.ApprovalCode)
			}
		})
	}

	// Metrics count the answers by MTI and action code.
	resp, err := http.Get("http://" + sys.gatewayCfg.HTTP.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `posgate_requests_total{action="000",mti="1200"}`) {
		t.Errorf("gateway metrics lack approved 1200 sales")
	}
	resp, err = http.Get("http://" + sys.centerCfg.HTTP.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"\ncardcenter_link_gateways 1\n", `cardcenter_requests_total{action="111",mti="1200"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("center metrics lack %q", want)
		}
	}

	sys.stop()
	st, err := store.Open(context.Background(), store.Config{Driver: "sqlite", Path: sys.centerCfg.Store.Path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := ledger.Check(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("ledger check failed:\n%s", rep)
	}
	if rep.Transfers == 0 {
		t.Fatal("ledger has no transfers: the approved sales posted nothing")
	}
	assertNoPAN(t, sys.logs.String())
}

func assertNoPAN(t *testing.T, logs string) {
	t.Helper()
	for _, c := range deck.Cards() {
		if strings.Contains(logs, c.PAN) {
			t.Errorf("logs contain the clear PAN of deck card %s", c.Name)
		}
	}
	if len(logs) == 0 {
		t.Error("no logs captured")
	}
}

// TestUnregisteredGatewayRefused enrols a second gateway with the center's
// CA but never registers it: its certificate is valid, so the handshake
// succeeds, but the sign-on is refused and audited, and its terminals get
// 907 from it.
func TestUnregisteredGatewayRefused(t *testing.T) {
	sys := startSystem(t)
	tc := hsmtest.Config()
	gc := sys.gatewayCfg
	gc.GatewayID = "GW000099"
	gc.DataDir = filepath.Join(t.TempDir(), "gw99")
	gc.Center.Cert, gc.Center.CACert = "", ""
	gc.Offline.Path = "" // its own bbolt file under its own data dir
	gc.HSM = gateway.HSMConfig{TokenConfig: hsm.TokenConfig{SoftHSMDir: "-", TokenLabel: tc.TokenLabel, PIN: tc.PIN}, IdentityLabel: hsmtest.Label(t, "gw99-id")}
	gc.Terminals.Listen = freeAddr(t, "tcp")
	gc.HTTP.Listen = freeAddr(t, "tcp")
	if err := gc.Validate(); err != nil {
		t.Fatal(err)
	}
	tok, err := gateway.OpenToken(gc)
	if err != nil {
		t.Fatal(err)
	}
	csrPath, err := gateway.WriteCSR(gc, tok)
	tok.Close()
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := os.ReadFile(csrPath)
	certPEM, caPEM, err := center.Enrol(sys.centerCfg.DataDir, gc.GatewayID, csr)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(gc.Center.Cert, certPEM, 0o644)
	os.WriteFile(gc.Center.CACert, caPEM, 0o644)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runGateway(ctx, gc, quietLogger(t)) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("gateway GW000099 did not stop")
		}
	}()

	st, err := store.Open(ctx, store.Config{Driver: "sqlite", Path: sys.centerCfg.Store.Path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var recs []store.AuditRecord
	poll.Until(t, 20*time.Second, "an audit record of the refused sign-on", func() bool {
		err := st.View(ctx, func(tx *store.Tx) error {
			var err error
			recs, err = tx.Audit(ctx, "link.signon_refused", 10)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			done <- err // for the deferred wait
			t.Fatalf("gateway GW000099 stopped early: %v", err)
		default:
		}
		return len(recs) > 0
	})
	if recs[0].Actor != "GW000099" {
		t.Fatalf("audit names %q", recs[0].Actor)
	}
	term, err := device.New(keybundle.Keys{TerminalID: "T0000001", IKID: sys.keys.IKID, InitialKey: sys.keys.InitialKey, FingerprintKey: sys.keys.FingerprintKey}, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := term.Connect(ctx, gc.Terminals.Listen); err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	c, _ := deck.Lookup("visa-ok")
	res, err := term.Sale(ctx, c, 1200)
	if err != nil {
		t.Fatal(err)
	}
	if res.ActionCode != iso93.ActionIssuerInoperative {
		t.Fatalf("sale through a refused gateway answered %s, want 907", res.ActionCode)
	}
}

func quietLogger(t *testing.T) *slog.Logger {
	l, err := redact.NewLogger(testWriter{t}, redact.LogConfig{Format: "text", Level: "info"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runGateway runs a gateway as posgate does: New, then Run until ctx ends.
func runGateway(ctx context.Context, cfg gateway.Config, log *slog.Logger) error {
	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	return g.Run(ctx)
}
