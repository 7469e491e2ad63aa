package authz

import (
	"context"
	"errors"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/iso93"
)

// The funds checks end a purchase's pipeline: they move the money, so
// they run last, once every other check passed. A decline here is 116.

// holdFundsCheck opens a hold of the amount on the card's account for
// HoldTTL (an 1100).
var holdFundsCheck = check{name: "funds", phase: inTx, reads: reserveHold,
	codes: []iso93.ActionCode{iso93.ActionInsufficientFunds},
	run: func(ctx context.Context, st *auth) (decision, error) {
		ttl := st.s.HoldTTL
		if ttl == 0 {
			ttl = DefaultHoldTTL
		}
		hold, err := ledger.Hold(ctx, st.tx, st.acct.ID, st.r.Amount, st.r.Currency, st.tx.Now().Add(ttl))
		if errors.Is(err, ledger.ErrInsufficientFunds) {
			return declineOf(iso93.ActionInsufficientFunds, "declined", "insufficient funds on card "+itoa(st.card.ID)), nil
		}
		if err != nil {
			return pass, err
		}
		st.a.HoldID, st.a.Status = hold, store.AuthHeld
		return pass, nil
	}}

// postFundsCheck posts the amount from the card's account to the
// merchant's clearing account (a 1200).
var postFundsCheck = check{name: "funds", phase: inTx, reads: readClearing | reserveTransfer,
	codes: []iso93.ActionCode{iso93.ActionInsufficientFunds},
	run: func(ctx context.Context, st *auth) (decision, error) {
		return st.post(ctx, "declined", "insufficient funds on card "+itoa(st.card.ID))
	}}

// adviceFundsCheck posts an offline approval's amount as postFundsCheck
// does; an advice is never dropped, so its 116 is recorded and audited
// advice_declined for the merchant to follow up.
var adviceFundsCheck = check{name: "funds", phase: inTx, reads: readClearing | reserveTransfer,
	codes: []iso93.ActionCode{iso93.ActionInsufficientFunds},
	run: func(ctx context.Context, st *auth) (decision, error) {
		return st.post(ctx, "advice_declined", "offline approval exceeds available funds on card "+itoa(st.card.ID))
	}}

// post posts the request's purchase; insufficient funds decline 116 with
// kind and reason.
func (st *auth) post(ctx context.Context, kind, reason string) (decision, error) {
	t, err := purchase(ctx, st.tx, st.acct, st.term, st.r.Amount, st.r.Currency)
	if errors.Is(err, ledger.ErrInsufficientFunds) {
		return declineOf(iso93.ActionInsufficientFunds, kind, reason), nil
	}
	if err != nil {
		return pass, err
	}
	st.a.TransferID, st.a.Status = t, store.AuthCaptured
	return pass, nil
}

// purchase posts amount from the cardholder account to the merchant's
// clearing account.
func purchase(ctx context.Context, tx *store.Tx, acct store.Account, term store.Terminal, amount int64, currency string) (int64, error) {
	clearing, err := ledger.MerchantClearing(ctx, tx, term.MerchantID, currency)
	if err != nil {
		return 0, err
	}
	return ledger.Post(ctx, tx, ledger.KindPurchase,
		store.Posting{AccountID: acct.ID, Amount: -amount, Currency: currency},
		store.Posting{AccountID: clearing, Amount: amount, Currency: currency})
}
