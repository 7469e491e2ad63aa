package center_test

import (
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/cloud/center"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

// TestRunReleasesLinkSocketWhenHTTPFails starts a center whose HTTP address
// is taken: Run fails after the link socket is open, and must have closed it
// (the UDP port can be bound again).
func TestRunReleasesLinkSocketWhenHTTPFails(t *testing.T) {
	hsmtest.Token(t)
	tc := hsmtest.Config()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	linkAddr := pc.LocalAddr().String()
	pc.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	cfg := center.Config{
		DataDir: t.TempDir(),
		Link:    center.LinkConfig{Listen: linkAddr},
		HTTP:    center.HTTPConfig{Listen: taken.Addr().String()},
		Store:   center.StoreConfig{Path: filepath.Join(t.TempDir(), "center.db")},
		HSM:     hsm.TokenConfig{SoftHSMDir: "-", TokenLabel: tc.TokenLabel, PIN: tc.PIN},
		Keys: center.KeysConfig{
			BDK: hsmtest.Label(t, "bdk"), TDESBDK: hsmtest.Label(t, "tbdk"), Vault: hsmtest.Label(t, "vault"),
			Fingerprint: hsmtest.Label(t, "fp"), IMKAC: hsmtest.Label(t, "imkac"), IMKSMI: hsmtest.Label(t, "imksmi"),
			IMKSMC: hsmtest.Label(t, "imksmc"), CVK: hsmtest.Label(t, "cvk"),
		},
	}
	err = center.Run(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "http listener") {
		t.Fatalf("Run with the HTTP address taken: %v, want the http listener error", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Run's error %v does not wrap the listen error", err)
	}
	again, err := net.ListenPacket("udp", linkAddr)
	if err != nil {
		t.Fatalf("the link socket is still open after Run returned: %v", err)
	}
	again.Close()
}
