package controls_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/protocol/iso93"
)

// now is the store clock of these tests: 2026-11-24 00:30 JST, so that
// 23:59 JST of the 23rd is "yesterday" although it is the same UTC day.
var now = time.Date(2026, 11, 23, 15, 30, 0, 0, time.UTC)

// forEachClocked runs fn on SQLite and PostgreSQL stores whose clock reads
// now.
func forEachClocked(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	clock := func() time.Time { return now }
	t.Run("sqlite", func(t *testing.T) {
		fn(t, storetest.OpenConfig(t, store.Config{Path: filepath.Join(t.TempDir(), "c.db"), Clock: clock}))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, storetest.OpenConfig(t, store.Config{DSN: storetest.NewSchema(t), Clock: clock}))
	})
}

// approval records an authorization on the card as the switch would.
func approval(ctx context.Context, tx *store.Tx, c cloudtest.Card, amount int64, status store.AuthStatus, at time.Time) error {
	key := fmt.Sprintf("k-%d-%d-%s", c.ID, at.UnixNano(), randSuffix())
	_, _, err := tx.InsertAuthorization(ctx, store.Authorization{IdempotencyKey: key, GatewayID: cloudtest.Gateway,
		TerminalID: cloudtest.Terminal, STAN: "000001", MTI: iso93.MTIFinancialRequest, ProcessingCode: "000000",
		Amount: amount, Currency: cloudtest.Currency, CardID: c.ID, AccountID: c.AccountID, ActionCode: "000",
		Status: status, CreatedAt: at})
	return err
}

var (
	suffixMu sync.Mutex
	suffixN  int
)

func randSuffix() string {
	suffixMu.Lock()
	defer suffixMu.Unlock()
	suffixN++
	return fmt.Sprint(suffixN)
}

func TestCheck(t *testing.T) {
	base := controls.Txn{Amount: 500, Currency: cloudtest.Currency, MCC: "5411", MerchantID: cloudtest.Merchant}
	tests := []struct {
		name   string
		status store.CardStatus
		k      func(k *store.Controls)
		txn    func(x *controls.Txn)
		// prior approvals: amount, status, time
		prior []struct {
			amount int64
			status store.AuthStatus
			at     time.Time
		}
		want       iso93.ActionCode
		wantReason string
	}{
		{name: "defaults_allow"},
		{name: "inactive_card", status: store.CardInactive, want: iso93.ActionCardNotEffective, wantReason: controls.ReasonInactive},
		{name: "suspended_card", status: store.CardSuspended, want: iso93.ActionCardNotEffective, wantReason: controls.ReasonNotActive},
		{name: "locked", k: func(k *store.Controls) { k.Locked = true }, want: iso93.ActionNotPermittedToCardholder, wantReason: controls.ReasonLocked},
		{name: "mcc_blocked", k: func(k *store.Controls) { k.BlockedMCCs = []string{"5411", "7995"} },
			want: iso93.ActionNotPermittedToCardholder, wantReason: controls.ReasonMCCBlocked + " (5411)"},
		{name: "other_mcc_allowed", k: func(k *store.Controls) { k.BlockedMCCs = []string{"7995"} }},
		{name: "ecommerce_disabled", k: func(k *store.Controls) { k.ECommerceAllowed = false },
			txn: func(x *controls.Txn) { x.ECommerce = true }, want: iso93.ActionNotPermittedToCardholder, wantReason: controls.ReasonECommerce},
		{name: "ecommerce_disabled_card_present_allowed", k: func(k *store.Controls) { k.ECommerceAllowed = false }},
		{name: "overseas_disabled_foreign_country", k: func(k *store.Controls) { k.OverseasAllowed = false },
			txn:  func(x *controls.Txn) { x.Country = "840" },
			want: iso93.ActionNotPermittedToCardholder, wantReason: controls.ReasonOverseas + " (merchant country 840)"},
		{name: "overseas_disabled_foreign_merchant_from_store", k: func(k *store.Controls) { k.OverseasAllowed = false },
			txn:  func(x *controls.Txn) { x.MerchantID = cloudtest.OtherMerchant },
			want: iso93.ActionNotPermittedToCardholder, wantReason: controls.ReasonOverseas + " (merchant country 410)"},
		{name: "overseas_disabled_home_merchant_allowed", k: func(k *store.Controls) { k.OverseasAllowed = false }},
		{name: "overseas_allowed_foreign_country", txn: func(x *controls.Txn) { x.Country = "840" }},
		{name: "per_txn_limit_equal_allowed", k: func(k *store.Controls) { k.PerTxnLimit = 500 }},
		{name: "per_txn_limit_exceeded", k: func(k *store.Controls) { k.PerTxnLimit = 499 },
			want: iso93.ActionExceedsAmountLimit, wantReason: controls.ReasonPerTxnLimit},
		{name: "daily_limit_reached_exactly_allowed", k: func(k *store.Controls) { k.DailyLimit = 1000 },
			prior: []struct {
				amount int64
				status store.AuthStatus
				at     time.Time
			}{{300, store.AuthHeld, now.Add(-time.Minute)}, {200, store.AuthCaptured, now.Add(-20 * time.Minute)}}},
		{name: "daily_limit_exceeded", k: func(k *store.Controls) { k.DailyLimit = 1000 },
			prior: []struct {
				amount int64
				status store.AuthStatus
				at     time.Time
			}{{300, store.AuthHeld, now.Add(-time.Minute)}, {201, store.AuthCaptured, now.Add(-20 * time.Minute)}},
			want: iso93.ActionExceedsFrequencyLimit, wantReason: controls.ReasonDailyLimit + " (approved today 501)"},
		{name: "daily_limit_ignores_declined_reversed_answered", k: func(k *store.Controls) { k.DailyLimit = 1000 },
			prior: []struct {
				amount int64
				status store.AuthStatus
				at     time.Time
			}{{900, store.AuthDeclined, now}, {900, store.AuthReversed, now}, {900, store.AuthAnswered, now}}},
		{name: "daily_limit_ignores_yesterday_jst", k: func(k *store.Controls) { k.DailyLimit = 1000 },
			prior: []struct {
				amount int64
				status store.AuthStatus
				at     time.Time
			}{{900, store.AuthCaptured, now.Add(-31 * time.Minute)}, {500, store.AuthCaptured, now.Add(-30 * time.Minute)}}},
		{name: "daily_limit_ignores_yesterday_jst_but_counts_midnight", k: func(k *store.Controls) { k.DailyLimit = 1000 },
			prior: []struct {
				amount int64
				status store.AuthStatus
				at     time.Time
			}{{501, store.AuthCaptured, now.Add(-30 * time.Minute)}},
			want: iso93.ActionExceedsFrequencyLimit, wantReason: controls.ReasonDailyLimit + " (approved today 501)"},
		{name: "lock_before_limits", k: func(k *store.Controls) { k.Locked, k.PerTxnLimit = true, 1 },
			want: iso93.ActionNotPermittedToCardholder, wantReason: controls.ReasonLocked},
	}
	forEachClocked(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		if err := st.Update(ctx, func(tx *store.Tx) error {
			return tx.SetMerchantCountry(ctx, cloudtest.OtherMerchant, "410")
		}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindCredit, 1_000_000, 0)
				k := store.DefaultControls(c.ID)
				if tt.k != nil {
					tt.k(&k)
				}
				x := base
				if tt.txn != nil {
					tt.txn(&x)
				}
				var code iso93.ActionCode
				var reason string
				err := st.Update(ctx, func(tx *store.Tx) error {
					if err := tx.PutCardControls(ctx, k); err != nil {
						return err
					}
					for _, p := range tt.prior {
						if err := approval(ctx, tx, c, p.amount, p.status, p.at); err != nil {
							return err
						}
					}
					sc, err := tx.Card(ctx, c.ID)
					if err != nil {
						return err
					}
					if tt.status != "" {
						sc.Status = tt.status
					}
					if _, err := tx.LockAccount(ctx, sc.AccountID); err != nil {
						return err
					}
					code, reason, err = controls.Check(ctx, tx, sc, x)
					return err
				})
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if code != tt.want || reason != tt.wantReason {
					t.Fatalf("Check = %q %q, want %q %q", code, reason, tt.want, tt.wantReason)
				}
			})
		}
	})
}

func TestCheckRefusesBadAmount(t *testing.T) {
	st := storetest.OpenSQLite(t)
	ctx := context.Background()
	w := cloudtest.NewWorld(t, st)
	c := w.NewCard(t, store.KindCredit, 1000, 0)
	for _, amount := range []int64{0, -1, 1_000_000_000_000} {
		t.Run(fmt.Sprint("amount_", amount), func(t *testing.T) {
			err := st.View(ctx, func(tx *store.Tx) error {
				sc, err := tx.Card(ctx, c.ID)
				if err != nil {
					return err
				}
				_, _, err = controls.Check(ctx, tx, sc, controls.Txn{Amount: amount, Currency: "392"})
				return err
			})
			if !errors.Is(err, controls.ErrInvalid) {
				t.Fatalf("Check = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestDailyLimitUnderConcurrency runs many authorizations on one card at
// once, each in its own transaction that locks the account, checks the
// controls and records an approval when allowed, as the switch does. The
// approved total never exceeds the daily limit and exactly as many pass as
// fit.
func TestDailyLimitUnderConcurrency(t *testing.T) {
	const (
		clients = 24
		amount  = 100
		limit   = 1000
	)
	forEachClocked(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindCredit, 1_000_000, 0)
		k := store.DefaultControls(c.ID)
		k.DailyLimit = limit
		if err := w.Issuer.SetControls(ctx, k, "test"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make(chan iso93.ActionCode, clients)
		errs := make(chan error, clients)
		for range clients {
			wg.Go(func() {
				var code iso93.ActionCode
				err := st.Update(ctx, func(tx *store.Tx) error {
					if _, err := tx.LockAccount(ctx, c.AccountID); err != nil {
						return err
					}
					sc, err := tx.Card(ctx, c.ID)
					if err != nil {
						return err
					}
					code, _, err = controls.Check(ctx, tx, sc, controls.Txn{Amount: amount, Currency: "392", MCC: "5411"})
					if err != nil || code != "" {
						return err
					}
					return approval(ctx, tx, c, amount, store.AuthCaptured, time.Time{})
				})
				if err != nil {
					errs <- err
					return
				}
				results <- code
			})
		}
		wg.Wait()
		close(results)
		close(errs)
		for err := range errs {
			t.Fatalf("authorization: %v", err)
		}
		approved, refused := 0, 0
		for code := range results {
			switch code {
			case "":
				approved++
			case iso93.ActionExceedsFrequencyLimit:
				refused++
			default:
				t.Fatalf("unexpected code %q", code)
			}
		}
		if approved != limit/amount || refused != clients-limit/amount {
			t.Fatalf("approved %d, refused %d; want %d and %d", approved, refused, limit/amount, clients-limit/amount)
		}
		var total int64
		if err := st.View(ctx, func(tx *store.Tx) error {
			var err error
			from := controls.DayStart("392", now)
			total, err = tx.ApprovedTotal(ctx, c.ID, from, from.AddDate(0, 0, 1))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if total > limit {
			t.Fatalf("approved total %d exceeds daily limit %d", total, limit)
		}
	})
}

func TestDayStart(t *testing.T) {
	tests := []struct {
		name     string
		currency string
		at       time.Time
		want     time.Time
	}{
		{"yen_after_jst_midnight", "392", time.Date(2026, 11, 23, 15, 30, 0, 0, time.UTC), time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)},
		{"yen_before_jst_midnight", "392", time.Date(2026, 11, 23, 14, 59, 0, 0, time.UTC), time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)},
		{"dollar_is_utc", "840", time.Date(2026, 11, 23, 15, 30, 0, 0, time.UTC), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{"euro_is_utc", "978", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := controls.DayStart(tt.currency, tt.at); !got.Equal(tt.want) {
				t.Fatalf("DayStart = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestECommerce(t *testing.T) {
	tests := []struct {
		name string
		de22 string
		want bool
	}{
		{"chip_card_present", "510101513001", false},
		{"electronic_order", "100050600001", true},
		{"card_not_present", "100010600001", true},
		{"mail_order_card_not_present", "100020600001", true},
		{"telephone_order_card_present_flag", "100031600001", false},
		{"too_short", "51010151300", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := controls.ECommerce(tt.de22); got != tt.want {
				t.Fatalf("ECommerce(%q) = %v, want %v", tt.de22, got, tt.want)
			}
		})
	}
}

// FuzzECommerce checks that the classification of a POS data code depends
// only on its length and positions 5 and 6: rewriting any other position
// never changes it.
func FuzzECommerce(f *testing.F) {
	for _, s := range []string{"510101513001", "100050600001", "100010600001", "", "x"} {
		f.Add(s, byte('9'))
	}
	f.Fuzz(func(t *testing.T, s string, b byte) {
		got := controls.ECommerce(s)
		if len(s) != 12 {
			if got {
				t.Fatalf("ECommerce(%q) = true for a code of %d characters", s, len(s))
			}
			return
		}
		if got != (s[4] == '5' || s[5] == '0') {
			t.Fatalf("ECommerce(%q) = %v", s, got)
		}
		for i := range 12 {
			if i == 4 || i == 5 {
				continue
			}
			m := []byte(s)
			m[i] = b
			if controls.ECommerce(string(m)) != got {
				t.Fatalf("changing position %d of %q changed the result", i+1, s)
			}
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(k *store.Controls)
		ok   bool
	}{
		{"defaults", func(k *store.Controls) {}, true},
		{"limits", func(k *store.Controls) { k.PerTxnLimit, k.DailyLimit = 100, 1000 }, true},
		{"negative_per_txn", func(k *store.Controls) { k.PerTxnLimit = -1 }, false},
		{"daily_above_max", func(k *store.Controls) { k.DailyLimit = 1_000_000_000_000 }, false},
		{"per_txn_above_daily", func(k *store.Controls) { k.PerTxnLimit, k.DailyLimit = 1001, 1000 }, false},
		{"per_txn_without_daily", func(k *store.Controls) { k.PerTxnLimit = 1001 }, true},
		{"mcc_not_digits", func(k *store.Controls) { k.BlockedMCCs = []string{"54a1"} }, false},
		{"mcc_three_digits", func(k *store.Controls) { k.BlockedMCCs = []string{"541"} }, false},
		{"mcc_twice", func(k *store.Controls) { k.BlockedMCCs = []string{"5411", "5411"} }, false},
		{"mcc_too_many", func(k *store.Controls) {
			for i := range controls.MaxBlockedMCCs + 1 {
				k.BlockedMCCs = append(k.BlockedMCCs, fmt.Sprintf("%04d", i))
			}
		}, false},
		{"country_alpha", func(k *store.Controls) { k.HomeCountry = "JP" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := store.DefaultControls(1)
			tt.edit(&k)
			err := controls.Validate(k)
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, controls.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}
