package ecr

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/posgate/posgate/gateway/device"
)

// Defaults of Config.
const (
	DefaultMerchantName    = "posgate merchant"
	DefaultMaxTransactions = 10000
	DefaultMaxWait         = 60 * time.Second
	DefaultHeartbeat       = 15 * time.Second
	// MaxBody is the largest request body accepted.
	MaxBody = 16 << 10
)

// Config configures the POS API. Zero fields take the default in their
// comment; Validate refuses values out of range rather than clamping them.
type Config struct {
	// Listen is a separate plain-HTTP address for the POS API. Empty (the
	// default) serves it on the gateway's http.listen next to /metrics.
	Listen string `yaml:"listen"`
	// TLS, when TLS.Listen is set, adds an HTTPS listener on which a POS
	// may authenticate with a client certificate instead of a key.
	TLS TLSConfig `yaml:"tls"`
	// MerchantName heads every receipt. Default "posgate merchant".
	MerchantName string `yaml:"merchant_name"`
	// MaxTransactions bounds the transactions (and their idempotency
	// keys) kept, in memory and in the Journal; the oldest settled ones
	// are forgotten first. Default 10000; 1..1000000.
	MaxTransactions int `yaml:"max_transactions"`
	// MaxWait caps the ?wait= of a long poll. Default 60s; 1s..10m.
	MaxWait time.Duration `yaml:"max_wait"`
	// Heartbeat is the time between keep-alive comments on an event
	// stream. Default 15s; 1s..10m.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Clients are the POS clients allowed to call the API.
	Clients []Client `yaml:"clients"`
}

// TLSConfig configures the optional HTTPS listener.
type TLSConfig struct {
	// Listen is the HTTPS address. Empty: no HTTPS listener.
	Listen string `yaml:"listen"`
	// Cert and Key are the server certificate and key (PEM files).
	// Required with Listen.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is the CA (PEM file) that signs POS client certificates;
	// a verified certificate's common name is the POS id. Required with
	// Listen. A client without a certificate may still use a key.
	ClientCA string `yaml:"client_ca"`
}

// Client is one POS allowed to call the API.
type Client struct {
	// ID names the POS; it is also the common name of its client
	// certificate. Required: 1–32 of [A-Za-z0-9._-].
	ID string `yaml:"id"`
	// KeySHA256 is the SHA-256 of the POS's API key, 64 lower-case hex
	// digits; the key itself is never stored. Empty: certificate only.
	KeySHA256 string `yaml:"key_sha256"`
	// Terminals are the device ids this POS may use.
	Terminals []string `yaml:"terminals"`
}

var (
	posIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)
	hashPattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.MerchantName == "" {
		c.MerchantName = DefaultMerchantName
	}
	if c.MaxTransactions == 0 {
		c.MaxTransactions = DefaultMaxTransactions
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("ecr: invalid config")

// Validate reports every bad key with its name (pos.*), value and rule,
// each wrapping ErrConfig, joined into one error. A key hash is shown
// only by its position, never its value.
func (c Config) Validate() error {
	d := c.WithDefaults()
	var errs []error
	bad := func(key string, val any, rule string) {
		errs = append(errs, fmt.Errorf("%w: %s = %q: %s", ErrConfig, key, fmt.Sprint(val), rule))
	}
	for key, a := range map[string]string{"pos.listen": d.Listen, "pos.tls.listen": d.TLS.Listen} {
		if a != "" {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(key, a, "must be host:port")
			}
		}
	}
	if d.TLS.Listen != "" {
		for key, v := range map[string]string{"pos.tls.cert": d.TLS.Cert, "pos.tls.key": d.TLS.Key, "pos.tls.client_ca": d.TLS.ClientCA} {
			if v == "" {
				bad(key, v, "required with pos.tls.listen")
			}
		}
	}
	if d.MaxTransactions < 1 || d.MaxTransactions > 1000000 {
		bad("pos.max_transactions", d.MaxTransactions, "must be from 1 to 1000000")
	}
	if d.MaxWait < time.Second || d.MaxWait > 10*time.Minute {
		bad("pos.max_wait", d.MaxWait, "must be from 1s to 10m")
	}
	if d.Heartbeat < time.Second || d.Heartbeat > 10*time.Minute {
		bad("pos.heartbeat", d.Heartbeat, "must be from 1s to 10m")
	}
	ids := make(map[string]int)
	hashes := make(map[string]int)
	for i, cl := range d.Clients {
		key := fmt.Sprintf("pos.clients[%d]", i)
		if !posIDPattern.MatchString(cl.ID) {
			bad(key+".id", cl.ID, "1–32 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
		} else if j, dup := ids[cl.ID]; dup {
			bad(key+".id", cl.ID, fmt.Sprintf("already used by pos.clients[%d]", j))
		} else {
			ids[cl.ID] = i
		}
		switch {
		case cl.KeySHA256 == "" && d.TLS.Listen == "":
			bad(key+".key_sha256", "", "required unless pos.tls.listen is set (certificate authentication)")
		case cl.KeySHA256 != "" && !hashPattern.MatchString(cl.KeySHA256):
			bad(key+".key_sha256", "[redacted]", "must be 64 lower-case hex digits: the SHA-256 of the API key")
		case cl.KeySHA256 != "":
			if j, dup := hashes[cl.KeySHA256]; dup {
				bad(key+".key_sha256", "[redacted]", fmt.Sprintf("same key as pos.clients[%d]", j))
			}
			hashes[cl.KeySHA256] = i
		}
		for k, t := range cl.Terminals {
			if !device.ValidID(t) {
				bad(fmt.Sprintf("%s.terminals[%d]", key, k), t, "must be a device id")
			}
		}
	}
	return errors.Join(errs...)
}

func decodeHash(h string) []byte {
	b, _ := hex.DecodeString(h)
	return b
}
