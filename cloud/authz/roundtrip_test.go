package authz_test

import (
	"context"
	"testing"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/protocol/iso93"
)

// TestRoundTripsPerAuthorization pins how many round trips to PostgreSQL
// an approved authorization costs (docs/storage.md): the idempotency-key
// and terminal lookup (one batch, outside a transaction), then the
// transaction's prefetch with BEGIN (with the BIN route when routing,
// docs/authorization.md) and its writes with COMMIT. SQLite runs
// in process and counts none. A repeat is answered from the first lookup.
func TestRoundTripsPerAuthorization(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		for _, routed := range []bool{false, true} {
			want := int64(3)
			if routed {
				// The center's BIN routing lookup rides in the
				// first batch.
				w.Switch.Router = &routing.Router{Store: st}
			}
			if st.Dialect() == store.SQLite {
				want = 0
			}
			roundTrips(t, w, st, want)
		}
		cloudtest.CheckLedger(t, st)
	})
}

func roundTrips(t *testing.T, w *cloudtest.World, st *store.Store, want int64) {
	t.Helper()
	for _, mti := range []string{iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest} {
		c := w.NewCard(t, store.KindCredit, 100_000, 0)
		// The first sale at the merchant creates its clearing
		// shards; count the ones after.
		for i := range 3 {
			r := w.Request(mti, c, 100)
			before := st.RoundTrips()
			resp, err := w.Switch.Authorize(context.Background(), r)
			if err != nil || resp.ActionCode != iso93.ActionApproved {
				t.Fatalf("MTI %s: authorize: %+v, %v", mti, resp, err)
			}
			if got := st.RoundTrips() - before; i > 0 && got != want {
				t.Errorf("MTI %s: approved in %d round trips, want %d", mti, got, want)
			}
			before = st.RoundTrips()
			again, err := w.Switch.Authorize(context.Background(), r)
			if err != nil || !sameResponse(again, resp) {
				t.Fatalf("MTI %s: repeat answered %+v, %v; first %+v", mti, again, err, resp)
			}
			if got, max := st.RoundTrips()-before, min(want, 1); got != max {
				t.Errorf("MTI %s: repeat took %d round trips, want %d", mti, got, max)
			}
		}
	}
}
