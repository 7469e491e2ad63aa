package gateway

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestOfflineConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"defaults", "", ""},
		{"policy_and_keys", "offline:\n  forward_rate: 50\n  window: 4\n  negfile_poll: 1s\n  policy:\n    default:\n      floor_limit: 5000\n    brands:\n      house: {floor_limit: 30000}\n", ""},
		{"bad_window", "offline:\n  window: 5000\n", "offline.window"},
		{"negative_rate", "offline:\n  forward_rate: -1\n", "offline.forward_rate"},
		{"negative_poll", "offline:\n  negfile_poll: -1s\n", "offline.negfile_poll"},
		{"negative_floor", "offline:\n  policy:\n    default:\n      floor_limit: -1\n", "offline.policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			dec := yaml.NewDecoder(strings.NewReader(tt.yaml))
			dec.KnownFields(true)
			if err := dec.Decode(&c); err != nil && tt.yaml != "" {
				t.Fatal(err)
			}
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if o := c.Offline; o.Path != "data/posgate/offline.db" || o.KeyLabel != "at-rest" || o.Window != 16 || o.ForwardRate != 200 || o.NegfilePoll != 5*time.Second {
		t.Fatalf("defaults: %+v", o)
	}
}
