package authz

import (
	"context"
	"fmt"
	"time"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
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

// refund decides a refund 1200 through refundPipeline. The checks before
// the transaction (fields, terminal, card block) are those of a sale, and
// the card's BIN route is read there; inside it the KSN counter rule
// applies, the card is checked (status, expiry, currency, house-card
// merchant list; not the cardholder controls, which limit spending) and
// the refundable amount is computed with the card's account locked, so two
// concurrent refunds cannot both use the same purchases.
func (s *Switch) refund(ctx context.Context, r Request) (Response, error) {
	st := s.newAuth(r)
	st.declineKind, st.what = "refund_declined", "refund"
	return s.run(ctx, &refundPipeline, st)
}

// refundRouteLookupCheck reads the route of the card's BIN before the
// transaction (with a Router): a card that is not on-us is refused by
// refundRouteCheck, 111 (no_route) when no host serves its BIN, 902
// (refund_unsupported) when a brand host does: refunds are not forwarded.
var refundRouteLookupCheck = check{name: "route lookup", phase: beforeTx,
	run: func(ctx context.Context, st *auth) (decision, error) {
		if st.s.Router == nil || st.o.code != "" {
			return pass, nil
		}
		d, err := st.s.Router.Route(ctx, st.o.card.PAN)
		if err != nil {
			return pass, fmt.Errorf("refund: %w", err)
		}
		switch {
		case d.Routed():
			st.refusal = declineOf(iso93.ActionInvalidTransaction, "refund_unsupported", "refunds of brand-host cards are not supported")
		case !d.OnUs():
			st.refusal = declineOf(iso93.ActionInvalidCardNumber, "no_route", "BIN "+st.o.card.PAN.BIN()+" is neither on-us nor routed")
		}
		return pass, nil
	}}

// refundRouteCheck declines the refund of a card refundRouteLookupCheck
// found not on-us, inside the transaction so that the block's counter is
// used.
var refundRouteCheck = check{name: "route", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionInvalidCardNumber, iso93.ActionInvalidTransaction},
	run: func(_ context.Context, st *auth) (decision, error) {
		return st.refusal, nil
	}}

// refundableCheck declines a refund the card may not get at the merchant:
// 914 when no purchase of the card there falls within RefundWindow, 121
// when the amount exceeds what is left of them (refundable).
var refundableCheck = check{name: "refundable", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionOriginalNotFound, iso93.ActionExceedsAmountLimit},
	run: func(ctx context.Context, st *auth) (decision, error) {
		tx, r, m := st.tx, st.r, st.term.MerchantID
		bought, refunded, err := refundable(ctx, tx, st.card.ID, m, r.Currency, tx.Now().Add(-RefundWindow))
		if err != nil {
			return pass, err
		}
		switch {
		case bought == 0:
			return st.cardDecline(iso93.ActionOriginalNotFound, st.declineKind, "no purchase at merchant "+m+" within the refund window"), nil
		case r.Amount > bought-refunded:
			return st.cardDecline(iso93.ActionExceedsAmountLimit, st.declineKind,
				fmt.Sprintf("refund %d exceeds the %d left of purchases at merchant %s", r.Amount, bought-refunded, m)), nil
		}
		return pass, nil
	}}

// refundPostCheck moves the amount from the merchant's clearing account
// back to the card's account; it never declines.
var refundPostCheck = check{name: "refund", phase: inTx, reads: readClearing | reserveTransfer,
	run: func(ctx context.Context, st *auth) (decision, error) {
		tx, r := st.tx, st.r
		clearing, err := ledger.MerchantClearing(ctx, tx, st.term.MerchantID, r.Currency)
		if err != nil {
			return pass, err
		}
		t, err := ledger.Post(ctx, tx, KindRefund,
			store.Posting{AccountID: clearing, Amount: -r.Amount, Currency: r.Currency},
			store.Posting{AccountID: st.acct.ID, Amount: r.Amount, Currency: r.Currency})
		if err != nil {
			return pass, fmt.Errorf("refund %d to card %d: %w", r.Amount, st.card.ID, err)
		}
		st.a.TransferID, st.a.Status = t, store.AuthCaptured
		return pass, nil
	}}

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
