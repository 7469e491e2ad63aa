package authz

import (
	"reflect"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/protocol/iso93"
)

// TestPipelinesWellFormed checks what the runner and the trace rely on:
// in every pipeline the checks before the transaction come first, each
// name appears once, and every check runs something.
func TestPipelinesWellFormed(t *testing.T) {
	for _, p := range []*pipeline{&authorizationPipeline, &financialPipeline, &refundPipeline, &advicePipeline} {
		seen := map[string]bool{}
		inside := false
		for _, c := range p.checks {
			switch {
			case seen[c.name]:
				t.Errorf("pipeline %s: check %q twice", p.name, c.name)
			case c.run == nil:
				t.Errorf("pipeline %s: check %q runs nothing", p.name, c.name)
			case inside && c.phase == beforeTx:
				t.Errorf("pipeline %s: check %q before the transaction after checks inside it", p.name, c.name)
			case c.phase == beforeTx && c.reads&^readTerminal != 0:
				t.Errorf("pipeline %s: check %q before the transaction declares transaction reads", p.name, c.name)
			}
			seen[c.name], inside = true, inside || c.phase == inTx
		}
	}
}

// TestPrefetchDerivedFromChecks pins what a purchase's transaction
// prefetches, derived from its checks' reads: the device counter, the card
// with its account lock, controls and day's total, the merchant, and for
// a 1200 the clearing shard; the ids of the authorization row and of the
// hold (1100) or transfer (1200); the BIN route when the switch routes.
func TestPrefetchDerivedFromChecks(t *testing.T) {
	pan, err := card.ParsePAN("4111111111111111")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 1, 15, 0, 0, time.UTC)
	day := controls.DayStart("392", now)
	for _, tt := range []struct {
		mti    string
		routed bool
	}{{iso93.MTIAuthorizationRequest, false}, {iso93.MTIFinancialRequest, false}, {iso93.MTIAuthorizationRequest, true}, {iso93.MTIFinancialRequest, true}} {
		r := Request{MTI: tt.mti, ProcessingCode: iso93.ProcessingPurchase, Currency: "392", IdempotencyKey: "k", TerminalID: "TERM0001"}
		st := (&Switch{}).newAuth(r)
		st.term = store.Terminal{ID: "TERM0001", MerchantID: "M0000001"}
		st.o = opened{card: cardblock.ClearData{PAN: pan}, device: "dev", counter: 7, fp: "0123456789abcdef0123456789abcdef"}
		st.routed = tt.routed
		want := store.AuthReads{Device: "dev", Counter: 7, Fingerprint: st.o.fp, DayFrom: day, DayTo: day.AddDate(0, 0, 1),
			MerchantID: "M0000001", Reserve: []store.Table{store.TableAuthorizations, store.TableHolds}}
		if tt.mti == iso93.MTIFinancialRequest {
			want.ClearingRefs = ledger.ClearingRefs("M0000001", "392")
			want.Reserve = []store.Table{store.TableAuthorizations, store.TableTransfers}
		}
		if tt.routed {
			want.BINPrefix, want.PANLength = routing.Prefix(pan), 16
		}
		p := pipelineFor(r)
		if got := st.authReads(now, p.inTxReads()); !reflect.DeepEqual(got, want) {
			t.Errorf("MTI %s routed %v: prefetch\n %+v\nwant\n %+v", tt.mti, tt.routed, got, want)
		}
		if got := st.authReads(now, firstLook); !reflect.DeepEqual(got, store.AuthReads{Key: "k", TerminalID: "TERM0001"}) {
			t.Errorf("first look %+v", got)
		}
	}
}
