package forward

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posgate/posgate/protocol/link"
)

// histogram returns the sample count and sum of the histogram name{mti}.
func histogram(t *testing.T, m *Metrics, name, mti string) (uint64, float64) {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "mti" && l.GetValue() == mti {
					return s.GetHistogram().GetSampleCount(), s.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return 0, 0
}

// TestGatewaySecondsExcludesTheUplink runs the forwarder in a synctest
// bubble, whose clock moves only while every goroutine waits: the uplink's
// round trip takes a known fake duration and the forwarder's own work none,
// so posgate_request_seconds holds the round trip and
// posgate_gateway_seconds holds exactly what is left, zero.
func TestGatewaySecondsExcludesTheUplink(t *testing.T) {
	tests := []struct {
		name     string
		uplink   uplinkFunc
		raw      func(t *testing.T) []byte
		mti      string
		wantResp bool
		total    float64 // seconds in posgate_request_seconds
	}{
		{"approved_after_two_seconds", func(ctx context.Context, req []byte) ([]byte, error) {
			time.Sleep(2 * time.Second) // fake time: the center's answer takes 2s
			return approve(ctx, req)
		}, func(t *testing.T) []byte { return sale(t, "000042") }, "1200", true, 2},
		{"link_down_after_one_second", func(context.Context, []byte) ([]byte, error) {
			time.Sleep(time.Second)
			return nil, link.ErrLinkDown
		}, func(t *testing.T) []byte { return sale(t, "000043") }, "1200", true, 1},
		{"unreadable_message", func(ctx context.Context, req []byte) ([]byte, error) {
			t.Error("an unreadable message was sent to the center")
			return approve(ctx, req)
		}, func(*testing.T) []byte { return []byte("garbage!") }, "unknown", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := NewMetrics()
				f := &Forwarder{Uplink: tt.uplink, Logger: quiet(), Metrics: m}
				resp, err := f.Handle(t.Context(), tt.raw(t))
				if (err == nil) != tt.wantResp || (resp != nil) != tt.wantResp {
					t.Fatalf("Handle returned an answer %v, error %v; want an answer %v", resp != nil, err, tt.wantResp)
				}
				n, sum := histogram(t, m, "posgate_gateway_seconds", tt.mti)
				if n != 1 || sum != 0 {
					t.Fatalf("posgate_gateway_seconds{mti=%q}: %d samples, sum %gs; want 1 sample of 0s", tt.mti, n, sum)
				}
				n, sum = histogram(t, m, "posgate_request_seconds", tt.mti)
				if n != 1 || sum != tt.total {
					t.Fatalf("posgate_request_seconds{mti=%q}: %d samples, sum %gs; want 1 sample of %gs", tt.mti, n, sum, tt.total)
				}
			})
		})
	}
}
