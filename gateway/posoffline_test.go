package gateway

import (
	"testing"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/offline/standin"
)

// TestStandInJournalMatch: a terminal's result is tied to a stand-in
// decision only when STAN, action code and masked PAN agree, and the
// device then reports the decision's card acceptor for its headroom.
func TestStandInJournalMatch(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	sin, view := NewOfflineView(st, nil)
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), Offline: sin}
	if _, err := f.Handle(t.Context(), sale(t, "000061")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    device.TxnResult
		ok   bool
	}{
		{"same_exchange", device.TxnResult{DeviceID: "dev1", STAN: "000061", ActionCode: "000", MaskedPAN: "411111******1111"}, true},
		{"masked_pan_unknown_to_device", device.TxnResult{DeviceID: "dev1", STAN: "000061", ActionCode: "000"}, true},
		{"other_stan", device.TxnResult{DeviceID: "dev1", STAN: "000062", ActionCode: "000", MaskedPAN: "411111******1111"}, false},
		{"other_action", device.TxnResult{DeviceID: "dev1", STAN: "000061", ActionCode: "907", MaskedPAN: "411111******1111"}, false},
		{"other_card", device.TxnResult{DeviceID: "dev1", STAN: "000061", ActionCode: "000", MaskedPAN: "555555******4444"}, false},
		{"no_stan", device.TxnResult{DeviceID: "dev1", ActionCode: "000"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := view.StandIn(tt.r)
			if ok != tt.ok || (ok && (!d.Approved || d.Reason != "approved" || d.ActionCode != "000")) {
				t.Fatalf("StandIn = %+v, %v; want ok=%v", d, ok, tt.ok)
			}
		})
	}
	h, err := view.Headroom("dev1")
	if err != nil {
		t.Fatal(err)
	}
	if h.TerminalID != "T0000001" || h.MerchantID == "" || !h.LinkDown || h.ExposureRemaining != standin.DefaultTotalExposure-1200 {
		t.Fatalf("headroom after the match: %+v", h)
	}
	if h, _ := view.Headroom("dev2"); h.TerminalID != "" || h.MerchantID != "" {
		t.Fatalf("headroom of an unseen device names a card acceptor: %+v", h)
	}
}

// BenchmarkOfflineHeadroom measures the POS headroom read (three bbolt
// read transactions and the policy) that a POS may poll.
func BenchmarkOfflineHeadroom(b *testing.B) {
	st := openStore(b, true, standin.Policy{})
	_, view := NewOfflineView(st, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := view.Headroom("dev1"); err != nil {
			b.Fatal(err)
		}
	}
}
