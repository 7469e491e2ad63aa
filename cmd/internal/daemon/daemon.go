// Package daemon holds what every posgate daemon shares at start-up: the one
// configuration format (YAML, strict, validated before anything opens). The
// logger with the card-data safety net is redact.NewLogger; the config
// sections both daemons share are hsm.TokenConfig and redact.LogConfig.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// Validator is a configuration that can check itself. Validate reports every
// bad key with its name, value and rule.
type Validator interface {
	Validate() error
}

// LoadConfig decodes the YAML file at path into cfg, refusing unknown keys,
// and then validates it. An empty path leaves cfg at its embedded defaults
// and only validates. Nothing is opened besides the file itself.
func LoadConfig(path string, cfg Validator) error {
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	return nil
}

func displayPath(p string) string {
	if p == "" {
		return "(embedded defaults)"
	}
	return p
}
