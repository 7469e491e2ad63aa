package hsm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/internal/confkey"
)

func TestTokenConfigWithDefaults(t *testing.T) {
	got := hsm.TokenConfig{}.WithDefaults("posgate", "data/posgate")
	want := hsm.TokenConfig{Module: hsm.DefaultModulePath, TokenLabel: "posgate", PIN: hsm.DemoPIN, SoftHSMDir: "data/posgate/hsm"}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	set := hsm.TokenConfig{Module: "/m.so", TokenLabel: "t", PIN: "p1234", SoftHSMDir: "-"}
	if got := set.WithDefaults("posgate", "data"); got != set {
		t.Fatalf("set fields changed: %+v", got)
	}
}

func TestTokenConfigValidate(t *testing.T) {
	ok := hsm.TokenConfig{}.WithDefaults("cardcenter", "data")
	for _, tc := range []struct {
		name string
		edit func(*hsm.TokenConfig)
		bad  []string // keys reported, in order
	}{
		{"defaults", func(*hsm.TokenConfig) {}, nil},
		{"label_32_bytes", func(c *hsm.TokenConfig) { c.TokenLabel = strings.Repeat("x", 32) }, nil},
		{"label_33_bytes", func(c *hsm.TokenConfig) { c.TokenLabel = strings.Repeat("x", 33) }, []string{"hsm.token_label"}},
		{"no_label", func(c *hsm.TokenConfig) { c.TokenLabel = "" }, []string{"hsm.token_label"}},
		{"no_module", func(c *hsm.TokenConfig) { c.Module = "" }, []string{"hsm.module"}},
		{"no_pin", func(c *hsm.TokenConfig) { c.PIN = "" }, []string{"hsm.pin"}},
		{"short_pin_softhsm_dir", func(c *hsm.TokenConfig) { c.PIN = "123" }, []string{"hsm.pin"}},
		{"short_pin_own_module", func(c *hsm.TokenConfig) { c.PIN, c.SoftHSMDir = "123", "-" }, nil},
		{"every_bad_key", func(c *hsm.TokenConfig) { *c = hsm.TokenConfig{SoftHSMDir: "-"} }, []string{"hsm.module", "hsm.token_label", "hsm.pin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate("hsm")
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var ke *confkey.Error
					if !errors.As(e, &ke) {
						t.Fatalf("error %v is not a *confkey.Error", e)
					}
					got = append(got, ke.Key)
				}
				if c.PIN != "" && strings.Contains(err.Error(), c.PIN) {
					t.Fatalf("Validate echoed the PIN: %v", err)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.bad, ",") {
				t.Fatalf("Validate reported %v, want %v", got, tc.bad)
			}
		})
	}
}
