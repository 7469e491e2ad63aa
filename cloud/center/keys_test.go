package center_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/posgate/posgate/cloud/center"
	"github.com/posgate/posgate/hsm/hsmtest"
)

// TestEnsureKeysSecureMessaging checks that the bootstrap creates the
// secure-messaging issuer master keys (with their ceremony component
// files) beside the IMK-AC, and that without bootstrap a missing IMK-SMC
// refuses the start.
func TestEnsureKeysSecureMessaging(t *testing.T) {
	tok := hsmtest.Token(t)
	p := hsmtest.Label(t, "ek")
	on, off := true, false
	keys := center.KeysConfig{BDK: p + "-bdk", Vault: p + "-vault", Fingerprint: p + "-fp", IMKAC: p + "-ac",
		IMKSMI: p + "-smi", IMKSMC: p + "-smc", CVK: p + "-cvk", Bootstrap: &on}
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := center.EnsureKeys(tok, keys, dir, log); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	for _, l := range []string{keys.IMKAC, keys.IMKSMI, keys.IMKSMC} {
		if ok, err := tok.HasKey(l); err != nil || !ok {
			t.Fatalf("key %q after bootstrap: %v %v", l, ok, err)
		}
	}
	for _, f := range []string{"imk-smi-components.json", "imk-smc-components.json"} {
		st, err := os.Stat(filepath.Join(dir, "ceremony", f))
		if err != nil {
			t.Fatalf("ceremony file: %v", err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	keys.IMKSMC, keys.Bootstrap = p+"-smc-absent", &off
	if err := center.EnsureKeys(tok, keys, t.TempDir(), log); !errors.Is(err, center.ErrKeyMissing) {
		t.Fatalf("missing IMK-SMC without bootstrap: %v, want ErrKeyMissing", err)
	}
}
