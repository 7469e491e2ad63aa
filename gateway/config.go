package gateway

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/internal/confkey"
	"github.com/posgate/posgate/p2pe/redact"
)

// Config is the posgate daemon's configuration. The zero value of every
// field means its default, named in the field's comment; Validate reports
// every bad key before anything is opened.
type Config struct {
	// DataDir holds the gateway's token, link certificates and bbolt file.
	// Default "./data/posgate".
	DataDir string `yaml:"data_dir"`
	// GatewayID names this gateway; it is the common name of its link
	// certificate. Default "GW000001".
	GatewayID string `yaml:"gateway_id"`

	Center    CenterConfig   `yaml:"center"`
	Terminals TerminalConfig `yaml:"terminals"`
	HTTP      HTTPConfig     `yaml:"http"`
	// Offline configures stand-in, store-and-forward and the negative-file
	// sync; see docs/offline.md.
	Offline OfflineConfig `yaml:"offline"`
	// Devices are the terminals, sign pads and DTMF boxes attached by the
	// terminal link (serial, USB tty, TCP); see docs/terminal-link.md.
	Devices []device.DeviceConfig `yaml:"devices"`
	// POS configures the POS/ECR API and its clients; see docs/pos-api.md.
	POS ecr.Config       `yaml:"pos"`
	HSM HSMConfig        `yaml:"hsm"`
	Log redact.LogConfig `yaml:"log"`
}

// CenterConfig says how the gateway reaches the center.
type CenterConfig struct {
	// Addrs are the center's link addresses, tried in order (primary, then
	// disaster-recovery site). Default ["127.0.0.1:7443"].
	Addrs []string `yaml:"addrs"`
	// CACert is the link CA certificate (PEM). Default DataDir/link/ca.crt.
	CACert string `yaml:"ca_cert"`
	// Cert is the gateway's certificate signed by the center (PEM).
	// Default DataDir/link/gateway.crt.
	Cert string `yaml:"cert"`
	// RequestTimeout bounds one request's round trip to the center.
	// Default 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// EchoInterval is the time between echo tests on the control stream.
	// Default 10s.
	EchoInterval time.Duration `yaml:"echo_interval"`
	// EchoTimeout is how long an echo reply may take before the link is
	// declared down. Default 3s.
	EchoTimeout time.Duration `yaml:"echo_timeout"`
}

// TerminalConfig configures the terminal-facing listeners.
type TerminalConfig struct {
	// Listen is the TCP address terminals connect to with length-framed
	// ISO 8583:1993 messages. Default "127.0.0.1:7001".
	Listen string `yaml:"listen"`
	// Device holds the device manager's settings for the terminal link:
	// attach_listen, response_timeout (default 120s), resolve_timeout,
	// status_interval, status_timeout, reconnect_min, reconnect_max and
	// link (the tlink timers). Its Devices come from Config.Devices.
	Device device.Config `yaml:",inline"`
}

// HTTPConfig configures the gateway's local HTTP listener (metrics now, the
// POS API later).
type HTTPConfig struct {
	// Listen is the address of /metrics. Default "127.0.0.1:8081".
	Listen string `yaml:"listen"`
}

// HSMConfig selects the gateway's PKCS#11 token: the keys every daemon
// shares (module, token_label default "posgate", pin, softhsm_dir default
// DataDir/hsm; see hsm.TokenConfig) and the gateway's identity key.
type HSMConfig struct {
	hsm.TokenConfig `yaml:",inline"`
	// IdentityLabel is the token label of the gateway's ECDSA P-256 link
	// identity key. Default "link-identity".
	IdentityLabel string `yaml:"identity_label"`
}

var gatewayIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = "./data/posgate"
	}
	if c.GatewayID == "" {
		c.GatewayID = "GW000001"
	}
	if len(c.Center.Addrs) == 0 {
		c.Center.Addrs = []string{"127.0.0.1:7443"}
	}
	if c.Center.CACert == "" {
		c.Center.CACert = filepath.Join(c.DataDir, "link", "ca.crt")
	}
	if c.Center.Cert == "" {
		c.Center.Cert = filepath.Join(c.DataDir, "link", "gateway.crt")
	}
	if c.Center.RequestTimeout == 0 {
		c.Center.RequestTimeout = 10 * time.Second
	}
	if c.Center.EchoInterval == 0 {
		c.Center.EchoInterval = 10 * time.Second
	}
	if c.Center.EchoTimeout == 0 {
		c.Center.EchoTimeout = 3 * time.Second
	}
	if c.Terminals.Listen == "" {
		c.Terminals.Listen = "127.0.0.1:7001"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8081"
	}
	c.HSM.TokenConfig = c.HSM.TokenConfig.WithDefaults("posgate", c.DataDir)
	if c.HSM.IdentityLabel == "" {
		c.HSM.IdentityLabel = "link-identity"
	}
	c.Offline = c.Offline.withDefaults(c.DataDir)
	c.Log = c.Log.WithDefaults()
	return c
}

// Validate applies the defaults to a copy and reports every key that breaks
// its rule, each with its name, value and rule.
func (c *Config) Validate() error {
	d := c.WithDefaults()
	*c = d
	var errs []error
	bad := func(key string, val any, rule string) { errs = append(errs, confkey.Bad(key, val, rule)) }
	if !gatewayIDPattern.MatchString(d.GatewayID) {
		bad("gateway_id", d.GatewayID, "1–32 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	for i, a := range d.Center.Addrs {
		errs = append(errs, confkey.HostPort(fmt.Sprintf("center.addrs[%d]", i), a))
	}
	checkPositive := func(key string, v time.Duration) {
		if v < 0 {
			bad(key, v, "must be a positive duration")
		}
	}
	checkPositive("center.request_timeout", d.Center.RequestTimeout)
	checkPositive("center.echo_interval", d.Center.EchoInterval)
	checkPositive("center.echo_timeout", d.Center.EchoTimeout)
	if d.Center.EchoTimeout >= d.Center.EchoInterval {
		bad("center.echo_timeout", d.Center.EchoTimeout, "must be shorter than center.echo_interval")
	}
	errs = append(errs, confkey.HostPort("terminals.listen", d.Terminals.Listen), confkey.HostPort("http.listen", d.HTTP.Listen))
	dc := d.Terminals.Device
	dc.Devices = d.Devices
	if err := dc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := d.POS.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, a := range []string{d.POS.Listen, d.POS.TLS.Listen} {
		if a != "" && (a == d.HTTP.Listen || a == d.Terminals.Listen) {
			bad("pos.listen", a, "must differ from http.listen and terminals.listen (leave pos.listen empty to share http.listen)")
		}
	}
	errs = append(errs, d.Offline.validate()...)
	errs = append(errs, d.HSM.Validate("hsm"), d.Log.Validate("log"))
	return errors.Join(errs...)
}
