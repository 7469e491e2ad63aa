package routing_test

import (
	"errors"
	"testing"

	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/protocol/brandspec"
)

func TestMatchKey(t *testing.T) {
	tests := []struct {
		name    string
		mti     string
		fields  map[int]string
		want    string
		wantErr bool
	}{
		{"request", "1200", map[int]string{7: "1124101500", 11: "000001", 41: "TERM0001"}, "12|TERM0001|000001|1124101500", false},
		{"response_matches_request", "1210", map[int]string{7: "1124101500", 11: "000001", 41: "TERM0001", 39: "000"}, "12|TERM0001|000001|1124101500", false},
		{"network_without_terminal", "1804", map[int]string{7: "1124101500", 11: "000002"}, "18||000002|1124101500", false},
		{"no_transmission_time", "1100", map[int]string{11: "000001"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := brandspec.NewMessage(tt.mti)
			for id, v := range tt.fields {
				if err := m.Field(id, v); err != nil {
					t.Fatal(err)
				}
			}
			got, err := routing.MatchKey(m)
			if tt.wantErr {
				if !errors.Is(err, routing.ErrNoMatchKey) {
					t.Fatalf("err %v, want ErrNoMatchKey", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("MatchKey = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
