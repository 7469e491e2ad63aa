package authz

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/iso93"
)

// Refunds (docs/ledger.md, "Refunds").
//
// A refund is a 1200 whose processing code starts with 20. For an on-us
// card it moves the amount from the merchant's clearing account back to the
// cardholder account in one double-entry transfer of kind KindRefund. It is
// approved only up to what the card may still get back at that merchant:
// the card's captured purchases at the merchant's terminals recorded in
// the last RefundWindow, less the refunds to it there in the same window
// that still stand. More is declined 121 (exceeds the amount limit); no
// purchase at all within the window declines 914 (original not found).

// RefundWindow is how far back purchases count towards what a card may be
// refunded at a merchant.
const RefundWindow = 90 * 24 * time.Hour

// KindRefund is the ledger transfer kind of a refund.
const KindRefund = "refund"

// refundPageSize is how many authorization rows one page of the refundable
// scan reads.
const refundPageSize = 1000

// isRefund reports whether r is a refund request: a 1200 with processing
// code 20xxxx.
func isRefund(r Request) bool {
	return r.MTI == iso93.MTIFinancialRequest && len(r.ProcessingCode) == 6 && r.ProcessingCode[:2] == "20"
}

// refund decides a refund 1200. The checks before the transaction (fields,
// terminal, card block, routing) are those of a sale; inside it the KSN
// counter rule applies, the card is checked (status, expiry, currency,
// house-card merchant list; not the cardholder controls, which limit
// spending) and the refundable amount is computed with the card's account
// locked, so two concurrent refunds cannot both use the same purchases.
func (s *Switch) refund(ctx context.Context, r Request) (Response, error) {
	term, o, resp, err := s.prepare(ctx, r)
	if resp != nil || err != nil {
		return deref(resp), err
	}
	if s.Router != nil && o.code == "" {
		d, err := s.Router.Route(ctx, o.card.PAN)
		if err != nil {
			return Response{}, fmt.Errorf("refund: %w", err)
		}
		if !d.OnUs() {
			code, kind, reason := string(iso93.ActionInvalidCardNumber), "no_route", "BIN "+o.card.PAN.BIN()+" is neither on-us nor routed"
			if d.Routed() {
				code, kind, reason = string(iso93.ActionInvalidTransaction), "refund_unsupported", "refunds of brand-host cards are not supported"
			}
			return s.record(ctx, r, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
				if declined, err := advanceCounter(ctx, tx, r, a, o); err != nil || declined {
					return err
				}
				return decline(ctx, tx, r, a, code, kind, reason)
			})
		}
	}
	return s.record(ctx, r, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
		if declined, err := advanceCounter(ctx, tx, r, a, o); err != nil || declined {
			return err
		}
		if o.code != "" {
			return decline(ctx, tx, r, a, o.code, o.kind, o.reason)
		}
		c, err := tx.CardByFingerprint(ctx, o.fp)
		if errors.Is(err, store.ErrNotFound) {
			return decline(ctx, tx, r, a, string(iso93.ActionInvalidCardNumber), "refund_declined", "no card with this fingerprint")
		}
		if err != nil {
			return err
		}
		a.CardID, a.AccountID = c.ID, c.AccountID
		no := func(code iso93.ActionCode, reason string) error {
			return decline(ctx, tx, r, a, string(code), "refund_declined", "card "+strconv.FormatInt(c.ID, 10)+": "+reason)
		}
		if code, reason := refundCardStatus(c.Status); code != "" {
			return no(code, reason)
		}
		when := txnTime(r, tx.Now())
		if exp, err := card.ParseExpiry(c.Expiry); err != nil || exp.Expired(when) || (!o.card.Expiry.IsZero() && o.card.Expiry.Expired(when)) {
			return no(iso93.ActionExpiredCard, "expired")
		}
		acct, err := tx.LockAccount(ctx, c.AccountID)
		if err != nil {
			return err
		}
		if acct.Currency != r.Currency {
			return no(iso93.ActionNotPermittedToCardholder, "refund currency differs from the account's")
		}
		if acct.Kind == store.AccountHouse {
			ok, err := tx.ProductAllowsMerchant(ctx, c.ProductID, term.MerchantID)
			if err != nil {
				return err
			}
			if !ok {
				return no(iso93.ActionNotPermittedToCardholder, "house card not accepted at merchant "+term.MerchantID)
			}
		}
		bought, refunded, err := refundable(ctx, tx, c.ID, term.MerchantID, r.Currency, tx.Now().Add(-RefundWindow))
		if err != nil {
			return err
		}
		switch {
		case bought == 0:
			return no(iso93.ActionOriginalNotFound, "no purchase at merchant "+term.MerchantID+" within the refund window")
		case r.Amount > bought-refunded:
			return no(iso93.ActionExceedsAmountLimit, fmt.Sprintf("refund %d exceeds the %d left of purchases at merchant %s", r.Amount, bought-refunded, term.MerchantID))
		}
		clearing, err := ledger.MerchantClearing(ctx, tx, term.MerchantID, r.Currency)
		if err != nil {
			return err
		}
		t, err := ledger.Post(ctx, tx, KindRefund,
			store.Posting{AccountID: clearing, Amount: -r.Amount, Currency: r.Currency},
			store.Posting{AccountID: acct.ID, Amount: r.Amount, Currency: r.Currency})
		if err != nil {
			return fmt.Errorf("refund %d to card %d: %w", r.Amount, c.ID, err)
		}
		a.TransferID, a.Status, a.ActionCode = t, store.AuthCaptured, string(iso93.ActionApproved)
		return nil
	})
}

// capturedFrom returns what transfer id took from the cardholder account.
func capturedFrom(ctx context.Context, tx *store.Tx, id, account int64) (int64, error) {
	t, err := tx.Transfer(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("read capture transfer %d: %w", id, err)
	}
	var sum int64
	for _, p := range t.Postings {
		if p.AccountID == account && p.Amount < 0 {
			sum -= p.Amount
		}
	}
	return sum, nil
}

// refundCardStatus maps a card status to the decline of a refund to it,
// as for a sale; "" lets it through.
func refundCardStatus(s store.CardStatus) (iso93.ActionCode, string) {
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

// refundable sums, for card cardID at merchantID's own terminals in
// currency since from, the captured purchases (processing code 00: 1200s,
// completed 1100s at the amount captured, offline advices) and the captured refunds (20). A
// reversed purchase or refund no longer counts. The caller holds the
// card account's lock.
func refundable(ctx context.Context, tx *store.Tx, cardID int64, merchantID, currency string, from time.Time) (bought, refunded int64, err error) {
	terms, err := tx.Terminals(ctx, merchantID)
	if err != nil {
		return 0, 0, fmt.Errorf("terminals of merchant %s: %w", merchantID, err)
	}
	own := make(map[string]bool, len(terms))
	for _, t := range terms {
		own[t.ID] = true
	}
	var before int64
	for {
		page, err := tx.Authorizations(ctx, store.AuthFilter{Scope: merchantID, From: from, BeforeID: before, Limit: refundPageSize})
		if err != nil {
			return 0, 0, fmt.Errorf("purchases of card %d at merchant %s: %w", cardID, merchantID, err)
		}
		for _, a := range page {
			if a.CardID != cardID || !own[a.TerminalID] || a.Currency != currency || a.Status != store.AuthCaptured || len(a.ProcessingCode) != 6 {
				continue
			}
			switch a.ProcessingCode[:2] {
			case "00":
				amount := a.Amount
				if a.MTI == iso93.MTIAuthorizationRequest && a.TransferID != 0 {
					// A completed pre-authorization: what was captured,
					// which may be less than what was authorized.
					if amount, err = capturedFrom(ctx, tx, a.TransferID, a.AccountID); err != nil {
						return 0, 0, err
					}
				}
				bought += amount
			case "20":
				refunded += a.Amount
			}
		}
		if len(page) < refundPageSize {
			return bought, refunded, nil
		}
		before = page[len(page)-1].ID
	}
}
