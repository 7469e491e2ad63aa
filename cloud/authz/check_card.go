package authz

import (
	"context"
	"errors"

	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/iso93"
)

// The card checks, inside the transaction: the card exists, is usable,
// has not expired, its account is locked, takes the currency and (for a
// house card) the merchant, and its cardholder's controls allow the
// purchase. Their declines are audited with auth.declineKind ("declined";
// "refund_declined" for refunds) and name the card by id.

// cardCheck finds the card by fingerprint: 111 when there is none. From
// here on the authorization row names the card and its account.
var cardCheck = check{name: "card", phase: inTx, reads: readCard,
	codes: []iso93.ActionCode{iso93.ActionInvalidCardNumber},
	run: func(ctx context.Context, st *auth) (decision, error) {
		c, err := st.tx.CardByFingerprint(ctx, st.o.fp)
		if errors.Is(err, store.ErrNotFound) {
			return declineOf(iso93.ActionInvalidCardNumber, st.declineKind, "no card with this fingerprint"), nil
		}
		if err != nil {
			return pass, err
		}
		st.card = c
		st.a.CardID, st.a.AccountID = c.ID, c.AccountID
		return pass, nil
	}}

// cardStatusCheck declines a card that is not active: 208 lost, 209
// stolen, 104 suspended, 125 closed or not activated.
var cardStatusCheck = check{name: "card status", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionLostCard, iso93.ActionStolenCard, iso93.ActionRestrictedCard, iso93.ActionCardNotEffective},
	run: func(_ context.Context, st *auth) (decision, error) {
		if code, reason := cardStatus(st.card.Status); code != "" {
			return st.cardDecline(code, st.declineKind, reason), nil
		}
		return pass, nil
	}}

// cardStatus maps a card status to its decline; "" lets the card through.
func cardStatus(s store.CardStatus) (iso93.ActionCode, string) {
	switch s {
	case store.CardLost:
		return iso93.ActionLostCard, "lost"
	case store.CardStolen:
		return iso93.ActionStolenCard, "stolen"
	case store.CardSuspended:
		return iso93.ActionRestrictedCard, "suspended"
	case store.CardClosed:
		return iso93.ActionCardNotEffective, "closed"
	case store.CardInactive:
		return iso93.ActionCardNotEffective, "not activated"
	}
	return "", ""
}

// expiryCheck declines 101 a card expired at the transaction's date
// (txnTime), by the issuer's record or by the expiry the card carried.
var expiryCheck = check{name: "expiry", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionExpiredCard},
	run: func(_ context.Context, st *auth) (decision, error) {
		when := txnTime(st.r, st.tx.Now())
		exp, err := card.ParseExpiry(st.card.Expiry)
		if err != nil || exp.Expired(when) || (!st.o.card.Expiry.IsZero() && st.o.card.Expiry.Expired(when)) {
			return st.cardDecline(iso93.ActionExpiredCard, st.declineKind, "expired"), nil
		}
		return pass, nil
	}}

// accountLockCheck locks the card's account row; it never declines. The
// lock comes before the controls read today's total and before the funds
// or refundable amount are computed, so that concurrent requests on one
// card cannot both pass a limit (controls.Check's locking contract).
var accountLockCheck = check{name: "account lock", phase: inTx, reads: readAccountLock,
	run: func(ctx context.Context, st *auth) (decision, error) {
		acct, err := st.tx.LockAccount(ctx, st.card.AccountID)
		st.acct = acct
		return pass, err
	}}

// currencyCheck declines 119 a request in another currency than the
// card's account.
var currencyCheck = check{name: "currency", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionNotPermittedToCardholder},
	run: func(_ context.Context, st *auth) (decision, error) {
		if st.acct.Currency != st.r.Currency {
			return st.cardDecline(iso93.ActionNotPermittedToCardholder, st.declineKind, st.what+" currency differs from the account's"), nil
		}
		return pass, nil
	}}

// houseCardCheck declines 119 a house card at a merchant its product does
// not list.
var houseCardCheck = check{name: "house card", phase: inTx, reads: readMerchant,
	codes: []iso93.ActionCode{iso93.ActionNotPermittedToCardholder},
	run: func(ctx context.Context, st *auth) (decision, error) {
		if st.acct.Kind != store.AccountHouse {
			return pass, nil
		}
		ok, err := st.tx.ProductAllowsMerchant(ctx, st.card.ProductID, st.term.MerchantID)
		if err != nil || ok {
			return pass, err
		}
		return st.cardDecline(iso93.ActionNotPermittedToCardholder, st.declineKind, "house card not accepted at merchant "+st.term.MerchantID), nil
	}}

// controlsCheck applies the cardholder's controls (controls.Check: lock,
// per-transaction and daily limits, MCCs, overseas, e-commerce) with the
// account locked.
var controlsCheck = check{name: "controls", phase: inTx, reads: readControls | readMerchant,
	codes: []iso93.ActionCode{iso93.ActionCardNotEffective, iso93.ActionNotPermittedToCardholder, iso93.ActionExceedsAmountLimit, iso93.ActionExceedsFrequencyLimit},
	run: func(ctx context.Context, st *auth) (decision, error) {
		term := st.term
		code, reason, err := controls.Check(ctx, st.tx, st.card, controls.Txn{Amount: st.r.Amount, Currency: st.r.Currency, MCC: term.MCC,
			MerchantID: term.MerchantID, ECommerce: controls.ECommerce(st.r.POSDataCode)})
		if err != nil || code == "" {
			return pass, err
		}
		return st.cardDecline(code, st.declineKind, "cardholder control: "+reason), nil
	}}
