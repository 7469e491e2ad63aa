package authz

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/iso93"
)

// AuthRouting is the status of an authorization sent to a brand host and
// not answered yet; its recorded action code is 923 (request in progress),
// which is what a repeat of the request gets meanwhile.
const AuthRouting store.AuthStatus = "routing"

// AccountBrandSettlement is the kind of the per-host, per-currency account
// that approved brand-host purchases are posted from (what the brand owes
// the center until clearing): ref "brand_settlement:<host>:<currency>".
const AccountBrandSettlement store.AccountKind = "brand_settlement"

// SafeguardGrace is added to twice the host timeout to give the moment a
// forwarded request's safeguard reversal falls due if its answer was never
// recorded (the center stopped between sending and recording).
const SafeguardGrace = 30 * time.Second

func brandSettlement(ctx context.Context, tx *store.Tx, host, currency string) (int64, error) {
	return tx.EnsureAccountByRef(ctx, store.Account{Kind: AccountBrandSettlement, Currency: currency,
		Ref: "brand_settlement:" + host + ":" + currency})
}

// routeCheck reads the route of the card's BIN in the transaction's first
// batch (with a Router; readBINRoute): an on-us card goes on through the
// pipeline; any other card ends the transaction before anything is
// written (divert), and Switch.authorize sends it to its brand host
// (forward) or declines it 111 (no_route). It runs first in the
// transaction: the checks after it are the issuer's, and an off-us card's
// block counter is advanced by the transaction that records its answer.
var routeCheck = check{name: "route", phase: inTx, reads: readBINRoute,
	codes: []iso93.ActionCode{iso93.ActionInvalidCardNumber},
	run: func(ctx context.Context, st *auth) (decision, error) {
		if !st.routed {
			return pass, nil
		}
		d, err := routing.RouteIn(ctx, st.tx, st.o.card.PAN)
		if err != nil || d.OnUs() {
			return pass, err
		}
		st.offUs = d
		return decision{divert: true}, nil
	}}

// hostOutcome is how a forwarded request ended.
type hostOutcome int

const (
	hostAnswered    hostOutcome = iota
	hostTimedOut                // may have been delivered: reverse it
	hostUnavailable             // not delivered
)

// forward sends a card of a routed BIN to its brand host. It records the
// request as in progress (923) with a safeguard reversal in the host
// outbox (forwarding.start), sends it (ask), and records the host's answer,
// or on timeout makes the reversal due at once and decides in stand-in
// under the route's limits (finish).
func (s *Switch) forward(ctx context.Context, r Request, term store.Terminal, o opened, d routing.Decision) (Response, error) {
	f := &forwarding{s: s, r: r, term: term, o: o, d: d, host: d.Destination, timeout: routing.DefaultHostTimeout}
	if c, err := s.Router.Client(f.host); err == nil {
		f.timeout = c.Timeout()
	}
	local := r.LocalTime
	if local == "" {
		local = iso93.LocalTime(time.Now())
	}
	f.txn = routing.Txn{MTI: r.MTI, PAN: o.card.PAN, Expiry: o.card.Expiry, ProcessingCode: r.ProcessingCode,
		Amount: r.Amount, Currency: r.Currency, STAN: r.STAN, LocalTime: local, POSDataCode: r.POSDataCode,
		TerminalID: r.TerminalID, MerchantID: term.MerchantID}
	resp, err := f.start(ctx)
	if err != nil || f.mine.ID == 0 {
		return resp, err
	}
	f.txn.RRN = f.mine.RRN
	outcome, action, approval, err := f.ask(ctx)
	if err != nil {
		return Response{}, fmt.Errorf("authorize %s: %w", r.MTI, err)
	}
	var sealed []byte
	if outcome != hostAnswered && d.Route.StandInTxnLimit > 0 && s.Router.Sealer != nil {
		// Sealed before the transaction: no token call under row locks.
		if sealed, err = s.Router.Sealer.Seal(o.card.PAN); err != nil {
			return Response{}, fmt.Errorf("authorize %s: seal PAN for the stand-in advice: %w", r.MTI, err)
		}
	}
	resp, err = f.finish(ctx, outcome, action, approval, sealed)
	if outcome == hostTimedOut {
		s.Router.Kick()
	}
	if err != nil {
		// The safeguard reversal stays queued and reverses whatever the
		// host did once it falls due.
		return Response{}, fmt.Errorf("authorize %s: record brand-host answer: %w", r.MTI, err)
	}
	return resp, nil
}

// forwarding is one request on its way to a brand host.
type forwarding struct {
	s       *Switch
	r       Request
	term    store.Terminal
	o       opened
	d       routing.Decision
	host    string
	timeout time.Duration
	txn     routing.Txn

	mine      store.Authorization // the row recorded in progress (923)
	safeguard int64               // its safeguard reversal in the outbox
}

// start records the request: declined when its block is replayed (913) or
// its card expired (101), else in progress (923, status routing) with its
// routed_authorizations row and a safeguard reversal due after twice the
// host timeout. f.mine.ID is 0 when the request is not to be sent (the
// answer is then resp).
func (f *forwarding) start(ctx context.Context) (Response, error) {
	r, o, host := f.r, f.o, f.host
	return f.s.recordThen(ctx, r, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
		f.mine, f.safeguard = store.Authorization{}, 0
		if declined, err := advanceCounter(ctx, tx, r, a, o); err != nil || declined {
			return err
		}
		if !o.card.Expiry.IsZero() && o.card.Expiry.Expired(txnTime(r, tx.Now())) {
			return decline(ctx, tx, r, a, iso93.ActionExpiredCard, "declined", "card expired (not forwarded to "+host+")")
		}
		a.ActionCode, a.Status = iso93.ActionRequestInProgress, AuthRouting
		return nil
	}, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
		if a.Status != AuthRouting {
			return nil
		}
		if err := tx.InsertRoutedAuthorization(ctx, store.RoutedAuthorization{AuthorizationID: a.ID, Host: host,
			Fingerprint: o.fp, MaskedPAN: o.card.PAN.Masked(), LocalDay: f.txn.LocalTime[:6]}); err != nil {
			return err
		}
		t := f.txn
		t.RRN = a.RRN
		rev, err := f.s.Router.Reversal(t, iso93.ReasonTimeoutReversal, outboxKey(a.ID, "rev"), tx.Now())
		if err != nil {
			return err
		}
		f.safeguard, err = tx.InsertOutbox(ctx, store.OutboxMessage{AuthorizationID: a.ID, Host: host,
			Kind: store.OutboxReversal, Message: rev, NextAt: tx.Now().Add(2*f.timeout + SafeguardGrace)})
		if err != nil {
			return err
		}
		f.mine = *a
		return nil
	})
}

// ask sends the request to the host and classifies how it ended; an
// answer without a usable action code (or an approval without an
// approval code) counts as none. The error is a fault building the
// message.
func (f *forwarding) ask(ctx context.Context) (outcome hostOutcome, action, approval string, err error) {
	msg, err := f.s.Router.Request(f.txn, time.Now())
	if err != nil {
		return 0, "", "", err
	}
	hresp, ferr := f.s.Router.Forward(ctx, f.host, msg)
	switch {
	case ferr == nil:
		action, _ = hresp.GetString(iso93.FieldActionCode)
		approval, _ = hresp.GetString(iso93.FieldApprovalCode)
		if !isDigits(action, 3) || (iso93.ActionCode(action).Approved() && approval == "") {
			// An answer we cannot use: treat it as none.
			return hostTimedOut, action, approval, nil
		}
		return hostAnswered, action, approval, nil
	case errors.Is(ferr, routing.ErrHostUnavailable) || errors.Is(ferr, routing.ErrUnknownHost):
		return hostUnavailable, "", "", nil
	}
	return hostTimedOut, "", "", nil
}

// finish records how the forwarded request ended: the host's answer
// (cancelling the safeguard reversal), or the stand-in decision (the
// reversal made due at once after a timeout, cancelled when the request
// was not delivered).
func (f *forwarding) finish(ctx context.Context, outcome hostOutcome, action, approval string, sealed []byte) (Response, error) {
	var resp Response
	err := f.s.Store.Update(ctx, func(tx *store.Tx) error {
		a := f.mine
		ra := store.RoutedAuthorization{AuthorizationID: a.ID, HostAction: action}
		switch outcome {
		case hostAnswered:
			if err := tx.SetOutboxState(ctx, f.safeguard, store.OutboxCancelled, "host answered "+action); err != nil {
				return err
			}
			if iso93.ActionCode(action).Approved() {
				if err := approveRouted(ctx, tx, &a, f.host, f.term); err != nil {
					return err
				}
				a.ApprovalCode = approval
			} else {
				if err := decline(ctx, tx, f.r, &a, iso93.ActionCode(action), "host_declined", "brand host "+f.host+" declined"); err != nil {
					return err
				}
			}
		default:
			var err error
			if outcome == hostTimedOut {
				err = tx.RescheduleOutbox(ctx, f.safeguard, tx.Now())
			} else {
				err = tx.SetOutboxState(ctx, f.safeguard, store.OutboxCancelled, "request not delivered")
			}
			if err != nil {
				return err
			}
			if ra.StandIn, err = f.s.standIn(ctx, tx, f.r, &a, f.o, f.d, outcome, f.txn, sealed); err != nil {
				return err
			}
		}
		if err := tx.SetAuthorizationAnswer(ctx, a); err != nil {
			return err
		}
		if err := tx.UpdateRoutedAuthorization(ctx, ra); err != nil {
			return err
		}
		resp = responseOf(a)
		return nil
	})
	return resp, err
}

// approveRouted applies an approval of a routed card: a 1200 posts the
// purchase from the host's settlement account to the merchant; a 1100 is
// recorded as held without a local hold (the issuer holds the funds).
func approveRouted(ctx context.Context, tx *store.Tx, a *store.Authorization, host string, term store.Terminal) error {
	a.ActionCode = iso93.ActionApproved
	if a.MTI == iso93.MTIAuthorizationRequest {
		a.Status = store.AuthHeld
		return nil
	}
	brand, err := brandSettlement(ctx, tx, host, a.Currency)
	if err != nil {
		return err
	}
	clearing, err := ledger.MerchantClearing(ctx, tx, term.MerchantID, a.Currency)
	if err != nil {
		return err
	}
	t, err := ledger.Post(ctx, tx, ledger.KindPurchase,
		store.Posting{AccountID: brand, Amount: -a.Amount, Currency: a.Currency},
		store.Posting{AccountID: clearing, Amount: a.Amount, Currency: a.Currency})
	if err != nil {
		return err
	}
	a.TransferID, a.Status = t, store.AuthCaptured
	return nil
}

// standIn decides a routed request its host did not answer: approved under
// the route's per-transaction limit and the card's daily stand-in total
// (by fingerprint and local day), flagged and reported to the host by a
// 1220 advice in the outbox; otherwise declined 911 (timed out) or 907
// (host unavailable).
func (s *Switch) standIn(ctx context.Context, tx *store.Tx, r Request, a *store.Authorization, o opened,
	d routing.Decision, outcome hostOutcome, txn routing.Txn, sealed []byte) (bool, error) {
	code := iso93.ActionIssuerTimedOut
	if outcome == hostUnavailable {
		code = iso93.ActionIssuerInoperative
	}
	rt := d.Route
	no := func(reason string) (bool, error) {
		return false, decline(ctx, tx, r, a, code, "standin_declined",
			"brand host "+d.Destination+" did not answer; "+reason)
	}
	switch {
	case rt.StandInTxnLimit <= 0 || len(sealed) == 0:
		return no("route has no stand-in")
	case r.Amount > rt.StandInTxnLimit:
		return no("amount above the stand-in transaction limit")
	}
	total, err := tx.StandInTotal(ctx, o.fp, txn.LocalTime[:6])
	if err != nil {
		return false, err
	}
	if rt.StandInDailyLimit > 0 && total+r.Amount > rt.StandInDailyLimit {
		return no("card's stand-in total for the day would exceed " + strconv.FormatInt(rt.StandInDailyLimit, 10))
	}
	term, err := tx.Terminal(ctx, r.TerminalID)
	if err != nil {
		return false, err
	}
	if err := approveRouted(ctx, tx, a, d.Destination, term); err != nil {
		return false, err
	}
	code6, err := approvalCode()
	if err != nil {
		return false, err
	}
	a.ApprovalCode = code6
	t := txn
	t.RRN = a.RRN
	adv, err := s.Router.Advice(t, code6, outboxKey(a.ID, "adv"), tx.Now())
	if err != nil {
		return false, err
	}
	if _, err := tx.InsertOutbox(ctx, store.OutboxMessage{AuthorizationID: a.ID, Host: d.Destination,
		Kind: store.OutboxAdvice, Message: adv, PANSealed: sealed}); err != nil {
		return false, err
	}
	_, err = tx.InsertAudit(ctx, store.AuditRecord{Kind: "standin_approved", Actor: "switch",
		Detail: fmt.Sprintf("authorization %d for host %q approved in stand-in (reason %s)", a.ID, d.Destination, iso93.ReasonStandIn)})
	return true, err
}

// outboxKey is DE 123 of a message the center owes a host about one
// authorization.
func outboxKey(authID int64, kind string) string {
	return "posgate-" + strconv.FormatInt(authID, 10) + "-" + kind
}

// reverseAtHost queues a 1420 (reason 4000) telling the brand host of a
// routed original that it was reversed; nothing for an on-us original.
func (s *Switch) reverseAtHost(ctx context.Context, tx *store.Tx, orig store.Authorization) error {
	if s.Router == nil {
		return nil
	}
	ra, err := tx.RoutedAuthorization(ctx, orig.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	term, err := tx.Terminal(ctx, orig.TerminalID)
	if err != nil {
		return err
	}
	t := routing.Txn{MTI: orig.MTI, ProcessingCode: orig.ProcessingCode, Amount: orig.Amount, Currency: orig.Currency,
		STAN: orig.STAN, LocalTime: orig.LocalTime, TerminalID: orig.TerminalID, MerchantID: term.MerchantID, RRN: orig.RRN}
	if t.LocalTime == "" {
		t.LocalTime = iso93.LocalTime(orig.CreatedAt)
	}
	msg, err := s.Router.Reversal(t, iso93.ReasonCustomerCancel, outboxKey(orig.ID, "cancel"), tx.Now())
	if err != nil {
		return err
	}
	_, err = tx.InsertOutbox(ctx, store.OutboxMessage{AuthorizationID: orig.ID, Host: ra.Host,
		Kind: store.OutboxReversal, Message: msg})
	return err
}
