package redact

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/posgate/posgate/internal/confkey"
)

// LogConfig is the log section of a daemon's YAML configuration, the same
// in every daemon (docs/config.md). The zero value of each field means the
// default in its comment, set by WithDefaults.
type LogConfig struct {
	// Format is "text" or "json". Default "text".
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
}

// WithDefaults returns c with every zero field set to its default.
func (c LogConfig) WithDefaults() LogConfig {
	if c.Format == "" {
		c.Format = "text"
	}
	if c.Level == "" {
		c.Level = "info"
	}
	return c
}

// Validate reports every key of c that breaks its rule, each as a
// *confkey.Error named section.key (section is "log" in every daemon),
// joined. Call it on the result of WithDefaults.
func (c LogConfig) Validate(section string) error {
	var errs []error
	if _, err := parseFormat(c.Format); err != nil {
		errs = append(errs, confkey.Bad(section+".format", c.Format, "must be text or json"))
	}
	if _, err := parseLevel(c.Level); err != nil {
		errs = append(errs, confkey.Bad(section+".level", c.Level, "must be debug, info, warn or error"))
	}
	return errors.Join(errs...)
}

// NewLogger returns a logger writing to w in c's format at c's level
// (empty fields take their defaults), wrapped in the card-data safety net
// (NewHandler) that removes any Luhn-valid 13–19 digit run.
func NewLogger(w io.Writer, c LogConfig) (*slog.Logger, error) {
	c = c.WithDefaults()
	lv, err := parseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	format, err := parseFormat(c.Format)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(NewHandler(h)), nil
}

func parseLevel(level string) (slog.Level, error) {
	switch level {
	case "debug", "info", "warn", "error":
	default:
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	var lv slog.Level
	err := lv.UnmarshalText([]byte(strings.ToUpper(level)))
	return lv, err
}

func parseFormat(format string) (string, error) {
	switch format {
	case "text", "json":
		return format, nil
	}
	return "", fmt.Errorf("log format %q: want text or json", format)
}
