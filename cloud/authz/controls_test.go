package authz_test

import (
	"context"
	"testing"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/protocol/iso93"
)

// TestCardholderControls runs the cardholder controls through the switch:
// each refusal is recorded with its action code and moves no money.
func TestCardholderControls(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		ctx := context.Background()
		set := func(c cloudtest.Card, edit func(*store.Controls)) {
			t.Helper()
			k := store.DefaultControls(c.ID)
			edit(&k)
			if err := w.Issuer.SetControls(ctx, k, "test"); err != nil {
				t.Fatalf("set controls: %v", err)
			}
		}

		locked := w.NewCard(t, store.KindCredit, 100000, 0)
		set(locked, func(k *store.Controls) { k.Locked = true })
		wantCode(t, authorize(t, w, w.Request("1200", locked, 100)), iso93.ActionNotPermittedToCardholder)

		perTxn := w.NewCard(t, store.KindCredit, 100000, 0)
		set(perTxn, func(k *store.Controls) { k.PerTxnLimit = 5000 })
		wantCode(t, authorize(t, w, w.Request("1200", perTxn, 5001)), iso93.ActionExceedsAmountLimit)
		wantCode(t, authorize(t, w, w.Request("1200", perTxn, 5000)), iso93.ActionApproved)

		daily := w.NewCard(t, store.KindCredit, 100000, 0)
		set(daily, func(k *store.Controls) { k.DailyLimit = 3000 })
		wantCode(t, authorize(t, w, w.Request("1200", daily, 2000)), iso93.ActionApproved)
		wantCode(t, authorize(t, w, w.Request("1100", daily, 1000)), iso93.ActionApproved)
		wantCode(t, authorize(t, w, w.Request("1200", daily, 1)), iso93.ActionExceedsFrequencyLimit)

		noEcom := w.NewCard(t, store.KindCredit, 100000, 0)
		set(noEcom, func(k *store.Controls) { k.ECommerceAllowed = false })
		r := w.Request("1200", noEcom, 100)
		r.POSDataCode = "100050000000" // position 5 '5': electronic order
		wantCode(t, authorize(t, w, r), iso93.ActionNotPermittedToCardholder)
		r = w.Request("1200", noEcom, 100)
		r.POSDataCode = "510101513001" // card present, chip
		wantCode(t, authorize(t, w, r), iso93.ActionApproved)

		before := w.Available(t, locked.AccountID)
		if before != 100000 {
			t.Fatalf("a refused card's account moved: available %d", before)
		}
		cloudtest.CheckLedger(t, st)
	})
}

// TestInactiveCardRefused: a card issued inactive is refused 125 until it
// is activated.
func TestInactiveCardRefused(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindCredit, 100000, 0)
		ctx := context.Background()
		if err := st.Update(ctx, func(tx *store.Tx) error {
			return tx.SetCardStatus(ctx, c.ID, store.CardInactive)
		}); err != nil {
			t.Fatalf("set inactive: %v", err)
		}
		wantCode(t, authorize(t, w, w.Request("1200", c, 100)), iso93.ActionCardNotEffective)
		if err := w.Issuer.Activate(ctx, c.ID, "test"); err != nil {
			t.Fatalf("activate: %v", err)
		}
		wantCode(t, authorize(t, w, w.Request("1200", c, 100)), iso93.ActionApproved)
		cloudtest.CheckLedger(t, st)
	})
}
