package daemon_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/cloud/center"
	"github.com/posgate/posgate/cmd/internal/daemon"
	"github.com/posgate/posgate/gateway"
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

func TestLoggerDropsPANs(t *testing.T) {
	var buf bytes.Buffer
	for _, format := range []string{"text", "json"} {
		buf.Reset()
		log, err := daemon.NewLogger(&buf, format, "debug")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("card 4111111111111111 declined", "pan", "5555555555554444", "track", "3530111333300000=30122010000000000000")
		log.Debug("spaced", "v", "4111 1111 1111 1111")
		out := buf.String()
		for _, pan := range []string{"4111111111111111", "5555555555554444", "3530111333300000", "4111 1111 1111 1111"} {
			if strings.Contains(out, pan) {
				t.Errorf("%s log kept a PAN (%d digits)", format, len(pan))
			}
		}
		if !strings.Contains(out, "declined") {
			t.Errorf("%s log lost the message", format)
		}
	}
	if _, err := daemon.NewLogger(&buf, "xml", "info"); err == nil {
		t.Error("log format xml accepted")
	}
	if _, err := daemon.NewLogger(&buf, "text", "loud"); err == nil {
		t.Error("log level loud accepted")
	}
}
