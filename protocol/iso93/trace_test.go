package iso93_test

import (
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/iso93"
)

func TestNextSTAN(t *testing.T) {
	tests := []struct {
		name string
		n    uint32
		want uint32
	}{
		{"zero", 0, 1},
		{"first", 1, 2},
		{"before_max", iso93.MaxSTAN - 1, iso93.MaxSTAN},
		{"wraps_at_max", iso93.MaxSTAN, 1},
		{"counter_past_max", 2*iso93.MaxSTAN + 4, 5},
		{"uint32_max", ^uint32(0), ^uint32(0)%iso93.MaxSTAN + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := iso93.NextSTAN(tt.n); got != tt.want || got < 1 || got > iso93.MaxSTAN {
				t.Fatalf("NextSTAN(%d) = %d, want %d", tt.n, got, tt.want)
			}
		})
	}
	if got := iso93.FormatSTAN(42); got != "000042" {
		t.Fatalf("FormatSTAN(42) = %q", got)
	}
}

func TestDateTimeElements(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	at := time.Date(2026, 11, 24, 1, 2, 3, 0, tokyo)
	if got, want := iso93.TransmissionTime(at), "1123160203"; got != want {
		t.Fatalf("TransmissionTime = %q, want %q (UTC)", got, want)
	}
	if got, want := iso93.LocalTime(at), "261124010203"; got != want {
		t.Fatalf("LocalTime = %q, want %q (the time's own zone)", got, want)
	}
	back, err := iso93.ParseLocalTime("261124010203")
	if err != nil || !back.Equal(time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC)) {
		t.Fatalf("ParseLocalTime = %v, %v", back, err)
	}
	if _, err := iso93.ParseLocalTime("2611240102"); err == nil {
		t.Fatal("ParseLocalTime accepted a short value")
	}
}
