package redact_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/internal/confkey"
	"github.com/posgate/posgate/p2pe/redact"
)

func TestLoggerDropsPANs(t *testing.T) {
	var buf bytes.Buffer
	for _, format := range []string{"text", "json"} {
		buf.Reset()
		log, err := redact.NewLogger(&buf, redact.LogConfig{Format: format, Level: "debug"})
		if err != nil {
			t.Fatal(err)
		}
		log.Info("card 4111111111111111 declined", "pan", "5555555555554444", "track", "3530111333300000=30122010000000000000")
		log.Debug("spaced", "v", "4111 1111 1111 1111")
		out := buf.String()
		for _, pan := range []string{"4111111111111111", "5555555555554444", "3530111333300000", "4111 1111 1111 1111"} {
			if strings.Contains(out, pan) {
				t.Errorf("%s log kept a PAN (%d digits)", format, len(pan))
			}
		}
		if !strings.Contains(out, "declined") {
			t.Errorf("%s log lost the message", format)
		}
	}
	if _, err := redact.NewLogger(&buf, redact.LogConfig{Format: "xml", Level: "info"}); err == nil {
		t.Error("log format xml accepted")
	}
	if _, err := redact.NewLogger(&buf, redact.LogConfig{Format: "text", Level: "loud"}); err == nil {
		t.Error("log level loud accepted")
	}
}

func TestLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	log, err := redact.NewLogger(&buf, redact.LogConfig{}) // defaults: text, info
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "msg=shown") {
		t.Fatalf("default logger wrote %q; want text at info", out)
	}
}

func TestLogConfig(t *testing.T) {
	if got := (redact.LogConfig{}).WithDefaults(); got != (redact.LogConfig{Format: "text", Level: "info"}) {
		t.Fatalf("defaults = %+v, want text and info", got)
	}
	for _, tc := range []struct {
		name string
		cfg  redact.LogConfig
		bad  []string // keys reported, in order
	}{
		{"defaults", redact.LogConfig{}.WithDefaults(), nil},
		{"json_debug", redact.LogConfig{Format: "json", Level: "debug"}, nil},
		{"bad_format", redact.LogConfig{Format: "xml", Level: "warn"}, []string{"log.format"}},
		{"bad_level", redact.LogConfig{Format: "text", Level: "loud"}, []string{"log.level"}},
		{"upper_case_level", redact.LogConfig{Format: "text", Level: "INFO"}, []string{"log.level"}},
		{"both_bad", redact.LogConfig{Format: "yaml", Level: "trace"}, []string{"log.format", "log.level"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("log")
			var got []string
			for _, e := range unjoin(err) {
				var ke *confkey.Error
				if !errors.As(e, &ke) {
					t.Fatalf("error %v is not a *confkey.Error", e)
				}
				got = append(got, ke.Key)
			}
			if strings.Join(got, ",") != strings.Join(tc.bad, ",") {
				t.Fatalf("Validate reported %v, want %v", got, tc.bad)
			}
		})
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
