package hsm

import (
	"fmt"
	"os"
	"runtime"
)

// DefaultModulePath is the SoftHSM2 PKCS#11 module on Debian and Ubuntu.
const DefaultModulePath = "/usr/lib/softhsm/libsofthsm2.so"

// DefaultMaxDUKPTDevices is the default bound of the AES DUKPT device cache.
const DefaultMaxDUKPTDevices = 4096

// Config selects a token and tunes the connection. The zero value of each
// optional field means its default, given in the field's comment. A Config
// is read by Open and not retained.
type Config struct {
	// ModulePath is the PKCS#11 shared library; default DefaultModulePath.
	ModulePath string
	// TokenLabel selects the token (slot numbers are not stable). Required.
	TokenLabel string
	// PIN is the user PIN. Required.
	PIN string
	// PoolSize is the number of sessions kept open; default 2*GOMAXPROCS.
	// Each operation holds one session for its duration.
	PoolSize int
	// MaxDUKPTDevices bounds the AES DUKPT cache: devices, each keeping
	// at most 5 session objects in the token (its initial key and the 4
	// deepest intermediate keys of its last counter path; about 40 KB of
	// process memory each with SoftHSM 2.6.1, token object memory with a
	// hardware HSM); default DefaultMaxDUKPTDevices. -1 disables the cache.
	MaxDUKPTDevices int
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.ModulePath == "" {
		c.ModulePath = DefaultModulePath
	}
	if c.PoolSize == 0 {
		c.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	if c.MaxDUKPTDevices == 0 {
		c.MaxDUKPTDevices = DefaultMaxDUKPTDevices
	}
	return c
}

// Validate reports every invalid field, with its value and the rule it
// breaks, as a *ConfigError; it returns nil for a usable Config. It checks
// that the module file exists but opens nothing. The PIN is never echoed.
func (c Config) Validate() error {
	c = c.withDefaults()
	var p []string
	if _, err := os.Stat(c.ModulePath); err != nil {
		p = append(p, fmt.Sprintf("ModulePath: %q: must be a readable PKCS#11 module (for SoftHSM2: apt-get install -y softhsm2)", c.ModulePath))
	}
	if c.TokenLabel == "" {
		p = append(p, `TokenLabel: "": required`)
	} else if len(c.TokenLabel) > 32 {
		p = append(p, fmt.Sprintf("TokenLabel: %q: at most 32 bytes", c.TokenLabel))
	}
	if c.PIN == "" {
		p = append(p, "PIN: empty: required")
	}
	if c.PoolSize < 1 || c.PoolSize > 1024 {
		p = append(p, fmt.Sprintf("PoolSize: %d: must be 1..1024 (0 means 2*GOMAXPROCS)", c.PoolSize))
	}
	if c.MaxDUKPTDevices < -1 {
		p = append(p, fmt.Sprintf("MaxDUKPTDevices: %d: must be -1 (no cache), 0 (default %d) or positive", c.MaxDUKPTDevices, DefaultMaxDUKPTDevices))
	}
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}
