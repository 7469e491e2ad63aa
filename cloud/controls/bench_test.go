package controls_test

import (
	"context"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

// BenchmarkCheck measures one Check with every control set (the daily
// limit's sum over 50 approvals today included) inside a read-write
// transaction that locks the account first, as the switch runs it.
func BenchmarkCheck(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st := be.Open(b)
			ctx := context.Background()
			w := cloudtest.NewWorld(b, st)
			c := w.NewCard(b, store.KindCredit, 1_000_000, 0)
			k := store.DefaultControls(c.ID)
			k.PerTxnLimit, k.DailyLimit, k.BlockedMCCs, k.OverseasAllowed, k.ECommerceAllowed = 10_000, 900_000, []string{"7995"}, false, false
			if err := w.Issuer.SetControls(ctx, k, "bench"); err != nil {
				b.Fatal(err)
			}
			if err := st.Update(ctx, func(tx *store.Tx) error {
				for range 50 {
					if err := approval(ctx, tx, c, 100, store.AuthCaptured, time.Time{}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			x := controls.Txn{Amount: 500, Currency: "392", MCC: "5411", MerchantID: cloudtest.Merchant}
			b.ReportAllocs()
			for b.Loop() {
				err := st.Update(ctx, func(tx *store.Tx) error {
					if _, err := tx.LockAccount(ctx, c.AccountID); err != nil {
						return err
					}
					sc, err := tx.Card(ctx, c.ID)
					if err != nil {
						return err
					}
					code, _, err := controls.Check(ctx, tx, sc, x)
					if err == nil && code != "" {
						b.Fatalf("declined %s", code)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
