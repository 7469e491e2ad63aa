package gateway

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/posgate/posgate/offline/hsmseal"
	"github.com/posgate/posgate/offline/standin"
)

// OfflineConfig configures the offline store: stand-in decisions while the
// center cannot be asked, the store-and-forward queue of offline approvals
// and the negative-file sync (docs/offline.md).
type OfflineConfig struct {
	// Path is the bbolt file. Default DataDir/offline.db.
	Path string `yaml:"path"`
	// KeyLabel is the token label of the AES-256 at-rest key that seals
	// stored approvals; it is generated in the token at start when missing.
	// Default "at-rest".
	KeyLabel string `yaml:"key_label"`
	// Policy is the stand-in policy (docs/offline.md lists its keys); the
	// zero value means every default.
	Policy standin.Policy `yaml:"policy"`
	// ForwardRate caps the advices sent per second, so forwarding a backlog
	// does not starve live sales. Default 200.
	ForwardRate float64 `yaml:"forward_rate"`
	// Window is how many advices are in flight at once. Default 16.
	Window int `yaml:"window"`
	// NegfilePoll is the time between negative-file syncs while the link is
	// up (one also runs at every sign-on). Default 5s.
	NegfilePoll time.Duration `yaml:"negfile_poll"`
	// PurgeAfter is how long accepted advices are kept before they are
	// deleted from the file. Default 168h (7 days).
	PurgeAfter time.Duration `yaml:"purge_after"`
}

func (c OfflineConfig) withDefaults(dataDir string) OfflineConfig {
	if c.Path == "" {
		c.Path = filepath.Join(dataDir, "offline.db")
	}
	if c.KeyLabel == "" {
		c.KeyLabel = hsmseal.DefaultLabel
	}
	if c.ForwardRate == 0 {
		c.ForwardRate = 200
	}
	if c.Window == 0 {
		c.Window = 16
	}
	if c.NegfilePoll == 0 {
		c.NegfilePoll = 5 * time.Second
	}
	if c.PurgeAfter == 0 {
		c.PurgeAfter = 7 * 24 * time.Hour
	}
	return c
}

// validate reports every bad offline key of a config with defaults applied.
func (c OfflineConfig) validate() []error {
	var errs []error
	bad := func(key string, val any, rule string) {
		errs = append(errs, fmt.Errorf("offline.%s = %q: %s", key, fmt.Sprint(val), rule))
	}
	if c.ForwardRate < 0 {
		bad("forward_rate", c.ForwardRate, "must be a positive number of advices per second")
	}
	if c.Window < 0 || c.Window > 1024 {
		bad("window", c.Window, "must be 1 to 1024")
	}
	if c.NegfilePoll < 0 {
		bad("negfile_poll", c.NegfilePoll, "must be a positive duration")
	}
	if c.PurgeAfter < 0 {
		bad("purge_after", c.PurgeAfter, "must be a positive duration")
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("offline.policy: %w", err))
	}
	return errs
}
