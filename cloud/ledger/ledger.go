// Package ledger is the center's double-entry book: transfers whose postings
// sum to zero per currency, holds that reserve available funds, and Check,
// which proves the book from its postings.
//
// Every function that changes money works inside a store transaction (a
// Tx: the *store.Tx of store.Update) so that the caller's other writes (an
// authorization row, an audit record) commit or roll back with it. Accounts
// are locked in ascending id order (Tx.LockAccount) before they are
// read, so concurrent transfers on one account serialise and never overspend
// it. Amounts are integer minor units of an ISO 4217 currency.
//
// Sign convention: an account's balance is the sum of its postings. Money
// leaving a cardholder account is a negative posting on it; a credit
// account's balance is therefore zero or negative (the outstanding amount
// owed), a prepaid or debit account's balance is the money on it.
package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/posgate/posgate/cloud/store"
)

// MaxAmount is the largest amount of one posting or hold: DE 4's twelve
// digits.
const MaxAmount = 999_999_999_999

var (
	// ErrUnbalanced is returned for a transfer whose postings do not sum to
	// zero in every currency.
	ErrUnbalanced = errors.New("ledger: postings do not sum to zero")
	// ErrInsufficientFunds is returned when a posting or hold would take a
	// cardholder account's available amount below zero.
	ErrInsufficientFunds = errors.New("ledger: insufficient available funds")
	// ErrCurrency is returned when a posting or hold is not in its account's
	// currency.
	ErrCurrency = errors.New("ledger: currency does not match the account")
	// ErrAmount is returned for a zero, negative (where not allowed) or too
	// large amount.
	ErrAmount = errors.New("ledger: invalid amount")
	// ErrHoldNotOpen is returned when capturing or releasing a hold that is
	// already captured or released.
	ErrHoldNotOpen = errors.New("ledger: hold is not open")
)

// Transfer kinds used by the center.
const (
	KindPurchase   = "purchase"   // a captured authorization or a financial request
	KindReversal   = "reversal"   // undoes a purchase
	KindTopUp      = "topup"      // issuer funding to a prepaid account
	KindAdjustment = "adjustment" // manual correction
)

// Available returns what a cardholder account may still spend:
// balance + credit line + overdraft - open holds. By product kind that is
// credit line - outstanding - holds (credit), balance + overdraft - holds
// (debit) and balance - holds (prepaid); house accounts may have a credit
// line. The center's own accounts are not limited and Available is not
// meaningful for them.
func Available(a store.Account) int64 {
	return a.Balance + a.CreditLine + a.Overdraft - a.Held
}

// Post records a transfer of the given kind with the given postings and
// returns its id. The postings must sum to zero per currency, each must be
// in its account's currency and non-zero, and no cardholder account that
// loses money may end with a negative available amount
// (ErrInsufficientFunds). Nothing is written when Post fails.
func Post(ctx context.Context, tx Tx, kind string, postings ...store.Posting) (int64, error) {
	if err := balanced(postings); err != nil {
		return 0, fmt.Errorf("post %s transfer: %w", kind, err)
	}
	id, err := apply(ctx, tx, kind, postings, nil)
	if err != nil {
		return 0, fmt.Errorf("post %s transfer: %w", kind, err)
	}
	return id, nil
}

func balanced(postings []store.Posting) error {
	if len(postings) < 2 {
		return fmt.Errorf("%d postings: %w", len(postings), ErrUnbalanced)
	}
	sums := map[string]int64{}
	for _, p := range postings {
		if p.Amount == 0 || p.Amount > MaxAmount || p.Amount < -MaxAmount {
			return fmt.Errorf("posting of %d on account %d: %w", p.Amount, p.AccountID, ErrAmount)
		}
		sums[p.Currency] += p.Amount
	}
	for _, c := range slices.Sorted(maps.Keys(sums)) {
		if sums[c] != 0 {
			return fmt.Errorf("currency %s sums to %d: %w", c, sums[c], ErrUnbalanced)
		}
	}
	return nil
}

// holdDelta is a change of an account's held amount.
type holdDelta struct {
	account  int64
	amount   int64
	currency string
}

// apply locks every account the postings and hold changes touch (ascending
// id), checks currencies and limits, then writes the transfer (if there are
// postings) and the new account amounts. It returns the transfer id or 0.
func apply(ctx context.Context, tx Tx, kind string, postings []store.Posting, holds []holdDelta) (int64, error) {
	type change struct {
		balance, held int64
	}
	changes := map[int64]*change{}
	currency := map[int64]string{}
	get := func(id int64, cur string) (*change, error) {
		if c, ok := currency[id]; ok && c != cur {
			return nil, fmt.Errorf("account %d in %s and %s: %w", id, c, cur, ErrCurrency)
		}
		currency[id] = cur
		if changes[id] == nil {
			changes[id] = &change{}
		}
		return changes[id], nil
	}
	for _, p := range postings {
		c, err := get(p.AccountID, p.Currency)
		if err != nil {
			return 0, err
		}
		c.balance += p.Amount
	}
	for _, h := range holds {
		c, err := get(h.account, h.currency)
		if err != nil {
			return 0, err
		}
		c.held += h.amount
	}
	ids := slices.Sorted(maps.Keys(changes))
	accounts := make([]store.Account, 0, len(ids))
	for _, id := range ids {
		a, err := tx.LockAccount(ctx, id)
		if err != nil {
			return 0, err
		}
		if a.Currency != currency[id] {
			return 0, fmt.Errorf("account %d is in %s, not %s: %w", id, a.Currency, currency[id], ErrCurrency)
		}
		c := changes[id]
		before := Available(a)
		a.Balance += c.balance
		a.Held += c.held
		if a.Held < 0 {
			return 0, fmt.Errorf("account %d held amount would be %d: %w", id, a.Held, ErrAmount)
		}
		// Only a change that lowers what is available is refused; a
		// credit (a reversal, a release) always goes through.
		if a.Kind.Cardholder() && Available(a) < before && Available(a) < 0 {
			return 0, fmt.Errorf("account %d: %w", id, ErrInsufficientFunds)
		}
		accounts = append(accounts, a)
	}
	var transferID int64
	if len(postings) > 0 {
		id, err := tx.InsertTransfer(ctx, store.Transfer{Kind: kind, Postings: postings})
		if err != nil {
			return 0, err
		}
		transferID = id
	}
	amounts := make([]store.AccountAmounts, len(accounts))
	for i, a := range accounts {
		amounts[i] = store.AccountAmounts{ID: a.ID, Balance: a.Balance, Held: a.Held}
	}
	if err := tx.SetAccountsAmounts(ctx, amounts...); err != nil {
		return 0, err
	}
	return transferID, nil
}

// Hold reserves amount of a cardholder account until expiresAt and returns
// the hold id; ErrInsufficientFunds when the account's available amount does
// not cover it.
func Hold(ctx context.Context, tx Tx, accountID, amount int64, currency string, expiresAt time.Time) (int64, error) {
	if amount <= 0 || amount > MaxAmount {
		return 0, fmt.Errorf("hold %d on account %d: %w", amount, accountID, ErrAmount)
	}
	if _, err := apply(ctx, tx, "", nil, []holdDelta{{accountID, amount, currency}}); err != nil {
		return 0, fmt.Errorf("hold %d on account %d: %w", amount, accountID, err)
	}
	id, err := tx.InsertHold(ctx, store.Hold{AccountID: accountID, Amount: amount, Currency: currency,
		ExpiresAt: expiresAt, Status: store.HoldOpen})
	if err != nil {
		return 0, fmt.Errorf("hold %d on account %d: %w", amount, accountID, err)
	}
	return id, nil
}

// lockOpenHold locks the hold's account and the other given accounts in
// ascending id order and returns the hold, which must be open.
func lockOpenHold(ctx context.Context, tx Tx, holdID int64, others ...int64) (store.Hold, error) {
	h, err := tx.Hold(ctx, holdID)
	if err != nil {
		return store.Hold{}, err
	}
	ids := append([]int64{h.AccountID}, others...)
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := tx.LockAccount(ctx, id); err != nil {
			return store.Hold{}, err
		}
	}
	// Read the hold again under the lock: whoever held it before may have
	// captured or released it.
	if h, err = tx.Hold(ctx, holdID); err != nil {
		return store.Hold{}, err
	}
	if h.Status != store.HoldOpen {
		return store.Hold{}, fmt.Errorf("hold is %s: %w", h.Status, ErrHoldNotOpen)
	}
	return h, nil
}

// Release releases an open hold, giving its amount back to the account's
// available funds.
func Release(ctx context.Context, tx Tx, holdID int64) error {
	h, err := lockOpenHold(ctx, tx, holdID)
	if err != nil {
		return fmt.Errorf("release hold %d: %w", holdID, err)
	}
	if _, err := apply(ctx, tx, "", nil, []holdDelta{{h.AccountID, -h.Amount, h.Currency}}); err != nil {
		return fmt.Errorf("release hold %d: %w", holdID, err)
	}
	if err := tx.SetHoldStatus(ctx, holdID, store.HoldReleased); err != nil {
		return fmt.Errorf("release hold %d: %w", holdID, err)
	}
	return nil
}

// Capture closes an open hold and posts amount (which may differ from the
// held amount) from the hold's account to counterAccountID as one transfer
// of the given kind, returning its id. When amount exceeds the hold the
// difference must be available (ErrInsufficientFunds); nothing changes on
// failure.
func Capture(ctx context.Context, tx Tx, holdID, amount, counterAccountID int64, kind string) (int64, error) {
	if amount <= 0 || amount > MaxAmount {
		return 0, fmt.Errorf("capture hold %d: amount %d: %w", holdID, amount, ErrAmount)
	}
	h, err := lockOpenHold(ctx, tx, holdID, counterAccountID)
	if err != nil {
		return 0, fmt.Errorf("capture hold %d: %w", holdID, err)
	}
	postings := []store.Posting{
		{AccountID: h.AccountID, Amount: -amount, Currency: h.Currency},
		{AccountID: counterAccountID, Amount: amount, Currency: h.Currency},
	}
	id, err := apply(ctx, tx, kind, postings, []holdDelta{{h.AccountID, -h.Amount, h.Currency}})
	if err != nil {
		return 0, fmt.Errorf("capture hold %d: %w", holdID, err)
	}
	if err := tx.SetHoldStatus(ctx, holdID, store.HoldCaptured); err != nil {
		return 0, fmt.Errorf("capture hold %d: %w", holdID, err)
	}
	return id, nil
}

// Reverse posts a transfer of kind KindReversal that undoes transfer id
// (every posting negated) and returns its id.
func Reverse(ctx context.Context, tx Tx, transferID int64) (int64, error) {
	t, err := tx.Transfer(ctx, transferID)
	if err != nil {
		return 0, fmt.Errorf("reverse transfer %d: %w", transferID, err)
	}
	postings := make([]store.Posting, len(t.Postings))
	for i, p := range t.Postings {
		postings[i] = store.Posting{AccountID: p.AccountID, Amount: -p.Amount, Currency: p.Currency}
	}
	id, err := apply(ctx, tx, KindReversal, postings, nil)
	if err != nil {
		return 0, fmt.Errorf("reverse transfer %d: %w", transferID, err)
	}
	return id, nil
}

// IssuerFunding returns the id of the issuer's funding account in currency
// (the source of prepaid top-ups), creating it on first use.
func IssuerFunding(ctx context.Context, tx Tx, currency string) (int64, error) {
	return tx.EnsureAccountByRef(ctx, store.Account{Kind: store.AccountIssuerFunding, Currency: currency,
		Ref: "issuer_funding:" + currency})
}

// ClearingShards is how many sub-accounts (shards) a merchant's clearing
// account has per currency on PostgreSQL. Every capture credits the
// merchant's clearing account; with one row, all sales of a merchant would
// serialise on its row lock for the length of their commits. Shard 0 has
// the ref "merchant_clearing:<merchant>:<currency>", shard k > 0 that ref
// followed by ":<k>". What the center owes a merchant is the sum of its
// shards (MerchantClearingBalance).
const ClearingShards = 16

// ClearingRefs returns the refs of the merchant's clearing shards in
// currency, shard 0 first: the accounts MerchantClearing picks from (on
// PostgreSQL; store.AuthReads.ClearingRefs can lock one ahead).
func ClearingRefs(merchantID, currency string) []string { return clearingRefs(merchantID, currency) }

// clearingRefs returns the refs of the merchant's clearing shards in
// currency, shard 0 first.
func clearingRefs(merchantID, currency string) []string {
	base := "merchant_clearing:" + merchantID + ":" + currency
	refs := make([]string, ClearingShards)
	refs[0] = base
	for k := 1; k < ClearingShards; k++ {
		refs[k] = base + ":" + strconv.Itoa(k)
	}
	return refs
}

// MerchantClearing returns the id of an account to credit a sale of the
// merchant in currency with: one shard of the merchant's clearing account
// (what the center owes the merchant until settlement), creating the
// shards on first use.
//
// On SQLite (one writer, no row contention) it is always shard 0. On
// PostgreSQL it is the lowest-id shard no other transaction holds locked,
// and it comes back locked until tx ends (SELECT ... FOR UPDATE SKIP
// LOCKED), so concurrent sales at one merchant do not wait for each other;
// only when every shard is locked does it return one the caller's posting
// will wait for. Reversals post to the shards of the transfer they undo.
func MerchantClearing(ctx context.Context, tx Tx, merchantID, currency string) (int64, error) {
	if tx.Dialect() != store.Postgres {
		return tx.EnsureAccountByRef(ctx, clearingAccount(merchantID, currency, clearingRefs(merchantID, currency)[0]))
	}
	refs := clearingRefs(merchantID, currency)
	id, err := tx.LockFreeAccountByRef(ctx, refs)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("merchant %s clearing account: %w", merchantID, err)
	}
	// None exists yet, or all are locked: create any missing (in shard
	// order, so concurrent creators queue instead of deadlocking), then
	// look again.
	as := make([]store.Account, len(refs))
	for i, r := range refs {
		as[i] = clearingAccount(merchantID, currency, r)
	}
	if err := tx.EnsureAccountsByRef(ctx, as); err != nil {
		return 0, fmt.Errorf("merchant %s clearing account: %w", merchantID, err)
	}
	id, err = tx.LockFreeAccountByRef(ctx, refs)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("merchant %s clearing account: %w", merchantID, err)
	}
	// Every shard is busy: take one at random and wait for it in Post.
	k := rand.IntN(len(refs))
	return tx.EnsureAccountByRef(ctx, as[k])
}

func clearingAccount(merchantID, currency, ref string) store.Account {
	return store.Account{Kind: store.AccountMerchantClearing, Currency: currency, Ref: ref, MerchantID: merchantID}
}

// MerchantClearingAccounts returns every existing shard of the merchant's
// clearing account in currency, ordered by id (none before the first sale).
// Settlement and reports read the merchant's position through it or
// MerchantClearingBalance, never through one shard.
func MerchantClearingAccounts(ctx context.Context, tx AccountReader, merchantID, currency string) ([]store.Account, error) {
	as, err := tx.AccountsByRef(ctx, clearingRefs(merchantID, currency))
	if err != nil {
		return nil, fmt.Errorf("merchant %s clearing accounts: %w", merchantID, err)
	}
	return as, nil
}

// MerchantClearingBalance returns what the center owes the merchant in
// currency until settlement: the sum of the balances of all its clearing
// shards (zero before the first sale).
func MerchantClearingBalance(ctx context.Context, tx AccountReader, merchantID, currency string) (int64, error) {
	as, err := MerchantClearingAccounts(ctx, tx, merchantID, currency)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, a := range as {
		sum += a.Balance
	}
	return sum, nil
}

// ReleaseExpired releases up to limit open holds that expired before now, in
// one transaction, and returns how many it released. Call it periodically;
// a hold past expiry still counts against the account until released.
func ReleaseExpired(ctx context.Context, st *store.Store, now time.Time, limit int) (int, error) {
	var n int
	err := st.Update(ctx, func(tx *store.Tx) error {
		n = 0
		holds, err := tx.ExpiredHolds(ctx, now, limit)
		if err != nil {
			return err
		}
		// Lock accounts in ascending id order, as everywhere else.
		slices.SortFunc(holds, func(a, b store.Hold) int { return cmp.Compare(a.AccountID, b.AccountID) })
		for _, h := range holds {
			err := Release(ctx, tx, h.ID)
			if errors.Is(err, ErrHoldNotOpen) {
				continue
			}
			if err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("release expired holds: %w", err)
	}
	return n, nil
}
