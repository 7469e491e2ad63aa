// Package daemon holds what every posgate binary shares at start-up: the one
// configuration format (YAML, strict), the logger with the card-data safety
// net, and the metrics endpoint.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/posgate/posgate/p2pe/redact"
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

// NewLogger returns a logger writing to w in the given format ("text" or
// "json") at the given level, wrapped in the card-data safety net that
// removes any Luhn-valid 13–19 digit run.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	return slog.New(redact.NewHandler(h)), nil
}
