package forward

import (
	"bytes"
	"context"
	"testing"

	gwstandin "github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
)

var (
	notEnrolledUp = uplinkFunc(func(context.Context, []byte) ([]byte, error) { return nil, ErrNotEnrolled })
)

func TestForwarderStandIn(t *testing.T) {
	tests := []struct {
		name       string
		uplink     uplinkFunc
		loaded     bool
		change     func(*iso93.FinancialRequest)
		want       string
		wantStored bool
	}{
		{"link_down_within_policy_approved", linkDown, true, nil, "000", true},
		{"not_enrolled_within_policy_approved", notEnrolledUp, true, nil, "000", true},
		{"over_floor_limit_declined", linkDown, true, func(r *iso93.FinancialRequest) { r.Amount = 10_001 }, "907", false},
		{"negative_file_hit_declined", linkDown, true, func(r *iso93.FinancialRequest) { r.Fingerprint = blockedFP }, "200", false},
		{"negative_file_hit_first_even_over_floor", linkDown, true, func(r *iso93.FinancialRequest) {
			r.Fingerprint, r.Amount = blockedFP, 50_000
		}, "200", false},
		{"refund_never_offline", linkDown, true, func(r *iso93.FinancialRequest) { r.ProcessingCode = iso93.ProcessingRefund }, "907", false},
		{"no_negative_file_declined", linkDown, false, nil, "907", false},
		{"outcome_unknown_reversed_not_stood_in", outcomeUnknown, true, nil, "911", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, tt.loaded, standin.Policy{})
			f := &Forwarder{Uplink: tt.uplink, Logger: quiet(), Metrics: NewMetrics(), StandIn: &gwstandin.Decider{Store: st}}
			raw := saleWith(t, "000042", tt.change)
			resp, err := f.Handle(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			var r iso93.FinancialResponse
			if err := iso93.UnpackInto(resp, &r); err != nil {
				t.Fatalf("answer: %v", err)
			}
			if string(r.ActionCode) != tt.want {
				t.Fatalf("action %s, want %s", r.ActionCode, tt.want)
			}
			if r.STAN != "000042" || r.IdempotencyKey != "T0000001-000042" {
				t.Fatalf("answer does not echo the request: stan %s key %s", r.STAN, r.IdempotencyKey)
			}
			recs, err := st.Queue().Next(10)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(recs) == 1; got != tt.wantStored || len(recs) > 1 {
				t.Fatalf("%d records stored, want stored=%v", len(recs), tt.wantStored)
			}
			if tt.wantStored {
				rec := recs[0]
				if r.ApprovalCode != rec.ApprovalCode || len(r.ApprovalCode) != 6 {
					t.Fatalf("DE 38 %q, stored approval code %q", r.ApprovalCode, rec.ApprovalCode)
				}
				if !bytes.Equal(rec.Message, raw) || rec.Brand != "visa" || rec.MaskedPAN != "411111******1111" || rec.Amount != 1200 {
					t.Fatalf("stored record %v does not describe the request", rec)
				}
			}
		})
	}
}

// TestForwarderStandInStoreFailure closes the store: Approve fails and the
// terminal is told 907, never approved.
func TestForwarderStandInStoreFailure(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	st.Close()
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), StandIn: &gwstandin.Decider{Store: st}}
	resp, err := f.Handle(t.Context(), sale(t, "000043"))
	if err != nil {
		t.Fatal(err)
	}
	if got := actionOf(t, resp); got != "907" {
		t.Fatalf("action %s with a failed store, want 907", got)
	}
}

// TestForwarderStandInIdempotent repeats one request while offline: the
// same approval code both times and one stored record.
func TestForwarderStandInIdempotent(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), StandIn: &gwstandin.Decider{Store: st}}
	var codes []string
	for range 2 {
		resp, err := f.Handle(t.Context(), sale(t, "000044"))
		if err != nil {
			t.Fatal(err)
		}
		var r iso93.FinancialResponse
		if err := iso93.UnpackInto(resp, &r); err != nil {
			t.Fatal(err)
		}
		codes = append(codes, r.ApprovalCode)
	}
	recs, _ := st.Queue().Next(10)
	if codes[0] != codes[1] || len(recs) != 1 {
		t.Fatalf("approval codes %v, %d records; want one approval", codes, len(recs))
	}
}

// TestForwarderStandInChip follows the card's own offline decision read
// from DE 55: a TC is approved past the floor limit (the terminal applied
// it), an AAC is declined, an ARQC leaves the decision to the policy, and a
// DE 55 that cannot be read is refused as malformed.
func TestForwarderStandInChip(t *testing.T) {
	tests := []struct {
		name     string
		icc      func(t *testing.T) []byte
		amount   int64
		want     string
		wantChip standin.Chip
		stored   bool
	}{
		{"tc_within_floor_approved", func(t *testing.T) []byte { return chipData(t, 0x40) }, 1200, "000", standin.ChipTC, true},
		{"tc_over_floor_approved", func(t *testing.T) []byte { return chipData(t, 0x40) }, 10_001, "000", standin.ChipTC, true},
		{"aac_declined_offline", func(t *testing.T) []byte { return chipData(t, 0x00) }, 1200, standin.ReasonCardDeclined.ActionCode(), 0, false},
		{"arqc_within_floor_policy_approves", func(t *testing.T) []byte { return chipData(t, 0x80) }, 1200, "000", standin.ChipNone, true},
		{"arqc_over_floor_policy_declines", func(t *testing.T) []byte { return chipData(t, 0x80) }, 10_001, standin.ReasonFloorLimit.ActionCode(), 0, false},
		{"no_de55_policy_decides", func(*testing.T) []byte { return nil }, 10_001, standin.ReasonFloorLimit.ActionCode(), 0, false},
		{"rfu_cryptogram_format_error", func(t *testing.T) []byte { return chipData(t, 0xC0) }, 1200, "904", 0, false},
		{"malformed_de55_format_error", func(*testing.T) []byte { return []byte{0x9F, 0x27, 0x05, 0x40} }, 1200, "904", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, true, standin.Policy{})
			f := &Forwarder{Uplink: linkDown, Logger: quiet(), Metrics: NewMetrics(), StandIn: &gwstandin.Decider{Store: st}}
			raw := saleWith(t, "000050", func(r *iso93.FinancialRequest) {
				r.ICCData, r.Amount = tt.icc(t), tt.amount
			})
			resp, err := f.Handle(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := actionOf(t, resp); got != tt.want {
				t.Fatalf("action %s, want %s", got, tt.want)
			}
			recs, err := st.Queue().Next(10)
			if err != nil {
				t.Fatal(err)
			}
			if (len(recs) == 1) != tt.stored || len(recs) > 1 {
				t.Fatalf("%d records stored, want stored=%v", len(recs), tt.stored)
			}
			if tt.stored && recs[0].Chip != tt.wantChip {
				t.Fatalf("stored chip decision %d, want %d", recs[0].Chip, tt.wantChip)
			}
		})
	}
}
