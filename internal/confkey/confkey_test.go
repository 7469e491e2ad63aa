package confkey_test

import (
	"errors"
	"testing"

	"github.com/posgate/posgate/internal/confkey"
)

func TestHostPort(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		ok         bool
	}{
		{"loopback", "127.0.0.1:8081", true},
		{"every_address", ":7443", true},
		{"name", "localhost:0", true},
		{"ipv6", "[::1]:7443", true},
		{"no_port", "nocolon", false},
		{"empty", "", false},
		{"bare_ipv6", "::1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := confkey.HostPort("http.listen", tc.addr)
			if (err == nil) != tc.ok {
				t.Fatalf("HostPort(%q) = %v, want ok %v", tc.addr, err, tc.ok)
			}
			if tc.ok {
				return
			}
			var ke *confkey.Error
			if !errors.As(err, &ke) || ke.Key != "http.listen" || ke.Value != tc.addr || ke.Rule != confkey.HostPortRule {
				t.Fatalf("HostPort(%q) = %#v", tc.addr, err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	err := confkey.Bad("log.level", "loud", "must be debug, info, warn or error")
	if got, want := err.Error(), `log.level = "loud": must be debug, info, warn or error`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
