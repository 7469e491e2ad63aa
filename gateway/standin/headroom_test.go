package standin_test

import (
	"testing"

	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	"github.com/posgate/posgate/gateway/standin"
	policy "github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
)

// TestDecisionCarriesItsTransaction: a stand-in decision comes back with
// the answer it produced, naming its card acceptor, so the POS API ties it
// to the transaction whose exchange it answered (no matching after the
// fact); the acceptor then scopes that device's headroom, and a device
// without one names none.
func TestDecisionCarriesItsTransaction(t *testing.T) {
	st := gatewaytest.OpenStore(t, true, policy.Policy{})
	d := &standin.Decider{Store: st}
	tests := []struct {
		name, stan string
		amount     int64
		want       ecr.OfflineDecision
	}{
		{"approved", "000061", 1200, ecr.OfflineDecision{Approved: true, Reason: "approved", ActionCode: "000"}},
		{"over_floor_declined", "000062", 10_001, ecr.OfflineDecision{Reason: "floor_limit", ActionCode: policy.ReasonFloorLimit.ActionCode()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := gatewaytest.SaleWith(t, tt.stan, func(r *iso93.FinancialRequest) { r.Amount = tt.amount })
			h, err := iso93.Peek(raw)
			if err != nil {
				t.Fatal(err)
			}
			a, err := d.Decide(raw, h)
			if err != nil {
				t.Fatal(err)
			}
			s := a.StandIn
			if s == nil || s.DecidedAt.IsZero() || s.TerminalID != "T0000001" || s.MerchantID != "MERCHANT0000001" {
				t.Fatalf("decision %+v", s)
			}
			got := ecr.OfflineDecision{Approved: s.Approved, Reason: s.Reason, ActionCode: s.ActionCode}
			if got != tt.want || gatewaytest.ActionOf(t, a.Message) != tt.want.ActionCode {
				t.Fatalf("decision %+v answered %s, want %+v", got, gatewaytest.ActionOf(t, a.Message), tt.want)
			}
		})
	}

	view := &standin.Headroom{Store: st}
	h, err := view.Headroom("dev1", &ecr.CardAcceptor{TerminalID: "T0000001", MerchantID: "MERCHANT0000001"})
	if err != nil {
		t.Fatal(err)
	}
	if h.TerminalID != "T0000001" || h.MerchantID == "" || !h.LinkDown || h.ExposureRemaining != policy.DefaultTotalExposure-1200 {
		t.Fatalf("headroom of a device with a stand-in decision: %+v", h)
	}
	if h, _ := view.Headroom("dev2", nil); h.TerminalID != "" || h.MerchantID != "" {
		t.Fatalf("headroom of an unseen device names a card acceptor: %+v", h)
	}
}

// BenchmarkOfflineHeadroom measures the POS headroom read (three bbolt
// read transactions and the policy) that a POS may poll.
func BenchmarkOfflineHeadroom(b *testing.B) {
	st := gatewaytest.OpenStore(b, true, policy.Policy{})
	view := &standin.Headroom{Store: st}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := view.Headroom("dev1", nil); err != nil {
			b.Fatal(err)
		}
	}
}
