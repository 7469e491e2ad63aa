package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/cloud/center"
	"github.com/posgate/posgate/cmd/internal/daemon"
	"github.com/posgate/posgate/gateway"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/redact"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaults(t *testing.T) {
	var g gateway.Config
	if err := daemon.LoadConfig("", &g); err != nil {
		t.Fatalf("embedded defaults refused: %v", err)
	}
	if g.DataDir != "./data/posgate" || g.Terminals.Listen != "127.0.0.1:7001" || len(g.Center.Addrs) != 1 {
		t.Fatalf("defaults not applied: %+v", g)
	}
	var c center.Config
	if err := daemon.LoadConfig("", &c); err != nil {
		t.Fatalf("embedded defaults refused: %v", err)
	}
	if c.Store.Driver != "sqlite" || c.Store.Path != filepath.Join("data", "cardcenter", "center.db") {
		t.Fatalf("defaults not applied: %+v", c.Store)
	}
}

func TestLoadConfigFile(t *testing.T) {
	p := writeFile(t, "gateway_id: GW-TOKYO-01\ncenter:\n  addrs: [10.0.0.1:7443, 10.1.0.1:7443]\n  request_timeout: 7s\n")
	var g gateway.Config
	if err := daemon.LoadConfig(p, &g); err != nil {
		t.Fatal(err)
	}
	if g.GatewayID != "GW-TOKYO-01" || len(g.Center.Addrs) != 2 || g.Center.RequestTimeout.Seconds() != 7 {
		t.Fatalf("file not applied: %+v", g)
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  func() daemon.Validator
		body string
		want []string // every part must appear in the error
	}{
		{"unknown_key", func() daemon.Validator { return &gateway.Config{} }, "gateway_id: GW1\nterminal:\n  listen: x\n", []string{"field terminal not found"}},
		{"bad_gateway_id", func() daemon.Validator { return &gateway.Config{} }, "gateway_id: 'no spaces allowed'\n", []string{"gateway_id", "no spaces allowed", "letters, digits"}},
		{"echo_timeout_too_long", func() daemon.Validator { return &gateway.Config{} }, "center:\n  echo_interval: 2s\n  echo_timeout: 5s\n", []string{"center.echo_timeout", "5s", "shorter than center.echo_interval"}},
		{"every_bad_key_reported", func() daemon.Validator { return &gateway.Config{} }, "terminals:\n  listen: nocolon\nlog:\n  level: loud\n", []string{"terminals.listen", "nocolon", "host:port", "log.level", "loud"}},
		{"bad_duration", func() daemon.Validator { return &gateway.Config{} }, "center:\n  request_timeout: soon\n", []string{"soon"}},
		{"postgres_without_dsn", func() daemon.Validator { return &center.Config{} }, "store:\n  driver: postgres\n", []string{"store.dsn", "required"}},
		{"unknown_driver", func() daemon.Validator { return &center.Config{} }, "store:\n  driver: oracle\n", []string{"store.driver", "oracle", "sqlite or postgres"}},
		{"max_streams_range", func() daemon.Validator { return &center.Config{} }, "link:\n  max_streams: 100000\n", []string{"link.max_streams", "100000"}},
		{"store_pool_ranges", func() daemon.Validator { return &center.Config{} }, "store:\n  max_conns: -1\n  max_batch: 20000\n", []string{"store.max_conns", "-1", "store.max_batch", "20000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := daemon.LoadConfig(writeFile(t, tt.body), tt.cfg())
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestSharedSections pins the hsm and log sections both daemons share
// (hsm.TokenConfig, redact.LogConfig): their YAML keys, each daemon's
// defaults (docs/config.md) and their rules.
func TestSharedSections(t *testing.T) {
	var g gateway.Config
	if err := daemon.LoadConfig("", &g); err != nil {
		t.Fatal(err)
	}
	wantG := gateway.HSMConfig{TokenConfig: hsm.TokenConfig{Module: hsm.DefaultModulePath, TokenLabel: "posgate", PIN: "1234",
		SoftHSMDir: filepath.Join("data", "posgate", "hsm")}, IdentityLabel: "link-identity"}
	if g.HSM != wantG || g.Log != (redact.LogConfig{Format: "text", Level: "info"}) {
		t.Fatalf("posgate defaults: hsm %+v log %+v", g.HSM, g.Log)
	}
	var c center.Config
	if err := daemon.LoadConfig("", &c); err != nil {
		t.Fatal(err)
	}
	wantC := hsm.TokenConfig{Module: hsm.DefaultModulePath, TokenLabel: "cardcenter", PIN: "1234",
		SoftHSMDir: filepath.Join("data", "cardcenter", "hsm")}
	if c.HSM != wantC || c.Log != (redact.LogConfig{Format: "text", Level: "info"}) {
		t.Fatalf("cardcenter defaults: hsm %+v log %+v", c.HSM, c.Log)
	}

	const body = "hsm:\n  module: /opt/hsm/lib.so\n  token_label: shop-1\n  pin: '98765'\n  softhsm_dir: '-'\n%slog:\n  format: json\n  level: warn\n"
	g = gateway.Config{}
	if err := daemon.LoadConfig(writeFile(t, fmt.Sprintf(body, "  identity_label: id-1\n")), &g); err != nil {
		t.Fatal(err)
	}
	if g.HSM != (gateway.HSMConfig{TokenConfig: hsm.TokenConfig{Module: "/opt/hsm/lib.so", TokenLabel: "shop-1", PIN: "98765", SoftHSMDir: "-"}, IdentityLabel: "id-1"}) ||
		g.Log != (redact.LogConfig{Format: "json", Level: "warn"}) {
		t.Fatalf("posgate file: hsm %+v log %+v", g.HSM, g.Log)
	}
	c = center.Config{}
	if err := daemon.LoadConfig(writeFile(t, fmt.Sprintf(body, "")), &c); err != nil {
		t.Fatal(err)
	}
	if c.HSM != (hsm.TokenConfig{Module: "/opt/hsm/lib.so", TokenLabel: "shop-1", PIN: "98765", SoftHSMDir: "-"}) ||
		c.Log != (redact.LogConfig{Format: "json", Level: "warn"}) {
		t.Fatalf("cardcenter file: hsm %+v log %+v", c.HSM, c.Log)
	}
	if err := daemon.LoadConfig(writeFile(t, fmt.Sprintf(body, "  identity_label: id-1\n")), &center.Config{}); err == nil || !strings.Contains(err.Error(), "identity_label") {
		t.Fatalf("cardcenter took hsm.identity_label: %v", err)
	}

	bad := "hsm:\n  token_label: " + strings.Repeat("x", 33) + "\n  pin: '12'\nlog:\n  format: xml\n  level: loud\n"
	for name, cfg := range map[string]daemon.Validator{"posgate": &gateway.Config{}, "cardcenter": &center.Config{}} {
		err := daemon.LoadConfig(writeFile(t, bad), cfg)
		if err == nil {
			t.Fatalf("%s accepted %q", name, bad)
		}
		for _, w := range []string{"hsm.token_label", "1 to 32 bytes", "hsm.pin", "log.format", "xml", "log.level", "loud"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", name, err, w)
			}
		}
		if strings.Contains(err.Error(), "'12'") || strings.Contains(err.Error(), `"12"`) {
			t.Errorf("%s: error echoes the PIN: %v", name, err)
		}
	}
}
