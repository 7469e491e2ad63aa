package hsm_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/p2pe/dukpt"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     hsm.Config
		wantErr []string // substrings, one per expected problem
	}{
		{"defaults_ok", hsm.Config{TokenLabel: "t", PIN: "1234"}, nil},
		{"missing_label_and_pin", hsm.Config{}, []string{"TokenLabel", "PIN"}},
		{"long_label", hsm.Config{TokenLabel: strings.Repeat("x", 33), PIN: "1"}, []string{"TokenLabel"}},
		{"bad_module", hsm.Config{ModulePath: "/nonexistent/lib.so", TokenLabel: "t", PIN: "1"}, []string{"ModulePath", "apt-get install -y softhsm2"}},
		{"negative_pool", hsm.Config{TokenLabel: "t", PIN: "1", PoolSize: -1}, []string{"PoolSize: -1"}},
		{"bad_cache", hsm.Config{TokenLabel: "t", PIN: "1", MaxDUKPTDevices: -2}, []string{"MaxDUKPTDevices: -2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ce *hsm.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate = %v, want *ConfigError", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.cfg.PIN != "" && strings.Contains(err.Error(), tc.cfg.PIN+"\"") {
				t.Errorf("error echoes the PIN")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	hsmtest.Token(t)
	tests := []struct {
		name string
		cfg  hsm.Config
		want error
	}{
		{"unknown_token", hsm.Config{TokenLabel: "no-such-token", PIN: hsmtest.PIN}, hsm.ErrTokenNotFound},
		{"missing_module", hsm.Config{ModulePath: "/nonexistent.so", TokenLabel: hsmtest.TokenLabel, PIN: "x"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := hsm.Open(tc.cfg)
			if err == nil {
				tok.Close()
				t.Fatalf("Open succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSecondTokenClose opens and closes a second Token on the shared test
// token and checks the shared one keeps working (one C_Initialize per
// process, reference counted).
func TestSecondTokenClose(t *testing.T) {
	shared := hsmtest.Token(t)
	label := importBDK(t, shared, bdk128)
	tok, err := hsm.Open(hsmtest.Config())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	k, err := tok.AESDUKPTKey(label, ksnOf(t, 3), dukpt.UsageDataBoth, dukpt.AlgAES128)
	if err != nil {
		t.Fatalf("derive on second token: %v", err)
	}
	if err := tok.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := tok.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	closed := []struct {
		name string
		f    func() error
	}{
		{"kcv", func() error { _, err := tok.KCV(label); return err }},
		{"decrypt", func() error {
			_, err := tok.DecryptDUKPT(label, ksnOf(t, 1), dukpt.UsageDataBoth, dukpt.AlgAES128, nil, make([]byte, 16))
			return err
		}},
		{"generate", func() error { return tok.GenerateAES("x", 128) }},
		{"derived_key", func() error { _, err := k.Encrypt(nil, fixed); return err }},
	}
	for _, tc := range closed {
		t.Run("closed_"+tc.name, func(t *testing.T) {
			if err := tc.f(); !errors.Is(err, hsm.ErrClosed) {
				t.Fatalf("err = %v, want ErrClosed", err)
			}
		})
	}
	if err := k.Destroy(); err != nil {
		t.Errorf("destroy after close: %v", err)
	}
	if _, err := shared.KCV(label); err != nil {
		t.Fatalf("shared token after closing the second: %v", err)
	}
}

func TestUseSoftHSMConf(t *testing.T) {
	hsmtest.Token(t) // the process has SoftHSM initialised
	other := filepath.Join(t.TempDir(), "softhsm2.conf")
	if err := os.WriteFile(other, []byte("directories.tokendir = /nonexistent\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hsm.UseSoftHSMConf(other); !errors.Is(err, hsm.ErrConfInUse) {
		t.Fatalf("switching config while initialised: %v, want ErrConfInUse", err)
	}
	if err := hsm.UseSoftHSMConf(os.Getenv("SOFTHSM2_CONF")); err != nil {
		t.Fatalf("re-setting the config in use: %v", err)
	}
}

// TestInitSoftHSMIdempotent initialises a second token directory twice
// with softhsm2-util and checks there is one token with the label.
func TestInitSoftHSMIdempotent(t *testing.T) {
	dir := t.TempDir()
	var conf string
	for i := range 2 {
		c, err := hsm.InitSoftHSM(dir, "idem", "1111", "2222")
		if err != nil {
			t.Fatalf("init %d: %v", i, err)
		}
		if conf != "" && c != conf {
			t.Fatalf("second init gave config %s, first %s", c, conf)
		}
		conf = c
	}
	cmd := exec.Command(hsm.SoftHSMUtil, "--show-slots")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("show slots: %v", err)
	}
	if n := strings.Count(string(out), "Label:            idem "); n != 1 {
		t.Fatalf("%d tokens labelled idem, want 1", n)
	}
	if _, err := hsm.InitSoftHSM(dir, "", "1111", "2222"); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("empty label: %v, want ErrInput", err)
	}
}
