package issuing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/issuing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/iso93"
)

// product creates a credit product, cardholder and account.
func product(t *testing.T, w *cloudtest.World) (productID, accountID int64) {
	t.Helper()
	ctx := context.Background()
	pid, err := w.Issuer.CreateProduct(ctx, store.Product{Name: "p", Kind: store.KindCredit, Currency: "392",
		BINLow: "45000000", BINHigh: "45009999", PANLength: 16, CreditLine: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	holder, err := w.Issuer.CreateCardholder(ctx, "H")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := w.Issuer.CreateAccount(ctx, pid, holder)
	if err != nil {
		t.Fatal(err)
	}
	return pid, acct
}

func expiry(t *testing.T, s string) card.Expiry {
	t.Helper()
	e, err := card.ParseExpiry(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func readCard(t *testing.T, st *store.Store, id int64) (store.Card, store.CardInfo) {
	t.Helper()
	var c store.Card
	var ci store.CardInfo
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		if c, err = tx.Card(context.Background(), id); err != nil {
			return err
		}
		ci, err = tx.CardInfo(context.Background(), id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, ci
}

func negativeFile(t *testing.T, st *store.Store, since int64) []store.NegativeEntry {
	t.Helper()
	var es []store.NegativeEntry
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		es, err = tx.NegativeEntries(context.Background(), since, 1000)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestIssueOptions(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		pid, acct := product(t, w)
		exp := expiry(t, "3012")
		tests := []struct {
			name        string
			o           issuing.IssueOptions
			wantStatus  store.CardStatus
			wantVirtual bool
			wantErr     error
		}{
			{"physical_active", issuing.IssueOptions{}, store.CardActive, false, nil},
			{"physical_inactive", issuing.IssueOptions{Inactive: true}, store.CardInactive, false, nil},
			{"virtual_active_at_once", issuing.IssueOptions{Virtual: true}, store.CardActive, true, nil},
			{"virtual_inactive_refused", issuing.IssueOptions{Virtual: true, Inactive: true}, "", false, issuing.ErrInvalid},
			{"bad_controls_refused", issuing.IssueOptions{Controls: &store.Controls{HomeCountry: "JP"}}, "", false, issuing.ErrInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				iss, err := w.Issuer.Issue(ctx, pid, acct, exp, tt.o)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Issue = %v, want %v", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				c, ci := readCard(t, st, iss.ID)
				if c.Status != tt.wantStatus || ci.Virtual != tt.wantVirtual {
					t.Fatalf("card is %s virtual=%t, want %s virtual=%t", c.Status, ci.Virtual, tt.wantStatus, tt.wantVirtual)
				}
			})
		}
	})
}

func TestLifecycleTransitions(t *testing.T) {
	type step struct {
		to      store.CardStatus
		wantErr error
		// negative-file entry expected from this step ("" none)
		neg    store.NegativeAction
		reason string
	}
	tests := []struct {
		name     string
		inactive bool
		steps    []step
	}{
		{"activate", true, []step{{to: store.CardActive}}},
		{"inactive_lost_in_mail", true, []step{{to: store.CardLost, neg: store.NegativeAdd, reason: "lost"}}},
		{"inactive_cannot_suspend", true, []step{{to: store.CardSuspended, wantErr: issuing.ErrTransition}}},
		{"suspend_and_resume", false, []step{
			{to: store.CardSuspended, neg: store.NegativeAdd, reason: "suspended"},
			{to: store.CardActive, neg: store.NegativeRemove, reason: "resumed"},
		}},
		{"stolen_then_close", false, []step{
			{to: store.CardStolen, neg: store.NegativeAdd, reason: "stolen"},
			{to: store.CardClosed, neg: store.NegativeAdd, reason: "closed"},
		}},
		{"lost_never_resumes", false, []step{
			{to: store.CardLost, neg: store.NegativeAdd, reason: "lost"},
			{to: store.CardActive, wantErr: issuing.ErrTransition},
		}},
		{"closed_never_reopens", false, []step{
			{to: store.CardClosed, neg: store.NegativeAdd, reason: "closed"},
			{to: store.CardActive, wantErr: issuing.ErrTransition},
		}},
		{"same_status_is_noop", false, []step{{to: store.CardActive}}},
		{"back_to_inactive_refused", false, []step{{to: store.CardInactive, wantErr: issuing.ErrInvalid}}},
	}
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		pid, acct := product(t, w)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				iss, err := w.Issuer.Issue(ctx, pid, acct, expiry(t, "3012"), issuing.IssueOptions{Inactive: tt.inactive})
				if err != nil {
					t.Fatal(err)
				}
				c, _ := readCard(t, st, iss.ID)
				var version int64
				_ = st.View(ctx, func(tx *store.Tx) error {
					version, err = tx.NegativeFileVersion(ctx)
					return err
				})
				for _, s := range tt.steps {
					before, _ := readCard(t, st, iss.ID)
					err := w.Issuer.SetStatus(ctx, iss.ID, s.to, "test")
					if s.wantErr != nil {
						if !errors.Is(err, s.wantErr) {
							t.Fatalf("to %s: %v, want %v", s.to, err, s.wantErr)
						}
						if after, _ := readCard(t, st, iss.ID); after.Status != before.Status {
							t.Fatalf("refused change moved the card to %s", after.Status)
						}
						continue
					}
					if err != nil {
						t.Fatalf("to %s: %v", s.to, err)
					}
					es := negativeFile(t, st, version)
					if s.neg == "" {
						if len(es) != 0 {
							t.Fatalf("to %s: %d negative-file entries, want none", s.to, len(es))
						}
						continue
					}
					if len(es) != 1 {
						t.Fatalf("to %s: %d negative-file entries, want 1", s.to, len(es))
					}
					e := es[0]
					if e.Version != version+1 || e.Action != s.neg || e.Reason != s.reason || e.Fingerprint != c.Fingerprint || e.CardID != c.ID {
						t.Fatalf("to %s: entry v%d %s %q card %d, want v%d %s %q card %d", s.to, e.Version, e.Action, e.Reason,
							e.CardID, version+1, s.neg, s.reason, c.ID)
					}
					if want := "2031-01-01"; e.ExpiresAt.Format("2006-01-02") != want {
						t.Fatalf("entry expires %v, want %s (after the card's expiry month)", e.ExpiresAt, want)
					}
					version = e.Version
				}
			})
		}
	})
}

func TestReissue(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		pid, acct := product(t, w)

		t.Run("new_pan_kept_until_activation", func(t *testing.T) {
			old, err := w.Issuer.Issue(ctx, pid, acct, expiry(t, "2812"), issuing.IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			k := store.DefaultControls(old.ID)
			k.DailyLimit, k.BlockedMCCs = 5000, []string{"7995"}
			if err := w.Issuer.SetControls(ctx, k, "test"); err != nil {
				t.Fatal(err)
			}
			nw, err := w.Issuer.Reissue(ctx, old.ID, issuing.ReissueOptions{NewPAN: true, Expiry: expiry(t, "3112")}, "test")
			if err != nil {
				t.Fatal(err)
			}
			if nw.ID == old.ID || nw.PAN.Digits() == old.PAN.Digits() {
				t.Fatal("reissue with a new PAN kept the card or PAN")
			}
			oc, _ := readCard(t, st, old.ID)
			nc, ni := readCard(t, st, nw.ID)
			if oc.Status != store.CardActive || nc.Status != store.CardInactive || ni.ReplacesID != old.ID || nc.AccountID != acct {
				t.Fatalf("after reissue old %s, new %s replaces %d on account %d", oc.Status, nc.Status, ni.ReplacesID, nc.AccountID)
			}
			var nk store.Controls
			_ = st.View(ctx, func(tx *store.Tx) error { nk, err = tx.CardControls(ctx, nw.ID); return err })
			if nk.DailyLimit != 5000 || len(nk.BlockedMCCs) != 1 {
				t.Fatalf("controls not copied: %+v", nk)
			}
			if err := w.Issuer.Activate(ctx, nw.ID, "test"); err != nil {
				t.Fatal(err)
			}
			oc, _ = readCard(t, st, old.ID)
			nc, _ = readCard(t, st, nw.ID)
			if oc.Status != store.CardClosed || nc.Status != store.CardActive {
				t.Fatalf("after activation old %s, new %s; want closed, active", oc.Status, nc.Status)
			}
		})

		t.Run("new_pan_close_old_at_once", func(t *testing.T) {
			old, _ := w.Issuer.Issue(ctx, pid, acct, expiry(t, "2812"), issuing.IssueOptions{})
			nw, err := w.Issuer.Reissue(ctx, old.ID, issuing.ReissueOptions{NewPAN: true, Expiry: expiry(t, "3112"), CloseOld: true}, "test")
			if err != nil {
				t.Fatal(err)
			}
			if oc, _ := readCard(t, st, old.ID); oc.Status != store.CardClosed {
				t.Fatalf("old card %s, want closed", oc.Status)
			}
			if nc, _ := readCard(t, st, nw.ID); nc.Status != store.CardInactive {
				t.Fatalf("new card %s, want inactive", nc.Status)
			}
		})

		t.Run("stolen_card_replaced_stays_stolen", func(t *testing.T) {
			old, _ := w.Issuer.Issue(ctx, pid, acct, expiry(t, "2812"), issuing.IssueOptions{})
			if err := w.Issuer.SetStatus(ctx, old.ID, store.CardStolen, "test"); err != nil {
				t.Fatal(err)
			}
			nw, err := w.Issuer.Reissue(ctx, old.ID, issuing.ReissueOptions{NewPAN: true, Expiry: expiry(t, "3112"), CloseOld: true}, "test")
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Issuer.Activate(ctx, nw.ID, "test"); err != nil {
				t.Fatal(err)
			}
			if oc, _ := readCard(t, st, old.ID); oc.Status != store.CardStolen {
				t.Fatalf("old card %s, want stolen", oc.Status)
			}
		})

		t.Run("virtual_replaced_at_once", func(t *testing.T) {
			old, _ := w.Issuer.Issue(ctx, pid, acct, expiry(t, "2812"), issuing.IssueOptions{Virtual: true})
			nw, err := w.Issuer.Reissue(ctx, old.ID, issuing.ReissueOptions{NewPAN: true, Expiry: expiry(t, "3112")}, "test")
			if err != nil {
				t.Fatal(err)
			}
			oc, _ := readCard(t, st, old.ID)
			nc, ni := readCard(t, st, nw.ID)
			if oc.Status != store.CardClosed || nc.Status != store.CardActive || !ni.Virtual {
				t.Fatalf("old %s, new %s virtual=%t; want closed, active virtual", oc.Status, nc.Status, ni.Virtual)
			}
		})

		t.Run("same_pan_new_expiry", func(t *testing.T) {
			old, _ := w.Issuer.Issue(ctx, pid, acct, expiry(t, "2812"), issuing.IssueOptions{})
			nw, err := w.Issuer.Reissue(ctx, old.ID, issuing.ReissueOptions{Expiry: expiry(t, "3112")}, "test")
			if err != nil {
				t.Fatal(err)
			}
			c, _ := readCard(t, st, old.ID)
			if nw.ID != old.ID || !nw.PAN.IsZero() || c.Expiry != "3112" || c.Status != store.CardActive {
				t.Fatalf("renewal: id %d expiry %s status %s", nw.ID, c.Expiry, c.Status)
			}
		})

		bad := []struct {
			name   string
			status store.CardStatus
			o      issuing.ReissueOptions
			want   error
		}{
			{"same_pan_of_lost_card", store.CardLost, issuing.ReissueOptions{Expiry: card.Expiry{}}, issuing.ErrInvalid},
			{"same_pan_of_lost_card_with_expiry", store.CardLost, issuing.ReissueOptions{}, issuing.ErrTransition},
			{"closed_card", store.CardClosed, issuing.ReissueOptions{NewPAN: true}, issuing.ErrTransition},
			{"expiry_not_later", store.CardActive, issuing.ReissueOptions{NewPAN: true}, issuing.ErrInvalid},
			{"close_old_without_new_pan", store.CardActive, issuing.ReissueOptions{CloseOld: true}, issuing.ErrInvalid},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				old, _ := w.Issuer.Issue(ctx, pid, acct, expiry(t, "2812"), issuing.IssueOptions{})
				if tt.status != store.CardActive {
					if err := w.Issuer.SetStatus(ctx, old.ID, tt.status, "test"); err != nil {
						t.Fatal(err)
					}
				}
				o := tt.o
				if o.Expiry.IsZero() && tt.name != "same_pan_of_lost_card" {
					o.Expiry = expiry(t, "3112")
					if tt.name == "expiry_not_later" {
						o.Expiry = expiry(t, "2812")
					}
				}
				if _, err := w.Issuer.Reissue(ctx, old.ID, o, "test"); !errors.Is(err, tt.want) {
					t.Fatalf("Reissue = %v, want %v", err, tt.want)
				}
			})
		}
	})
}

// TestHouseCardOnlyAtProductMerchants proves that the switch refuses a
// house card at a merchant its product does not name, and approves it at
// one it does.
func TestHouseCardOnlyAtProductMerchants(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindHouse, 10_000, 0) // allows cloudtest.Merchant only
		tests := []struct {
			name     string
			terminal string
			gateway  string
			want     iso93.ActionCode
		}{
			{"listed_merchant", cloudtest.Terminal, cloudtest.Gateway, iso93.ActionApproved},
			{"unlisted_merchant", cloudtest.OtherTerminal, cloudtest.OtherGateway, iso93.ActionNotPermittedToCardholder},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := w.RequestOn("dev-"+tt.terminal, iso93.MTIFinancialRequest, c, 500)
				r.TerminalID, r.GatewayID = tt.terminal, tt.gateway
				resp, err := w.Switch.Authorize(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				if resp.ActionCode != tt.want {
					t.Fatalf("action %s, want %s", resp.ActionCode, tt.want)
				}
			})
		}
		cloudtest.CheckLedger(t, st)
	})
}

// TestNegativeFileVersionsInCommitOrder changes many cards at once and
// checks that the negative file's versions are 1..n without gaps, one per
// change.
func TestNegativeFileVersionsInCommitOrder(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		pid, acct := product(t, w)
		const n = 12
		ids := make([]int64, n)
		for i := range ids {
			iss, err := w.Issuer.Issue(ctx, pid, acct, expiry(t, "3012"), issuing.IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = iss.ID
		}
		errs := make(chan error, n)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range n {
				if err := <-errs; err != nil {
					t.Errorf("set status: %v", err)
				}
			}
		}()
		for _, id := range ids {
			go func() { errs <- w.Issuer.SetStatus(ctx, id, store.CardLost, "test") }()
		}
		<-done
		es := negativeFile(t, st, 0)
		if len(es) != n {
			t.Fatalf("%d entries, want %d", len(es), n)
		}
		seen := map[int64]bool{}
		for i, e := range es {
			if e.Version != int64(i+1) {
				t.Fatalf("entry %d has version %d", i, e.Version)
			}
			seen[e.CardID] = true
		}
		if len(seen) != n {
			t.Fatalf("entries for %d cards, want %d", len(seen), n)
		}
	})
}
