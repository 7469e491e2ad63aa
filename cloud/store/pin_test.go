package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

// TestCardPIN covers the PIN columns of a card and product on both engines.
// It is long because its subtests share one world (card and product) and
// run in order on it.
func TestCardPIN(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindPrepaid, 0, 0)
		update := func(t *testing.T, f func(tx *store.Tx) error) error {
			t.Helper()
			return st.Update(ctx, f)
		}
		t.Run("no_pin_data_is_not_found", func(t *testing.T) {
			err := update(t, func(tx *store.Tx) error {
				_, err := tx.CardPIN(ctx, c.ID)
				return err
			})
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("CardPIN: %v, want ErrNotFound", err)
			}
			err = update(t, func(tx *store.Tx) error {
				_, err := tx.AddPINTry(ctx, c.ID)
				return err
			})
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("AddPINTry: %v, want ErrNotFound", err)
			}
		})
		t.Run("malformed_pvv_refused", func(t *testing.T) {
			for _, tc := range []struct {
				pvki int
				pvv  string
			}{{10, "1234"}, {-1, "1234"}, {1, "123"}, {1, "12a4"}} {
				if err := update(t, func(tx *store.Tx) error { return tx.SetCardPVV(ctx, c.ID, tc.pvki, tc.pvv) }); err == nil {
					t.Fatalf("SetCardPVV(pvki %d, %d-character PVV): no error", tc.pvki, len(tc.pvv))
				}
			}
		})
		t.Run("tries_count_and_reset", func(t *testing.T) {
			if err := update(t, func(tx *store.Tx) error { return tx.SetCardPVV(ctx, c.ID, 1, "8523") }); err != nil {
				t.Fatalf("SetCardPVV: %v", err)
			}
			for want := 1; want <= 3; want++ {
				var got int
				if err := update(t, func(tx *store.Tx) error {
					var err error
					got, err = tx.AddPINTry(ctx, c.ID)
					return err
				}); err != nil || got != want {
					t.Fatalf("AddPINTry = %d, %v; want %d", got, err, want)
				}
			}
			var p store.CardPIN
			if err := update(t, func(tx *store.Tx) error {
				if err := tx.ResetPINTries(ctx, c.ID); err != nil {
					return err
				}
				var err error
				p, err = tx.CardPIN(ctx, c.ID)
				return err
			}); err != nil {
				t.Fatalf("reset: %v", err)
			}
			if p.Tries != 0 || p.PVKI != 1 || p.PVV != "8523" {
				t.Fatalf("after reset: tries %d, pvki %d, PVV stored %v", p.Tries, p.PVKI, p.PVV == "8523")
			}
			if err := update(t, func(tx *store.Tx) error {
				if _, err := tx.AddPINTry(ctx, c.ID); err != nil {
					return err
				}
				if err := tx.SetCardPVV(ctx, c.ID, 2, "3244"); err != nil {
					return err
				}
				var err error
				p, err = tx.CardPIN(ctx, c.ID)
				return err
			}); err != nil {
				t.Fatalf("new PVV: %v", err)
			}
			if p.Tries != 0 || p.PVKI != 2 || p.PVV != "3244" {
				t.Fatalf("after new PVV: tries %d, pvki %d, PVV replaced %v", p.Tries, p.PVKI, p.PVV == "3244")
			}
		})
		t.Run("product_pvk_label", func(t *testing.T) {
			var label string
			err := update(t, func(tx *store.Tx) error {
				sc, err := tx.Card(ctx, c.ID)
				if err != nil {
					return err
				}
				if label, err = tx.ProductPVKLabel(ctx, sc.ProductID); err != nil || label != "" {
					return err
				}
				if err := tx.SetProductPVKLabel(ctx, sc.ProductID, "pvk-1"); err != nil {
					return err
				}
				label, err = tx.ProductPVKLabel(ctx, sc.ProductID)
				return err
			})
			if err != nil || label != "pvk-1" {
				t.Fatalf("PVK label %q, %v; want pvk-1", label, err)
			}
			err = update(t, func(tx *store.Tx) error { return tx.SetProductPVKLabel(ctx, 1<<40, "x") })
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("SetProductPVKLabel of an unknown product: %v, want ErrNotFound", err)
			}
		})
	})
}
