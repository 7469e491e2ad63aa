package ledger_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

// accounts creates a funding account and one cardholder account of the
// kind with the limits, in JPY.
func accounts(t *testing.T, st *store.Store, kind store.AccountKind, line, overdraft int64) (funding, holder int64) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if funding, err = ledger.IssuerFunding(ctx, tx, "392"); err != nil {
			return err
		}
		holder, err = tx.InsertAccount(ctx, store.Account{Kind: kind, Currency: "392", CreditLine: line, Overdraft: overdraft})
		return err
	})
	if err != nil {
		t.Fatalf("create accounts: %v", err)
	}
	return funding, holder
}

func update(st *store.Store, fn func(ctx context.Context, tx *store.Tx) error) error {
	ctx := context.Background()
	return st.Update(ctx, func(tx *store.Tx) error { return fn(ctx, tx) })
}

func account(t *testing.T, st *store.Store, id int64) store.Account {
	t.Helper()
	var a store.Account
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		a, err = tx.Account(context.Background(), id)
		return err
	}); err != nil {
		t.Fatalf("read account: %v", err)
	}
	return a
}

func check(t *testing.T, st *store.Store) ledger.Report {
	t.Helper()
	r, err := ledger.Check(context.Background(), st)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return r
}

func TestAvailable(t *testing.T) {
	tests := []struct {
		name string
		a    store.Account
		want int64
	}{
		{"credit_open_to_buy", store.Account{Kind: store.AccountCredit, Balance: -3000, CreditLine: 10000, Held: 500}, 6500},
		{"debit_with_overdraft", store.Account{Kind: store.AccountDebit, Balance: 1000, Overdraft: 500, Held: 200}, 1300},
		{"prepaid", store.Account{Kind: store.AccountPrepaid, Balance: 1000, Held: 1000}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ledger.Available(tt.a); got != tt.want {
				t.Fatalf("Available = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPost(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		funding, holder := accounts(t, st, store.AccountPrepaid, 0, 0)
		tests := []struct {
			name     string
			postings []store.Posting
			want     error
		}{
			{"balanced", []store.Posting{{AccountID: funding, Amount: -1000, Currency: "392"}, {AccountID: holder, Amount: 1000, Currency: "392"}}, nil},
			{"unbalanced", []store.Posting{{AccountID: funding, Amount: -1000, Currency: "392"}, {AccountID: holder, Amount: 999, Currency: "392"}}, ledger.ErrUnbalanced},
			{"one_leg", []store.Posting{{AccountID: holder, Amount: 0, Currency: "392"}}, ledger.ErrUnbalanced},
			{"zero_leg", []store.Posting{{AccountID: funding, Amount: 0, Currency: "392"}, {AccountID: holder, Amount: 0, Currency: "392"}}, ledger.ErrAmount},
			{"wrong_currency", []store.Posting{{AccountID: funding, Amount: -1, Currency: "840"}, {AccountID: holder, Amount: 1, Currency: "840"}}, ledger.ErrCurrency},
			{"overspend", []store.Posting{{AccountID: holder, Amount: -1001, Currency: "392"}, {AccountID: funding, Amount: 1001, Currency: "392"}}, ledger.ErrInsufficientFunds},
			{"spend_all", []store.Posting{{AccountID: holder, Amount: -1000, Currency: "392"}, {AccountID: funding, Amount: 1000, Currency: "392"}}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := update(st, func(ctx context.Context, tx *store.Tx) error {
					_, err := ledger.Post(ctx, tx, ledger.KindAdjustment, tt.postings...)
					return err
				})
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("Post = %v, want %v", err, tt.want)
				}
				if r := check(t, st); !r.OK() {
					t.Fatal(r)
				}
			})
		}
		if a := account(t, st, holder); a.Balance != 0 {
			t.Fatalf("holder balance = %d, want 0", a.Balance)
		}
	})
}

func TestHolds(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		_, holder := accounts(t, st, store.AccountCredit, 10000, 0)
		var clearing int64
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			if err := tx.InsertMerchant(ctx, store.Merchant{ID: "m1", Name: "M"}); err != nil {
				return err
			}
			var err error
			clearing, err = ledger.MerchantClearing(ctx, tx, "m1", "392")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(time.Hour)
		hold := func(amount int64) (int64, error) {
			var id int64
			err := update(st, func(ctx context.Context, tx *store.Tx) error {
				var err error
				id, err = ledger.Hold(ctx, tx, holder, amount, "392", exp)
				return err
			})
			return id, err
		}
		h1, err := hold(6000)
		if err != nil {
			t.Fatalf("hold 6000: %v", err)
		}
		if _, err := hold(4001); !errors.Is(err, ledger.ErrInsufficientFunds) {
			t.Fatalf("hold over open-to-buy = %v, want ErrInsufficientFunds", err)
		}
		h2, err := hold(4000)
		if err != nil {
			t.Fatalf("hold 4000: %v", err)
		}
		if a := account(t, st, holder); ledger.Available(a) != 0 || a.Held != 10000 {
			t.Fatalf("after holds: %+v", a)
		}
		// Capture more than held needs the difference available: none is.
		err = update(st, func(ctx context.Context, tx *store.Tx) error {
			_, err := ledger.Capture(ctx, tx, h1, 6001, clearing, ledger.KindPurchase)
			return err
		})
		if !errors.Is(err, ledger.ErrInsufficientFunds) {
			t.Fatalf("capture over = %v", err)
		}
		var t1 int64
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			var err error
			t1, err = ledger.Capture(ctx, tx, h1, 5000, clearing, ledger.KindPurchase)
			return err
		}); err != nil {
			t.Fatalf("capture: %v", err)
		}
		if err := update(st, func(ctx context.Context, tx *store.Tx) error { return ledger.Release(ctx, tx, h2) }); err != nil {
			t.Fatalf("release: %v", err)
		}
		for _, id := range []int64{h1, h2} {
			err := update(st, func(ctx context.Context, tx *store.Tx) error { return ledger.Release(ctx, tx, id) })
			if !errors.Is(err, ledger.ErrHoldNotOpen) {
				t.Fatalf("release of closed hold %d = %v", id, err)
			}
		}
		if a := account(t, st, holder); a.Balance != -5000 || a.Held != 0 || ledger.Available(a) != 5000 {
			t.Fatalf("after capture and release: %+v", a)
		}
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			_, err := ledger.Reverse(ctx, tx, t1)
			return err
		}); err != nil {
			t.Fatalf("reverse: %v", err)
		}
		if a := account(t, st, holder); a.Balance != 0 {
			t.Fatalf("after reverse: %+v", a)
		}
		if r := check(t, st); !r.OK() {
			t.Fatal(r)
		}
	})
}

func TestReleaseExpired(t *testing.T) {
	st := storetest.OpenSQLite(t)
	_, holder := accounts(t, st, store.AccountCredit, 10000, 0)
	now := time.Now()
	for i, exp := range []time.Time{now.Add(-time.Minute), now.Add(-time.Second), now.Add(time.Hour)} {
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			_, err := ledger.Hold(ctx, tx, holder, int64(1000*(i+1)), "392", exp)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := ledger.ReleaseExpired(context.Background(), st, now, 10)
	if err != nil || n != 2 {
		t.Fatalf("ReleaseExpired = %d, %v; want 2", n, err)
	}
	if a := account(t, st, holder); a.Held != 3000 {
		t.Fatalf("held = %d, want 3000", a.Held)
	}
	if r := check(t, st); !r.OK() {
		t.Fatal(r)
	}
}

func TestCheckFindsTampering(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		funding, holder := accounts(t, st, store.AccountPrepaid, 0, 0)
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			_, err := ledger.Post(ctx, tx, ledger.KindTopUp,
				store.Posting{AccountID: funding, Amount: -500, Currency: "392"},
				store.Posting{AccountID: holder, Amount: 500, Currency: "392"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if r := check(t, st); !r.OK() {
			t.Fatalf("clean book: %s", r)
		}
		// A balance that no posting explains, and a transfer that does not
		// sum to zero, both written around the ledger.
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			if err := tx.SetAccountAmounts(ctx, holder, 900, 0); err != nil {
				return err
			}
			_, err := tx.InsertTransfer(ctx, store.Transfer{Kind: "forged", Postings: []store.Posting{
				{AccountID: funding, Amount: 7, Currency: "392"}}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		r := check(t, st)
		if r.OK() || len(r.Unbalanced) != 1 || r.Unbalanced[0].Sum != 7 || len(r.Mismatched) != 2 {
			t.Fatalf("tampered book: %s", r)
		}
		if !strings.Contains(r.String(), "sum to 7") {
			t.Fatalf("report does not name the imbalance: %s", r)
		}
		// An overdrawn cardholder account is reported too.
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			return tx.SetAccountAmounts(ctx, holder, -1, 0)
		}); err != nil {
			t.Fatal(err)
		}
		if r := check(t, st); len(r.Overdrawn) != 1 || r.Overdrawn[0].AccountID != holder {
			t.Fatalf("overdrawn not reported: %s", r)
		}
	})
}

func TestMerchantClearingShards(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		_, holder := accounts(t, st, store.AccountCredit, 1_000_000, 0)
		if err := update(st, func(ctx context.Context, tx *store.Tx) error {
			return tx.InsertMerchant(ctx, store.Merchant{ID: "m1", Name: "M"})
		}); err != nil {
			t.Fatal(err)
		}
		sale := func(amount int64) (clearing int64, err error) {
			err = update(st, func(ctx context.Context, tx *store.Tx) error {
				if _, err := tx.LockAccount(ctx, holder); err != nil {
					return err
				}
				if clearing, err = ledger.MerchantClearing(ctx, tx, "m1", "392"); err != nil {
					return err
				}
				_, err := ledger.Post(ctx, tx, ledger.KindPurchase,
					store.Posting{AccountID: holder, Amount: -amount, Currency: "392"},
					store.Posting{AccountID: clearing, Amount: amount, Currency: "392"})
				return err
			})
			return clearing, err
		}
		first, err := sale(1)
		if err != nil {
			t.Fatalf("first sale: %v", err)
		}
		t.Run("busy_shard_is_skipped", func(t *testing.T) {
			if st.Dialect() != store.Postgres {
				// One writer: nothing to skip, every sale credits shard 0.
				if id, err := sale(1); err != nil || id != first {
					t.Fatalf("second sale on shard %d (%v), want %d", id, err, first)
				}
				return
			}
			// A sale holding the lowest shard open must not make another
			// wait: the other takes the next free shard and commits.
			held, release := make(chan int64), make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- update(st, func(ctx context.Context, tx *store.Tx) error {
					id, err := ledger.MerchantClearing(ctx, tx, "m1", "392")
					if err != nil {
						close(held)
						return err
					}
					held <- id
					<-release
					return nil
				})
			}()
			busy, ok := <-held
			if !ok {
				t.Fatalf("holding transaction failed: %v", <-done)
			}
			id, err := sale(1)
			close(release)
			if err != nil || id == busy {
				t.Fatalf("sale beside a busy shard %d: shard %d, %v", busy, id, err)
			}
			if err := <-done; err != nil {
				t.Fatalf("holding transaction: %v", err)
			}
		})
		t.Run("balance_sums_all_shards", func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Go(func() {
					if _, err := sale(int64(i + 1)); err != nil {
						t.Errorf("sale: %v", err)
					}
				})
			}
			wg.Wait()
			holderBalance := account(t, st, holder).Balance
			var sum int64
			var shards []store.Account
			if err := st.View(ctx, func(tx *store.Tx) error {
				var err error
				if sum, err = ledger.MerchantClearingBalance(ctx, tx, "m1", "392"); err != nil {
					return err
				}
				shards, err = ledger.MerchantClearingAccounts(ctx, tx, "m1", "392")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if sum != -holderBalance || sum == 0 {
				t.Fatalf("clearing balance %d, holder balance %d: want opposite and non-zero", sum, holderBalance)
			}
			if len(shards) == 0 || len(shards) > ledger.ClearingShards {
				t.Fatalf("%d clearing shards, want 1 to %d", len(shards), ledger.ClearingShards)
			}
			for _, a := range shards {
				if a.Kind != store.AccountMerchantClearing || a.MerchantID != "m1" || a.Currency != "392" {
					t.Fatalf("shard %+v is not m1's JPY clearing account", a)
				}
			}
			if r := check(t, st); !r.OK() {
				t.Fatal(r)
			}
		})
	})
}
