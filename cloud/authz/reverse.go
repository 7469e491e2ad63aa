package authz

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/iso93"
)

// findOriginal returns the authorization r.Original names, from the same
// terminal and gateway. A completion advice row is followed to the
// authorization it completed, which carries the money. ok is false when
// there is no such authorization.
func findOriginal(ctx context.Context, tx *store.Tx, r Request) (orig store.Authorization, ok bool, err error) {
	od := r.Original
	if od == nil {
		return store.Authorization{}, false, nil
	}
	if od.IdempotencyKey != "" {
		orig, err = tx.AuthorizationByKey(ctx, od.IdempotencyKey)
	} else {
		orig, err = tx.AuthorizationByOriginal(ctx, r.TerminalID, od.MTI, od.STAN, od.LocalTime)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.Authorization{}, false, nil
	}
	if err != nil {
		return store.Authorization{}, false, err
	}
	if orig.TerminalID != r.TerminalID || orig.GatewayID != r.GatewayID {
		return store.Authorization{}, false, nil
	}
	switch orig.MTI {
	case iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest:
	case iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		if orig.OriginalID != 0 {
			orig, err = tx.Authorization(ctx, orig.OriginalID)
			if err != nil {
				return store.Authorization{}, false, err
			}
		}
	default:
		return store.Authorization{}, false, nil // a reversal is not reversible
	}
	return orig, true, nil
}

// lockFor locks, in ascending id order, every account a change to orig may
// touch (its card account and its transfer's accounts), then reads orig
// again so its status is current.
func lockFor(ctx context.Context, tx *store.Tx, orig store.Authorization) (store.Authorization, error) {
	var ids []int64
	if orig.AccountID != 0 {
		ids = append(ids, orig.AccountID)
	}
	if orig.TransferID != 0 {
		t, err := tx.Transfer(ctx, orig.TransferID)
		if err != nil {
			return store.Authorization{}, err
		}
		for _, p := range t.Postings {
			ids = append(ids, p.AccountID)
		}
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := tx.LockAccount(ctx, id); err != nil {
			return store.Authorization{}, err
		}
	}
	return tx.Authorization(ctx, orig.ID)
}

// reverse applies a 1420/1421: the original's hold is released or its
// posting reversed, and the answer is 400. Partial reversals are not
// supported yet: a reversal always undoes the whole original.
func (s *Switch) reverse(ctx context.Context, r Request) (Response, error) {
	if len(r.TerminalID) != 8 || !isDigits(r.STAN, 6) || r.Original == nil ||
		(r.Original.IdempotencyKey == "" && (!isDigits(r.Original.STAN, 6) || r.Original.MTI == "")) {
		return s.declineWith(ctx, r, nil, iso93.ActionFormatError, "request_invalid",
			"reversal needs terminal, STAN and the original's key or data elements")
	}
	_, ok, err := s.terminal(ctx, r)
	if err != nil {
		return Response{}, err
	}
	if !ok {
		return s.declineWith(ctx, r, nil, iso93.ActionNotPermittedToTerminal, "terminal_refused",
			"terminal unknown or not registered behind this gateway")
	}
	resp, err := s.record(ctx, r, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
		orig, ok, err := findOriginal(ctx, tx, r)
		if err != nil {
			return err
		}
		if !ok {
			return decline(ctx, tx, r, a, iso93.ActionOriginalNotFound, "reversal_unmatched", "original not found")
		}
		if orig, err = lockFor(ctx, tx, orig); err != nil {
			return err
		}
		a.OriginalID, a.CardID, a.AccountID = orig.ID, orig.CardID, orig.AccountID
		a.ActionCode, a.Status = iso93.ActionReversalAccepted, store.AuthAnswered
		switch orig.Status {
		case store.AuthHeld:
			if orig.HoldID == 0 {
				break // a brand-host authorization: the issuer holds the funds
			}
			err := ledger.Release(ctx, tx, orig.HoldID)
			if errors.Is(err, ledger.ErrHoldNotOpen) {
				// Released by expiry meanwhile: nothing left to undo.
				err = nil
			}
			if err != nil {
				return err
			}
		case store.AuthCaptured:
			t, err := ledger.Reverse(ctx, tx, orig.TransferID)
			if err != nil {
				return err
			}
			a.TransferID = t
		default:
			// Declined or already reversed: nothing to undo; still 400.
			return audit(ctx, tx, r, "reversal_noop", "original "+strconv.FormatInt(orig.ID, 10)+" is "+string(orig.Status))
		}
		orig.Status = store.AuthReversed
		if err := tx.UpdateAuthorization(ctx, orig); err != nil {
			return err
		}
		return s.reverseAtHost(ctx, tx, orig)
	})
	if err == nil && s.Router != nil {
		s.Router.Kick()
	}
	return resp, err
}

// advice applies a 1220/1221: with original data it completes that
// authorization's hold (capturing the advised amount); without, it is an
// offline approval whose card block is decrypted and checked and whose
// amount is posted. An offline approval of a chip card carries DE 55: its
// cryptogram (the card's TC, or the ARQC of a sale the gateway stood in
// for) is verified and its ATC must not have been used before
// (adviceChipVerifyCheck, adviceChipCheck; docs/emv.md). It goes through
// advicePipeline (docs/authorization.md). An advice is never
// dropped: a refusal is recorded with its action code and audited.
// Advices are not held to the KSN counter rule (they may arrive after
// later online requests from the same device); their idempotency key
// deduplicates them.
func (s *Switch) advice(ctx context.Context, r Request) (Response, error) {
	if r.Original != nil {
		return s.complete(ctx, r)
	}
	return s.run(ctx, &advicePipeline, s.newAuth(r))
}

// complete captures the hold of the authorization a completion advice
// names.
func (s *Switch) complete(ctx context.Context, r Request) (Response, error) {
	if code, reason := validate(r); code != "" {
		return s.declineWith(ctx, r, nil, code, "request_invalid", reason)
	}
	term, ok, err := s.terminal(ctx, r)
	if err != nil {
		return Response{}, err
	}
	if !ok {
		return s.declineWith(ctx, r, nil, iso93.ActionNotPermittedToTerminal, "terminal_refused",
			"terminal unknown or not registered behind this gateway")
	}
	return s.record(ctx, r, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
		orig, ok, err := findOriginal(ctx, tx, r)
		if err != nil {
			return err
		}
		if !ok {
			return decline(ctx, tx, r, a, iso93.ActionOriginalNotFound, "advice_unmatched", "original not found")
		}
		clearing, err := ledger.MerchantClearing(ctx, tx, term.MerchantID, r.Currency)
		if err != nil {
			return err
		}
		if orig, err = lockFor(ctx, tx, orig); err != nil {
			return err
		}
		a.OriginalID, a.CardID, a.AccountID = orig.ID, orig.CardID, orig.AccountID
		switch orig.Status {
		case store.AuthHeld:
		case store.AuthCaptured:
			return decline(ctx, tx, r, a, iso93.ActionDuplicateTransmission, "advice_declined",
				"original "+strconv.FormatInt(orig.ID, 10)+" already completed")
		default:
			return decline(ctx, tx, r, a, iso93.ActionOriginalNotFound, "advice_unmatched",
				"original "+strconv.FormatInt(orig.ID, 10)+" is "+string(orig.Status))
		}
		if orig.Currency != r.Currency {
			return decline(ctx, tx, r, a, iso93.ActionNotPermittedToCardholder, "advice_declined",
				"completion currency differs from the original's")
		}
		var t int64
		if orig.HoldID == 0 {
			// A brand-host authorization: the issuer holds the funds; the
			// purchase is posted from the host's settlement account.
			ra, err := tx.RoutedAuthorization(ctx, orig.ID)
			if err != nil {
				return err
			}
			brand, err := brandSettlement(ctx, tx, ra.Host, r.Currency)
			if err != nil {
				return err
			}
			t, err = ledger.Post(ctx, tx, ledger.KindPurchase,
				store.Posting{AccountID: brand, Amount: -r.Amount, Currency: r.Currency},
				store.Posting{AccountID: clearing, Amount: r.Amount, Currency: r.Currency})
			if err != nil {
				return err
			}
		} else {
			t, err = ledger.Capture(ctx, tx, orig.HoldID, r.Amount, clearing, ledger.KindPurchase)
		}
		switch {
		case errors.Is(err, ledger.ErrInsufficientFunds):
			return decline(ctx, tx, r, a, iso93.ActionInsufficientFunds, "advice_declined",
				"completion exceeds the hold and available funds")
		case errors.Is(err, ledger.ErrHoldNotOpen):
			return decline(ctx, tx, r, a, iso93.ActionOriginalNotFound, "advice_unmatched",
				"hold of original "+strconv.FormatInt(orig.ID, 10)+" expired")
		case err != nil:
			return err
		}
		a.TransferID, a.Status, a.ActionCode = t, store.AuthAnswered, iso93.ActionApproved
		orig.Status, orig.TransferID = store.AuthCaptured, t
		return tx.UpdateAuthorization(ctx, orig)
	})
}
