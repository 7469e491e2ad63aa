package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/posgate/posgate/cloud/store"
)

// Overdrawn is a cardholder account whose available amount is below zero,
// which no product allows.
type Overdrawn struct {
	AccountID int64
	Kind      store.AccountKind
	Available int64
}

// Report is what Check found. A Report with no findings (OK) proves that
// every transfer sums to zero per currency, every account's stored balance
// equals the sum of its postings, its stored held amount equals the sum of
// its open holds, all in its own currency, and no cardholder account is
// below what its product allows.
type Report struct {
	Accounts   int // accounts checked
	Transfers  int64
	Postings   int64
	Unbalanced []store.TransferImbalance
	Mismatched []store.AccountMismatch
	Overdrawn  []Overdrawn
}

// OK reports whether the check found nothing wrong.
func (r Report) OK() bool {
	return len(r.Unbalanced) == 0 && len(r.Mismatched) == 0 && len(r.Overdrawn) == 0
}

// String renders the report for an operator, one finding per line.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ledger check: %d accounts, %d transfers, %d postings: ", r.Accounts, r.Transfers, r.Postings)
	if r.OK() {
		b.WriteString("OK")
		return b.String()
	}
	fmt.Fprintf(&b, "%d unbalanced, %d mismatched, %d overdrawn",
		len(r.Unbalanced), len(r.Mismatched), len(r.Overdrawn))
	for _, u := range r.Unbalanced {
		if u.Currency == "" {
			fmt.Fprintf(&b, "\n  transfer %d has no postings", u.TransferID)
			continue
		}
		fmt.Fprintf(&b, "\n  transfer %d: %s postings sum to %d", u.TransferID, u.Currency, u.Sum)
	}
	for _, m := range r.Mismatched {
		fmt.Fprintf(&b, "\n  account %d: balance %d, postings %d; held %d, open holds %d; %d in another currency",
			m.AccountID, m.Balance, m.PostingsSum, m.Held, m.OpenHoldsSum, m.ForeignPostings)
	}
	for _, o := range r.Overdrawn {
		fmt.Fprintf(&b, "\n  account %d (%s): available %d", o.AccountID, o.Kind, o.Available)
	}
	return b.String()
}

// Check proves the ledger from its postings in one consistent snapshot of
// st and reports every finding. Its error is non-nil only when the check
// could not run; findings are in the Report.
func Check(ctx context.Context, st *store.Store) (Report, error) {
	var r Report
	err := st.View(ctx, func(tx *store.Tx) error {
		r = Report{}
		var err error
		if r.Transfers, err = tx.Count(ctx, "transfers"); err != nil {
			return err
		}
		if r.Postings, err = tx.Count(ctx, "postings"); err != nil {
			return err
		}
		if r.Unbalanced, err = tx.UnbalancedTransfers(ctx); err != nil {
			return err
		}
		if r.Mismatched, err = tx.AccountMismatches(ctx); err != nil {
			return err
		}
		accounts, err := tx.Accounts(ctx)
		if err != nil {
			return err
		}
		r.Accounts = len(accounts)
		for _, a := range accounts {
			if a.Kind.Cardholder() && Available(a) < 0 {
				r.Overdrawn = append(r.Overdrawn, Overdrawn{AccountID: a.ID, Kind: a.Kind, Available: Available(a)})
			}
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("check ledger: %w", err)
	}
	return r, nil
}
