package advice

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	gwstandin "github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

var (
	openStore = gatewaytest.OpenStore
	saleWith  = gatewaytest.SaleWith
	linkDown  = gatewaytest.LinkDown
	quiet     = gatewaytest.Quiet
)

// approveOffline stores n stand-in approvals through the forwarder.
func approveOffline(t *testing.T, st *offline.Store, n int) map[string]string {
	t.Helper()
	f := &forward.Forwarder{Uplink: linkDown, Logger: quiet(), StandIn: &gwstandin.Decider{Store: st}}
	codes := map[string]string{}
	for i := range n {
		stan := fmt.Sprintf("%06d", 100+i)
		raw := saleWith(t, stan, func(r *iso93.FinancialRequest) {
			r.Fingerprint = fmt.Sprintf("%032x", 1000+i) // distinct cards: no velocity limit
		})
		resp, err := f.Handle(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		var r iso93.FinancialResponse
		if err := iso93.UnpackInto(resp, &r); err != nil || r.ActionCode != iso93.ActionApproved {
			t.Fatalf("offline sale %d: %s %v", i, r.ActionCode, err)
		}
		codes[r.IdempotencyKey] = r.ApprovalCode
	}
	return codes
}

func TestAdviceForwarder(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	codes := approveOffline(t, st, 20)
	center := &gatewaytest.AdviceCenter{Reject: map[string]bool{"T0000001-000105": true}, Down: true}
	a := &Forwarder{Queue: st.Queue(), Uplink: center, Window: 4, Rate: 10_000, Logger: quiet()}

	// The link drops with the first window in flight: nothing is answered,
	// the records stay queued and go again as repeats.
	if n, err := a.Pass(t.Context()); n != 0 || !errors.Is(err, link.ErrOutcomeUnknown) {
		t.Fatalf("pass over a dropped link: %d answered, %v", n, err)
	}
	center.Down = false
	n, err := a.Pass(t.Context())
	if err != nil || n != 20 {
		t.Fatalf("pass: %d answered, %v; want 20", n, err)
	}
	if left, _ := st.Queue().Next(100); len(left) != 0 {
		t.Fatalf("%d records still queued", len(left))
	}
	rej, err := st.Queue().Rejected()
	if err != nil || len(rej) != 1 || rej[0].IdempotencyKey != "T0000001-000105" || rej[0].Action != "208" {
		t.Fatalf("rejected list %v, %v", rej, err)
	}
	keys := map[string]int{}
	for i, adv := range center.Seen {
		keys[adv.IdempotencyKey]++
		want := iso93.MTIAdvice
		if i < 4 {
			want = iso93.MTIAdviceRepeat // the first window was sent before the drop
		}
		if center.MTIs[i] != want {
			t.Errorf("advice %d is a %s, want %s", i, center.MTIs[i], want)
		}
		if adv.FunctionCode != iso93.FunctionPreviousApproval || adv.ReasonCode != iso93.ReasonStandIn ||
			adv.ApprovalCode != codes[adv.IdempotencyKey] || adv.Amount != 1200 || !strings.HasPrefix(adv.MaskedPAN, "411111") {
			t.Errorf("advice %s: DE 24 %s, DE 25 %s, DE 38 %s (terminal got %s)", adv.IdempotencyKey, adv.FunctionCode, adv.ReasonCode, adv.ApprovalCode, codes[adv.IdempotencyKey])
		}
	}
	if len(keys) != 20 || len(center.Seen) != 20 {
		t.Fatalf("center saw %d advices for %d keys, want 20 each", len(center.Seen), len(keys))
	}
	st2, _ := st.Queue().Stats()
	if st2.Exposure != 0 || st2.Accepted.Count != 19 || st2.Rejected.Count != 1 {
		t.Fatalf("stats after forwarding: %+v", st2)
	}
}
