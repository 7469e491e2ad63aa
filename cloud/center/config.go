// Package center assembles the cloud center daemon: the QUIC link server and
// its mTLS certificate authority, the authorization switch, the store, the
// PKCS#11 token and the metrics endpoint.
package center

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/internal/confkey"
	"github.com/posgate/posgate/p2pe/redact"
)

// Config is the cardcenter daemon's configuration. The zero value of every
// field means its default, named in the field's comment.
type Config struct {
	// DataDir holds the SQLite file, the SoftHSM token and the link CA.
	// Default "./data/cardcenter".
	DataDir string `yaml:"data_dir"`

	Link  LinkConfig  `yaml:"link"`
	HTTP  HTTPConfig  `yaml:"http"`
	Store StoreConfig `yaml:"store"`
	// HSM selects the center's token (token_label default "cardcenter",
	// softhsm_dir default DataDir/hsm); see hsm.TokenConfig.
	HSM  hsm.TokenConfig  `yaml:"hsm"`
	Keys KeysConfig       `yaml:"keys"`
	Log  redact.LogConfig `yaml:"log"`

	// C2C is the center-to-center ISO 8583 TCP port.
	C2C C2CConfig `yaml:"c2c"`
	// Switching configures BIN routing to brand hosts.
	Switching SwitchingConfig `yaml:"switching"`
}

// C2CConfig configures the center-to-center port (docs/switching.md).
type C2CConfig struct {
	// Listen is the TCP address of the port. Default "" (port off).
	Listen string `yaml:"listen"`
	// TLS turns on TLS with client certificates: the certificate's common
	// name is the head-office id. Default false (plain TCP, allow-list).
	TLS bool `yaml:"tls"`
	// CertFile and KeyFile are the port's PEM certificate and key;
	// required with TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is the PEM bundle head-office client certificates must
	// chain to; required with TLS.
	ClientCAFile string `yaml:"client_ca_file"`
	// Allow maps plain-TCP peers to head offices; required without TLS.
	Allow []C2CAllow `yaml:"allow"`
	// MaxInFlight bounds concurrent requests per connection. Default 64.
	MaxInFlight int `yaml:"max_in_flight"`
}

// C2CAllow admits one plain-TCP peer address as a head office.
type C2CAllow struct {
	// Address is the peer's IP address.
	Address string `yaml:"address"`
	// HeadOffice is the merchant id of the head office.
	HeadOffice string `yaml:"head_office"`
}

// SwitchingConfig configures BIN routing and the brand hosts.
type SwitchingConfig struct {
	// AcquirerID is DE 32 on messages to brand hosts (up to 11 digits).
	// Default "99999".
	AcquirerID string `yaml:"acquirer_id"`
	// BrandHosts are the external hosts BIN routes may name.
	BrandHosts []BrandHostConfig `yaml:"brand_hosts"`
	// Routes are BIN routes added to the store at start when missing
	// (routes may also be added through the store). Default none.
	Routes []RouteConfig `yaml:"routes"`
	// RetryInterval is the pause between repeats of an unanswered 1421 or
	// 1221. Default "10s".
	RetryInterval Duration `yaml:"retry_interval"`
	// MaxAttempts bounds the sends of one reversal or advice. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
}

// BrandHostConfig is one brand host.
type BrandHostConfig struct {
	// Name is what routes use as destination; not "on-us".
	Name string `yaml:"name"`
	// Address is host:port.
	Address string `yaml:"address"`
	// Timeout bounds the wait for an answer. Default "5s".
	Timeout Duration `yaml:"timeout"`
	// TLS turns on TLS to the host (production needs it: the link
	// carries clear PANs). Default false.
	TLS bool `yaml:"tls"`
	// CAFile is the PEM bundle the host's certificate must chain to; empty
	// uses the system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name checked in the host's certificate.
	ServerName string `yaml:"server_name"`
}

// RouteConfig is one BIN route (see store.BINRoute).
type RouteConfig struct {
	BINLow      string `yaml:"bin_low"`
	BINHigh     string `yaml:"bin_high"`
	PANLength   int    `yaml:"pan_length"`
	Destination string `yaml:"destination"`
	// StandInTxnLimit and StandInDailyLimit are in minor units; zero
	// means no stand-in (declined 911/907 when the host does not answer).
	StandInTxnLimit   int64 `yaml:"standin_txn_limit"`
	StandInDailyLimit int64 `yaml:"standin_daily_limit"`
}

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// LinkConfig configures the QUIC link server gateways connect to.
type LinkConfig struct {
	// Listen is the UDP address of the link. Default "127.0.0.1:7443".
	Listen string `yaml:"listen"`
	// Hosts are the names and IP addresses the center's link certificate
	// carries. Default ["127.0.0.1", "localhost"].
	Hosts []string `yaml:"hosts"`
	// MaxStreams bounds concurrent request streams per gateway. Default 256.
	MaxStreams int `yaml:"max_streams"`
}

// HTTPConfig configures the center's HTTP listener (metrics now, the REST API
// later).
type HTTPConfig struct {
	// Listen is the address of /metrics. Default "127.0.0.1:8082".
	Listen string `yaml:"listen"`
}

// StoreConfig selects the database.
type StoreConfig struct {
	// Driver is "sqlite" or "postgres". Default "sqlite".
	Driver string `yaml:"driver"`
	// Path is the SQLite file. Default DataDir/center.db.
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string; required when Driver is
	// "postgres".
	DSN string `yaml:"dsn"`
	// MaxConns bounds the connections: on PostgreSQL the whole pool, on
	// SQLite the readers (writes always use one). 0 means the store's
	// default (16 on PostgreSQL, 4 on SQLite).
	MaxConns int `yaml:"max_conns"`
	// MaxBatch is SQLite group commit's most authorizations per commit
	// (one fsync); 0 means store.DefaultMaxBatch, 1 commits each alone.
	// Ignored on PostgreSQL.
	MaxBatch int `yaml:"max_batch"`
}

// KeysConfig names the token keys the center uses.
type KeysConfig struct {
	// BDK is the AES base derivation key's label. Default "bdk".
	BDK string `yaml:"bdk"`
	// TDESBDK is the label of the legacy TDES DUKPT BDK for readers that
	// still use TDES; it is never bootstrapped (custodians import it with
	// `hsmctl import --kind tdes-bdk`). Without it TDES blocks are refused.
	// Default "bdk-tdes".
	TDESBDK string `yaml:"tdes_bdk"`
	// Vault is the token-vault key's label. Default "vault".
	Vault string `yaml:"vault"`
	// Fingerprint is the PAN fingerprint key's label. Default "fingerprint".
	Fingerprint string `yaml:"fingerprint"`
	// IMKAC is the default label of the issuer master key for EMV
	// application cryptograms (a DES2 derive-only key), used for products
	// that name none (card_products.imk_label). Default "imk-ac".
	IMKAC string `yaml:"imk_ac"`
	// IMKSMI is the label of the issuer master key for secure messaging
	// integrity (a DES2 derive-only key): the MAC of issuer script
	// commands. Default "imk-smi".
	IMKSMI string `yaml:"imk_smi"`
	// IMKSMC is the label of the issuer master key for secure messaging
	// confidentiality (a DES2 derive-only key): enciphered issuer script
	// data. Default "imk-smc".
	IMKSMC string `yaml:"imk_smc"`
	// CVK is the default label of the card verification key pair (CVV2),
	// used for products that name none (card_products.cvk_label). Default
	// "cvk".
	CVK string `yaml:"cvk"`
	// AllowedAIDs lists the EMV application identifiers (tag 84,
	// upper-case hex, 10 to 32 digits) the switch accepts in DE 55; empty
	// accepts any. A request whose AID is absent or not listed is
	// declined 902.
	AllowedAIDs []string `yaml:"allowed_aids"`
	// Bootstrap creates missing keys at start (demo and first run). With
	// false a missing key is an error. Default true.
	Bootstrap *bool `yaml:"bootstrap"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = "./data/cardcenter"
	}
	if c.Link.Listen == "" {
		c.Link.Listen = "127.0.0.1:7443"
	}
	if len(c.Link.Hosts) == 0 {
		c.Link.Hosts = []string{"127.0.0.1", "localhost"}
	}
	if c.Link.MaxStreams == 0 {
		c.Link.MaxStreams = 256
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8082"
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Store.Path == "" {
		c.Store.Path = filepath.Join(c.DataDir, "center.db")
	}
	c.HSM = c.HSM.WithDefaults("cardcenter", c.DataDir)
	if c.Keys.BDK == "" {
		c.Keys.BDK = "bdk"
	}
	if c.Keys.TDESBDK == "" {
		c.Keys.TDESBDK = "bdk-tdes"
	}
	if c.Keys.Vault == "" {
		c.Keys.Vault = "vault"
	}
	if c.Keys.Fingerprint == "" {
		c.Keys.Fingerprint = "fingerprint"
	}
	if c.Keys.IMKAC == "" {
		c.Keys.IMKAC = "imk-ac"
	}
	if c.Keys.IMKSMI == "" {
		c.Keys.IMKSMI = "imk-smi"
	}
	if c.Keys.IMKSMC == "" {
		c.Keys.IMKSMC = "imk-smc"
	}
	if c.Keys.CVK == "" {
		c.Keys.CVK = "cvk"
	}
	if c.Keys.Bootstrap == nil {
		t := true
		c.Keys.Bootstrap = &t
	}
	c.Log = c.Log.WithDefaults()
	if c.C2C.MaxInFlight == 0 {
		c.C2C.MaxInFlight = 64
	}
	if c.Switching.AcquirerID == "" {
		c.Switching.AcquirerID = "99999"
	}
	if c.Switching.RetryInterval == 0 {
		c.Switching.RetryInterval = Duration(10 * time.Second)
	}
	if c.Switching.MaxAttempts == 0 {
		c.Switching.MaxAttempts = 10
	}
	hosts := slices.Clone(c.Switching.BrandHosts)
	for i := range hosts {
		if hosts[i].Timeout == 0 {
			hosts[i].Timeout = Duration(5 * time.Second)
		}
	}
	c.Switching.BrandHosts = hosts
	return c
}

// Validate sets the defaults on c and reports every key that breaks its
// rule, each with its name, value and rule.
func (c *Config) Validate() error {
	*c = c.WithDefaults()
	var errs []error
	bad := func(key string, val any, rule string) {
		errs = append(errs, confkey.Bad(key, val, rule))
	}
	errs = append(errs, confkey.HostPort("link.listen", c.Link.Listen))
	if c.Link.MaxStreams < 1 || c.Link.MaxStreams > 65535 {
		bad("link.max_streams", c.Link.MaxStreams, "must be between 1 and 65535")
	}
	errs = append(errs, confkey.HostPort("http.listen", c.HTTP.Listen))
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSN == "" {
			bad("store.dsn", c.Store.DSN, "is required when store.driver is postgres")
		}
	default:
		bad("store.driver", c.Store.Driver, "must be sqlite or postgres")
	}
	if c.Store.MaxConns < 0 || c.Store.MaxConns > 1000 {
		bad("store.max_conns", c.Store.MaxConns, "must be between 0 (default) and 1000")
	}
	if c.Store.MaxBatch < 0 || c.Store.MaxBatch > 10000 {
		bad("store.max_batch", c.Store.MaxBatch, "must be between 0 (default) and 10000")
	}
	for _, k := range []struct{ name, val string }{{"keys.bdk", c.Keys.BDK}, {"keys.tdes_bdk", c.Keys.TDESBDK}, {"keys.vault", c.Keys.Vault}, {"keys.fingerprint", c.Keys.Fingerprint}, {"keys.imk_ac", c.Keys.IMKAC}, {"keys.imk_smi", c.Keys.IMKSMI}, {"keys.imk_smc", c.Keys.IMKSMC}, {"keys.cvk", c.Keys.CVK}} {
		if len(k.val) > 64 {
			bad(k.name, k.val, "token labels are at most 64 characters")
		}
	}
	for _, a := range c.Keys.AllowedAIDs {
		if len(a) < 10 || len(a) > 32 || len(a)%2 != 0 || strings.ToUpper(a) != a || !isHex(a) {
			bad("keys.allowed_aids", a, "an AID is 10 to 32 upper-case hex digits, an even number")
		}
	}
	c.validateSwitching(bad)
	errs = append(errs, c.HSM.Validate("hsm"), c.Log.Validate("log"))
	return errors.Join(errs...)
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// validateSwitching checks the c2c and switching keys.
func (c *Config) validateSwitching(bad func(key string, val any, rule string)) {
	cc := c.C2C
	if cc.Listen != "" {
		if _, _, err := net.SplitHostPort(cc.Listen); err != nil {
			bad("c2c.listen", cc.Listen, confkey.HostPortRule)
		}
		if cc.TLS {
			for _, k := range []struct{ name, val string }{{"c2c.cert_file", cc.CertFile}, {"c2c.key_file", cc.KeyFile}, {"c2c.client_ca_file", cc.ClientCAFile}} {
				if k.val == "" {
					bad(k.name, k.val, "is required when c2c.tls is true")
				}
			}
		} else if len(cc.Allow) == 0 {
			bad("c2c.allow", "[]", "needs at least one entry when c2c.tls is false")
		}
	}
	for i, a := range cc.Allow {
		if net.ParseIP(a.Address) == nil {
			bad(fmt.Sprintf("c2c.allow[%d].address", i), a.Address, "must be an IP address")
		}
		if a.HeadOffice == "" || len(a.HeadOffice) > 32 {
			bad(fmt.Sprintf("c2c.allow[%d].head_office", i), a.HeadOffice, "must be 1 to 32 characters")
		}
	}
	if cc.MaxInFlight < 1 || cc.MaxInFlight > 4096 {
		bad("c2c.max_in_flight", cc.MaxInFlight, "must be between 1 and 4096")
	}
	sw := c.Switching
	if !digitsOnly(sw.AcquirerID) || len(sw.AcquirerID) > 11 {
		bad("switching.acquirer_id", sw.AcquirerID, "must be 1 to 11 digits")
	}
	if sw.RetryInterval < 0 {
		bad("switching.retry_interval", time.Duration(sw.RetryInterval), "must not be negative")
	}
	if sw.MaxAttempts < 1 || sw.MaxAttempts > 1000 {
		bad("switching.max_attempts", sw.MaxAttempts, "must be between 1 and 1000")
	}
	names := map[string]bool{}
	for i, h := range sw.BrandHosts {
		key := fmt.Sprintf("switching.brand_hosts[%d]", i)
		switch {
		case h.Name == "" || len(h.Name) > 32 || h.Name == "on-us":
			bad(key+".name", h.Name, "must be 1 to 32 characters and not on-us")
		case names[h.Name]:
			bad(key+".name", h.Name, "must be unique")
		}
		names[h.Name] = true
		if _, _, err := net.SplitHostPort(h.Address); err != nil {
			bad(key+".address", h.Address, confkey.HostPortRule)
		}
		if h.Timeout <= 0 || time.Duration(h.Timeout) > 5*time.Minute {
			bad(key+".timeout", time.Duration(h.Timeout), "must be above 0 and at most 5m")
		}
		if !h.TLS && (h.CAFile != "" || h.ServerName != "") {
			bad(key+".ca_file", h.CAFile, "ca_file and server_name need tls: true")
		}
	}
	for i, r := range sw.Routes {
		key := fmt.Sprintf("switching.routes[%d]", i)
		if len(r.BINLow) < 6 || len(r.BINLow) > 11 || !digitsOnly(r.BINLow) {
			bad(key+".bin_low", r.BINLow, "must be 6 to 11 digits")
		}
		if len(r.BINHigh) != len(r.BINLow) || !digitsOnly(r.BINHigh) || r.BINHigh < r.BINLow {
			bad(key+".bin_high", r.BINHigh, "must be digits of bin_low's length, not below bin_low")
		}
		if r.PANLength < 12 || r.PANLength > 19 || r.PANLength <= len(r.BINLow) {
			bad(key+".pan_length", r.PANLength, "must be 12 to 19 and longer than the BIN")
		}
		if r.Destination != "on-us" && !names[r.Destination] {
			bad(key+".destination", r.Destination, "must be on-us or the name of a brand host")
		}
		if r.StandInTxnLimit < 0 || r.StandInDailyLimit < 0 {
			bad(key+".standin_txn_limit", r.StandInTxnLimit, "stand-in limits must not be negative")
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
