package gateway

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

// listen holds a loopback TCP port for the test and returns its address.
func listen(t *testing.T) (string, net.Listener) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), l
}

// freeAddr returns a loopback TCP address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	a, l := listen(t)
	l.Close()
	return a
}

// TestNewClosesOnFailureAndRunShutsDown: New fails on a taken HTTP address
// and closes what it opened before (the token session, the bbolt file and
// the terminal listener), so a second New on the same config and data
// directory succeeds; Run then serves until its context ends and closes
// everything again, so a third New succeeds too. The gateway is not
// enrolled: New writes its CSR and needs no center.
func TestNewClosesOnFailureAndRunShutsDown(t *testing.T) {
	hsmtest.Token(t)
	tc := hsmtest.Config()
	taken, held := listen(t)
	cfg := Config{
		DataDir:   t.TempDir(),
		Terminals: TerminalConfig{Listen: freeAddr(t)},
		HTTP:      HTTPConfig{Listen: taken},
		HSM:       HSMConfig{TokenConfig: hsm.TokenConfig{SoftHSMDir: "-", TokenLabel: tc.TokenLabel, PIN: tc.PIN}, IdentityLabel: hsmtest.Label(t, "gw-id")},
	}
	log := gatewaytest.Quiet()
	if _, err := New(cfg, log); err == nil {
		t.Fatal("New succeeded on a taken http.listen")
	}
	held.Close()

	g, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New after a failed New: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "link", "gateway.csr")); err != nil {
		t.Fatalf("not enrolled, but no CSR: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}

	g, err = New(cfg, log)
	if err != nil {
		t.Fatalf("New after Run: %v", err)
	}
	g.close()
}
