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
)

func TestCreateProductRules(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	base := store.Product{Name: "p", Kind: store.KindCredit, Currency: "392", BINLow: "411100", BINHigh: "411199", PANLength: 16, CreditLine: 1000}
	tests := []struct {
		name string
		edit func(p *store.Product)
		ok   bool
	}{
		{"valid_credit", func(p *store.Product) {}, true},
		{"unknown_kind", func(p *store.Product) { p.Kind = "gift" }, false},
		{"unknown_currency", func(p *store.Product) { p.Currency = "999" }, false},
		{"bin_low_above_high", func(p *store.Product) { p.BINLow, p.BINHigh = "411200", "411199" }, false},
		{"bin_lengths_differ", func(p *store.Product) { p.BINHigh = "4111999" }, false},
		{"bin_too_short", func(p *store.Product) { p.BINLow, p.BINHigh = "41110", "41119" }, false},
		{"pan_too_long", func(p *store.Product) { p.PANLength = 20 }, false},
		{"overdraft_on_credit", func(p *store.Product) { p.Overdraft = 1 }, false},
		{"credit_line_on_prepaid", func(p *store.Product) { p.Kind = store.KindPrepaid }, false},
		{"house_needs_merchants", func(p *store.Product) { p.Kind = store.KindHouse }, false},
		{"house_with_merchant", func(p *store.Product) { p.Kind, p.AllowedMerchants = store.KindHouse, []string{cloudtest.Merchant} }, true},
		{"debit_with_overdraft", func(p *store.Product) { p.Kind, p.CreditLine, p.Overdraft = store.KindDebit, 0, 500 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			tt.edit(&p)
			_, err := w.Issuer.CreateProduct(context.Background(), p)
			if (err == nil) != tt.ok {
				t.Fatalf("CreateProduct = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, issuing.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestIssueCard(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		pid, err := w.Issuer.CreateProduct(ctx, store.Product{Name: "p", Kind: store.KindPrepaid, Currency: "392",
			BINLow: "52000000", BINHigh: "52000009", PANLength: 16})
		if err != nil {
			t.Fatal(err)
		}
		holder, _ := w.Issuer.CreateCardholder(ctx, "H")
		acct, err := w.Issuer.CreateAccount(ctx, pid, holder)
		if err != nil {
			t.Fatal(err)
		}
		exp, _ := card.ParseExpiry("2901")
		seen := map[string]bool{}
		for range 20 {
			c, err := w.Issuer.IssueCard(ctx, pid, acct, exp)
			if err != nil {
				t.Fatalf("issue: %v", err)
			}
			d := c.PAN.Digits()
			if len(d) != 16 || d[:7] != "5200000" || !card.Luhn(d) {
				t.Fatalf("issued PAN %s outside the product's range or not Luhn-valid", c.PAN.Masked())
			}
			if seen[d] {
				t.Fatalf("PAN %s issued twice", c.PAN.Masked())
			}
			seen[d] = true
			var got store.Card
			if err := st.View(ctx, func(tx *store.Tx) error {
				got, err = tx.Card(ctx, c.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			opened, err := w.Vault.Open(got.PANSealed)
			if err != nil || opened.Digits() != d || got.MaskedPAN != c.PAN.Masked() || got.Expiry != "2901" {
				t.Fatalf("stored card %+v does not match the issued one", got.MaskedPAN)
			}
		}
		// Importing an issued PAN again is refused.
		for d := range seen {
			pan, _ := card.ParsePAN(d)
			if _, err := w.Issuer.ImportCard(ctx, pid, acct, pan, exp); !errors.Is(err, store.ErrDuplicate) {
				t.Fatalf("re-import = %v, want ErrDuplicate", err)
			}
			break
		}
		// A PAN outside the BIN range is refused.
		pan, _ := card.ParsePAN("4111111111111111")
		if _, err := w.Issuer.ImportCard(ctx, pid, acct, pan, exp); !errors.Is(err, issuing.ErrInvalid) {
			t.Fatalf("import outside range = %v, want ErrInvalid", err)
		}
	})
}

func TestSetStatusLifecycle(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	steps := []struct {
		to store.CardStatus
		ok bool
	}{
		{store.CardSuspended, true},
		{store.CardActive, true},
		{store.CardLost, true},
		{store.CardActive, false}, // a lost card never comes back
		{store.CardClosed, true},
		{store.CardSuspended, false},
		{store.CardClosed, true}, // no change
	}
	c := w.NewCard(t, store.KindCredit, 100, 0)
	for _, s := range steps {
		err := w.Issuer.SetStatus(context.Background(), c.ID, s.to, "test")
		if (err == nil) != s.ok {
			t.Fatalf("to %s: %v, want ok=%v", s.to, err, s.ok)
		}
		if err != nil && !errors.Is(err, issuing.ErrTransition) {
			t.Fatalf("to %s: %v, want ErrTransition", s.to, err)
		}
	}
}

func TestTopUp(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		prepaid := w.NewCard(t, store.KindPrepaid, 0, 0)
		credit := w.NewCard(t, store.KindCredit, 100, 0)
		if _, err := w.Issuer.TopUp(ctx, prepaid.AccountID, 2500, "test"); err != nil {
			t.Fatalf("top up: %v", err)
		}
		if got := w.Available(t, prepaid.AccountID); got != 2500 {
			t.Fatalf("available = %d, want 2500", got)
		}
		if _, err := w.Issuer.TopUp(ctx, credit.AccountID, 1, "test"); !errors.Is(err, issuing.ErrInvalid) {
			t.Fatalf("top up credit = %v, want ErrInvalid", err)
		}
		if _, err := w.Issuer.TopUp(ctx, prepaid.AccountID, 0, "test"); !errors.Is(err, issuing.ErrInvalid) {
			t.Fatalf("top up 0 = %v, want ErrInvalid", err)
		}
		cloudtest.CheckLedger(t, st)
	})
}
