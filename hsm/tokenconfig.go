package hsm

import (
	"errors"
	"path/filepath"

	"github.com/posgate/posgate/internal/confkey"
)

// TokenConfig is the hsm section of a daemon's YAML configuration: which
// PKCS#11 token the daemon uses and, for demos and first runs, the SoftHSM2
// token it creates for itself. The daemons embed it (cardcenter as is,
// posgate with its identity key label beside it), so the keys, defaults and
// rules are the same in both; docs/config.md lists them. The zero value of
// each field means the default in its comment, set by WithDefaults.
type TokenConfig struct {
	// Module is the PKCS#11 library. Default DefaultModulePath.
	Module string `yaml:"module"`
	// TokenLabel picks the token (1 to 32 bytes). Default: the daemon's
	// name ("posgate", "cardcenter").
	TokenLabel string `yaml:"token_label"`
	// PIN is the token's user PIN. Default "1234" (demo token only).
	PIN string `yaml:"pin"`
	// SoftHSMDir, when set, is a directory where the daemon creates and
	// uses its own SoftHSM2 token. Default DataDir/hsm; "-" uses the
	// module as it is (the system's SOFTHSM2_CONF, or another module).
	SoftHSMDir string `yaml:"softhsm_dir"`
}

// DemoPIN is the user PIN of a token whose configuration names none; it
// protects nothing and suits demo tokens only.
const DemoPIN = "1234"

// WithDefaults returns c with every zero field set to its default: the
// daemon passes its own token label and its data directory, under which
// the SoftHSM2 token goes (dataDir/hsm).
func (c TokenConfig) WithDefaults(tokenLabel, dataDir string) TokenConfig {
	if c.Module == "" {
		c.Module = DefaultModulePath
	}
	if c.TokenLabel == "" {
		c.TokenLabel = tokenLabel
	}
	if c.PIN == "" {
		c.PIN = DemoPIN
	}
	if c.SoftHSMDir == "" {
		c.SoftHSMDir = filepath.Join(dataDir, "hsm")
	}
	return c
}

// Validate reports every key of c that breaks its rule, each as a
// *confkey.Error named section.key (section is "hsm" in both daemons),
// joined. It opens nothing and never echoes the PIN. Call it on the
// result of WithDefaults.
func (c TokenConfig) Validate(section string) error {
	var errs []error
	if c.Module == "" {
		errs = append(errs, confkey.Bad(section+".module", c.Module, "is required"))
	}
	if c.TokenLabel == "" || len(c.TokenLabel) > 32 {
		errs = append(errs, confkey.Bad(section+".token_label", c.TokenLabel, "must be 1 to 32 bytes"))
	}
	if c.PIN == "" {
		errs = append(errs, confkey.Bad(section+".pin", "", "is required"))
	} else if c.SoftHSMDir != "-" && len(c.PIN) < 4 {
		errs = append(errs, confkey.Bad(section+".pin", "[redacted]", "must be at least 4 characters for a SoftHSM2 token created in softhsm_dir"))
	}
	return errors.Join(errs...)
}

// Open opens the token c names after, unless SoftHSMDir is "-", creating
// (or reusing) a SoftHSM2 token with that label in SoftHSMDir; see
// OpenSoftHSMDir. The caller closes the Token.
func (c TokenConfig) Open() (*Token, error) {
	return OpenSoftHSMDir(c.SoftHSMDir, Config{ModulePath: c.Module, TokenLabel: c.TokenLabel, PIN: c.PIN})
}
