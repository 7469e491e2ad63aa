package center

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSwitchingConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error; none means valid
	}{
		{"defaults_valid", ``, nil},
		{"full_valid", `
c2c: {listen: "127.0.0.1:7600", allow: [{address: 127.0.0.1, head_office: M0000001}]}
switching:
  brand_hosts: [{name: brand, address: "127.0.0.1:7700", timeout: 2s}]
  routes: [{bin_low: "450000", bin_high: "459999", pan_length: 16, destination: brand, standin_txn_limit: 5000}]`, nil},
		{"c2c_without_allow_list", `c2c: {listen: "127.0.0.1:7600"}`, []string{`c2c.allow = "[]": needs at least one entry`}},
		{"c2c_tls_without_files", `c2c: {listen: "127.0.0.1:7600", tls: true}`, []string{"c2c.cert_file", "c2c.key_file", "c2c.client_ca_file"}},
		{"bad_allow_address", `c2c: {allow: [{address: nowhere, head_office: M1}]}`, []string{`c2c.allow[0].address = "nowhere": must be an IP address`}},
		{"bad_host", `switching: {brand_hosts: [{name: on-us, address: x}]}`, []string{"switching.brand_hosts[0].name", "switching.brand_hosts[0].address"}},
		{"duplicate_host", `switching: {brand_hosts: [{name: a, address: "h:1"}, {name: a, address: "h:2"}]}`, []string{"must be unique"}},
		{"bad_route", `switching: {routes: [{bin_low: "45", bin_high: "44", pan_length: 40, destination: nowhere}]}`,
			[]string{"switching.routes[0].bin_low", "switching.routes[0].bin_high", "switching.routes[0].pan_length", "switching.routes[0].destination"}},
		{"bad_acquirer", `switching: {acquirer_id: "12a"}`, []string{`switching.acquirer_id = "12a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(tt.yaml), &c); err != nil {
				t.Fatalf("decode: %v", err)
			}
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	var c Config
	if err := yaml.Unmarshal([]byte("switching: {brand_hosts: [{name: b, address: 'h:1'}]}"), &c); err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if c.Switching.BrandHosts[0].Timeout != Duration(5e9) || c.C2C.MaxInFlight != 64 {
		t.Fatalf("defaults: timeout %v, max in flight %d", c.Switching.BrandHosts[0].Timeout, c.C2C.MaxInFlight)
	}
}
