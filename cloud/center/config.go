// Package center assembles the cloud center daemon: the QUIC link server and
// its mTLS certificate authority, the authorization switch, the store, the
// PKCS#11 token and the metrics endpoint.
package center

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
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
	HSM   HSMConfig   `yaml:"hsm"`
	Keys  KeysConfig  `yaml:"keys"`
	Log   LogConfig   `yaml:"log"`
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
}

// HSMConfig selects the center's PKCS#11 token.
type HSMConfig struct {
	// Module is the PKCS#11 library. Default /usr/lib/softhsm/libsofthsm2.so.
	Module string `yaml:"module"`
	// TokenLabel picks the token. Default "cardcenter".
	TokenLabel string `yaml:"token_label"`
	// PIN is the token's user PIN. Default "1234" (demo token only).
	PIN string `yaml:"pin"`
	// SoftHSMDir, when set, is where the center creates and uses its own
	// SoftHSM2 token. Default DataDir/hsm; "-" uses the module as is.
	SoftHSMDir string `yaml:"softhsm_dir"`
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
	// Bootstrap creates missing keys at start (demo and first run). With
	// false a missing key is an error. Default true.
	Bootstrap *bool `yaml:"bootstrap"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Format is "text" or "json". Default "text".
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
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
	if c.HSM.Module == "" {
		c.HSM.Module = "/usr/lib/softhsm/libsofthsm2.so"
	}
	if c.HSM.TokenLabel == "" {
		c.HSM.TokenLabel = "cardcenter"
	}
	if c.HSM.PIN == "" {
		c.HSM.PIN = "1234"
	}
	if c.HSM.SoftHSMDir == "" {
		c.HSM.SoftHSMDir = filepath.Join(c.DataDir, "hsm")
	}
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
	if c.Keys.Bootstrap == nil {
		t := true
		c.Keys.Bootstrap = &t
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	return c
}

// Validate sets the defaults on c and reports every key that breaks its
// rule, each with its name, value and rule.
func (c *Config) Validate() error {
	*c = c.WithDefaults()
	var errs []error
	bad := func(key string, val any, rule string) {
		errs = append(errs, fmt.Errorf("%s = %q: %s", key, fmt.Sprint(val), rule))
	}
	if _, _, err := net.SplitHostPort(c.Link.Listen); err != nil {
		bad("link.listen", c.Link.Listen, "must be host:port")
	}
	if c.Link.MaxStreams < 1 || c.Link.MaxStreams > 65535 {
		bad("link.max_streams", c.Link.MaxStreams, "must be between 1 and 65535")
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", c.HTTP.Listen, "must be host:port")
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSN == "" {
			bad("store.dsn", c.Store.DSN, "is required when store.driver is postgres")
		}
	default:
		bad("store.driver", c.Store.Driver, "must be sqlite or postgres")
	}
	for _, k := range []struct{ name, val string }{{"keys.bdk", c.Keys.BDK}, {"keys.tdes_bdk", c.Keys.TDESBDK}, {"keys.vault", c.Keys.Vault}, {"keys.fingerprint", c.Keys.Fingerprint}} {
		if len(k.val) > 64 {
			bad(k.name, k.val, "token labels are at most 64 characters")
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", c.Log.Format, "must be text or json")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, "must be debug, info, warn or error")
	}
	return errors.Join(errs...)
}
