package device

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// Defaults of Config.
const (
	DefaultResponseTimeout = 120 * time.Second
	DefaultResolveTimeout  = 60 * time.Second
	DefaultStatusInterval  = 15 * time.Second
	DefaultStatusTimeout   = 5 * time.Second
	DefaultReconnectMin    = 250 * time.Millisecond
	DefaultReconnectMax    = 30 * time.Second
	// StatusFailures is how many status polls in a row may go unanswered
	// before the manager drops the link and opens the device again.
	StatusFailures = 3
)

// DeviceConfig is one configured device: its id and how to reach it.
type DeviceConfig struct {
	// ID names the device; POS clients are assigned devices by it.
	// Required: 1–32 of [A-Za-z0-9._-], starting with a letter or digit.
	ID string `yaml:"id"`
	// DeviceConfig is the transport: kind, medium (key "transport"), path
	// and line settings for serial media, address for tcp and tcp-listen.
	transport.DeviceConfig `yaml:",inline"`
}

// Config configures a Manager. The zero value of each duration means the
// default named in its comment; Validate refuses values out of range rather
// than clamping them.
type Config struct {
	// Devices are the configured devices, each kept open by its own
	// goroutine.
	Devices []DeviceConfig `yaml:"-"`
	// AttachListen, when set, is a TCP address where terminals that were
	// not configured may connect; each is identified by the serial number
	// in its first status response, which becomes its device id.
	AttachListen string `yaml:"attach_listen"`
	// ResponseTimeout is how long a transaction command waits for the
	// terminal's txn-result after the terminal acknowledged it: a customer
	// is at the terminal. Default 120s; 1s..10m.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	// ResolveTimeout is how long Transact waits, after a lost result, for
	// the outcome to be learnt by a last-transaction query before it
	// reports the outcome as unknown. Resolution continues after that and
	// is reported to OnResult. Default 60s; 1s..1h.
	ResolveTimeout time.Duration `yaml:"resolve_timeout"`
	// StatusInterval is the time between status polls of each connected
	// device. Default 15s; 100ms..1h.
	StatusInterval time.Duration `yaml:"status_interval"`
	// StatusTimeout bounds one status poll or last-transaction query.
	// Default 5s; 10ms..StatusInterval.
	StatusTimeout time.Duration `yaml:"status_timeout"`
	// ReconnectMin is the first wait before a device that could not be
	// opened, or whose link ended, is opened again; the wait doubles up to
	// ReconnectMax. Default 250ms; 1ms..ReconnectMax.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	// ReconnectMax caps the reconnect wait. Default 30s; up to 1h.
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// Link holds the terminal link timers and limits (ack timeout,
	// retries …); its response_timeout is replaced by ResponseTimeout and
	// its bit_rate by a serial device's baud.
	Link tlink.Config `yaml:"link"`

	// Handler answers financial requests (the gateway's Forwarder).
	// Required by New.
	Handler Handler `yaml:"-"`
	// Signatures receives the signatures terminals capture (kind 0x28,
	// signature.go). Nil refuses them (status refused).
	Signatures SignatureSink `yaml:"-"`
	// OnResult, when set, is called with every transaction result the
	// manager learns: direct results, late results and outcomes resolved
	// by a last-transaction query. It is called from the manager's
	// goroutines without locks held and must not block for long.
	OnResult func(TxnResult) `yaml:"-"`
	// Logger receives device events, never card data. Nil discards them.
	Logger *slog.Logger `yaml:"-"`
	// Registerer, when set, receives the device metrics
	// (posgate_device_health, posgate_device_reconnects_total).
	Registerer prometheus.Registerer `yaml:"-"`
	// Now is the clock; nil means time.Now.
	Now func() time.Time `yaml:"-"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// ValidID reports whether s is a valid device id: 1–32 of [A-Za-z0-9._-],
// starting with a letter or digit.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// WithDefaults returns c with zero durations replaced by their defaults.
func (c Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.ResponseTimeout, DefaultResponseTimeout)
	def(&c.ResolveTimeout, DefaultResolveTimeout)
	def(&c.StatusInterval, DefaultStatusInterval)
	def(&c.StatusTimeout, DefaultStatusTimeout)
	def(&c.ReconnectMin, DefaultReconnectMin)
	def(&c.ReconnectMax, DefaultReconnectMax)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every bad key with its name (as in the posgate
// configuration file: terminals.* and devices[i].*), value and rule, each
// wrapping ErrConfig, joined into one error.
func (c Config) Validate() error {
	d := c.WithDefaults()
	var errs []error
	bad := func(key string, val any, rule string) {
		errs = append(errs, fmt.Errorf("%w: %s = %q: %s", ErrConfig, key, fmt.Sprint(val), rule))
	}
	rng := func(key string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			bad(key, v, fmt.Sprintf("must be from %v to %v", lo, hi))
		}
	}
	rng("terminals.response_timeout", d.ResponseTimeout, time.Second, 10*time.Minute)
	rng("terminals.resolve_timeout", d.ResolveTimeout, time.Second, time.Hour)
	rng("terminals.status_interval", d.StatusInterval, 100*time.Millisecond, time.Hour)
	rng("terminals.status_timeout", d.StatusTimeout, 10*time.Millisecond, d.StatusInterval)
	rng("terminals.reconnect_max", d.ReconnectMax, time.Millisecond, time.Hour)
	rng("terminals.reconnect_min", d.ReconnectMin, time.Millisecond, d.ReconnectMax)
	if d.AttachListen != "" {
		if _, _, err := net.SplitHostPort(d.AttachListen); err != nil {
			bad("terminals.attach_listen", d.AttachListen, "must be host:port")
		}
	}
	link := d.Link
	link.ResponseTimeout = d.ResponseTimeout
	if err := link.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: terminals.link: %w", ErrConfig, err))
	}
	seen := make(map[string]int)
	for i, dc := range d.Devices {
		key := fmt.Sprintf("devices[%d]", i)
		if !ValidID(dc.ID) {
			bad(key+".id", dc.ID, "1–32 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
		} else if j, dup := seen[dc.ID]; dup {
			bad(key+".id", dc.ID, fmt.Sprintf("already used by devices[%d]", j))
		} else {
			seen[dc.ID] = i
		}
		if err := dc.DeviceConfig.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s (%s): %w", ErrConfig, key, dc.ID, err))
		}
	}
	return errors.Join(errs...)
}
