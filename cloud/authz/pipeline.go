package authz

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/protocol/iso93"
)

// The authorization as a pipeline of named checks (docs/authorization.md).
//
// A request that moves money (an 1100 or 1200 purchase, a 1200 refund, an
// offline approval advice) goes through one pipeline: an ordered list of
// checks, each of which passes or returns a decision (action code, audit
// kind, reason). The first decision ends the request: it is recorded with
// its audit record. A request every check passes is approved; its last
// check (funds, refund) has moved the money by then.
//
// A pipeline has two phases. The checks before the transaction read what
// they need in their own short reads and may call the token (decrypt the
// card block, verify the ARQC, CVV2 or PIN): no row lock is held across a
// token call. A decision there is recorded at once, in a transaction of
// its own. The checks inside the transaction run in one store transaction
// that also writes the authorization row, in pipeline order; what they
// read is declared (check.reads), and a batched pipeline prefetches the
// union of those declarations in the transaction's first round trip
// (store.Tx.Prefetch), so the prefetch is derived from the checks and
// cannot drift from them.
//
// Adding a check is one new file holding its check value and its run
// function, its place in the lists below (and its row in
// docs/authorization.md, which TestPipelineDocumented compares), and its
// test.

// phase is when a check runs.
type phase int

const (
	// beforeTx checks run before the store transaction, in no lock; they
	// may call the token.
	beforeTx phase = iota
	// inTx checks run inside the authorization's transaction, with the
	// card's account locked from the account lock on.
	inTx
)

func (p phase) String() string {
	if p == beforeTx {
		return "before the transaction"
	}
	return "in the transaction"
}

// decision is what a check decided: the zero decision passes the request
// on to the next check; one with an action code declines it (and is
// audited with kind and reason); one with divert ends the transaction
// without writing anything (the card is not on-us, see routeCheck).
type decision struct {
	action iso93.ActionCode
	kind   string
	reason string
	divert bool
}

// pass lets a request go on to the next check. It is the zero decision;
// nothing assigns it.
var pass decision

func (d decision) declined() bool { return d.action != "" }

func declineOf(action iso93.ActionCode, kind, reason string) decision {
	return decision{action: action, kind: kind, reason: reason}
}

// reads is a set of what checks read, lock or reserve in the store; each
// element maps onto a field of store.AuthReads (authReads).
type reads uint16

const (
	// readKey is the idempotency key's recorded answer (AuthReads.Key).
	readKey reads = 1 << iota
	// readTerminal is the request's terminal (AuthReads.TerminalID).
	readTerminal
	// readBINRoute is the on-us test of the card's BIN
	// (AuthReads.BINPrefix, PANLength), when the switch routes.
	readBINRoute
	// readDeviceCounter advances the DUKPT device's counter
	// (AuthReads.Device, Counter: a write).
	readDeviceCounter
	// readCard is the card by fingerprint (AuthReads.Fingerprint).
	readCard
	// readAccountLock locks the card's account (AuthReads.Fingerprint).
	readAccountLock
	// readControls is the card's controls and the day's approved total
	// (AuthReads.Fingerprint, DayFrom, DayTo).
	readControls
	// readMerchant is the product's merchant list and the merchant's
	// country (AuthReads.MerchantID).
	readMerchant
	// readClearing locks a free clearing shard of the merchant
	// (AuthReads.ClearingRefs).
	readClearing
	// reserveAuthorization, reserveHold and reserveTransfer draw the id
	// of the row the transaction may insert (AuthReads.Reserve).
	reserveAuthorization
	reserveHold
	reserveTransfer
)

// check is one named step of a pipeline.
type check struct {
	name  string
	phase phase
	// reads is what run reads through the transaction (inTx checks), or
	// what the first look before any check reads for it (the terminal).
	// Token checks read the card's security settings in their own read
	// before the transaction and declare nothing.
	reads reads
	// codes lists the action codes run may decide, for the documentation
	// and its test.
	codes []iso93.ActionCode
	run   func(ctx context.Context, st *auth) (decision, error)
}

// pipeline is the ordered checks of one kind of request.
type pipeline struct {
	name   string
	checks []check
	// batched prefetches the inTx checks' reads in the transaction's
	// first round trip; the idempotency key is then not read again in
	// the transaction (see Switch.recordWith). Pipelines without it
	// (refunds, advices) read as they go.
	batched bool
}

// The pipelines. Their order is the order the checks run in; docs/
// authorization.md explains it and TestPipelineOrder proves it.
var (
	// authorizationPipeline decides an 1100 (funds: a hold) and
	// financialPipeline a 1200 purchase (funds: a posting); they differ
	// only in their last check.
	authorizationPipeline = pipeline{name: "authorization", batched: true, checks: []check{
		validateCheck, terminalCheck, cardBlockCheck, de55ParseCheck, cardSecurityCheck, pinVerifyCheck,
		routeCheck, replayCheck, fingerprintCheck, de55Check,
		cardCheck, cardStatusCheck, expiryCheck, accountLockCheck, currencyCheck, houseCardCheck, controlsCheck,
		fallbackCheck, chipCheck, cvvCheck, pinCheck, holdFundsCheck,
	}}
	financialPipeline = pipeline{name: "financial", batched: true, checks: []check{
		validateCheck, terminalCheck, cardBlockCheck, de55ParseCheck, cardSecurityCheck, pinVerifyCheck,
		routeCheck, replayCheck, fingerprintCheck, de55Check,
		cardCheck, cardStatusCheck, expiryCheck, accountLockCheck, currencyCheck, houseCardCheck, controlsCheck,
		fallbackCheck, chipCheck, cvvCheck, pinCheck, postFundsCheck,
	}}
	// refundPipeline decides a 1200 refund (refund.go): the card checks
	// of a sale without the cardholder controls, which limit spending.
	refundPipeline = pipeline{name: "refund", checks: []check{
		validateCheck, terminalCheck, cardBlockCheck, refundRouteLookupCheck,
		replayCheck, fingerprintCheck, refundRouteCheck,
		cardCheck, cardStatusCheck, expiryCheck, accountLockCheck, currencyCheck, houseCardCheck,
		refundableCheck, refundPostCheck,
	}}
	// advicePipeline applies an offline approval advice (a 1220/1221
	// without original data): it is not held to the KSN counter rule and
	// carries no PIN or CVV2.
	advicePipeline = pipeline{name: "advice", checks: []check{
		validateCheck, terminalCheck, cardBlockCheck, adviceChipVerifyCheck,
		deviceCounterCheck, fingerprintCheck, adviceDE55Check,
		cardCheck, cardStatusCheck, expiryCheck, accountLockCheck, currencyCheck, houseCardCheck, controlsCheck,
		adviceChipCheck, adviceFundsCheck,
	}}
)

// firstLook is what Authorize reads before any check, in one round trip:
// the idempotency key's answer and what the terminal check reads.
var firstLook = readKey | terminalCheck.reads

// auth is one request on its way through a pipeline: the request, what
// the checks before the transaction found, and inside the transaction the
// transaction, the row being decided and what the checks found there.
type auth struct {
	s *Switch
	r Request

	// Found before the transaction.
	term    store.Terminal
	o       opened
	routed  bool          // the card's BIN route is read in the transaction
	chip    *de55.Request // the request's DE 55, parsed
	chipErr error         // why DE 55 is refused (904 or 902)
	sec     *security     // the token's verdict on the ARQC and CVV2
	pin     *pinVerdict   // the token's verdict on the PIN
	advice  adviceChip    // an advice's DE 55 and its verdict
	refusal decision      // a refund's route refusal (refundRouteLookupCheck)
	// declineKind is the audit kind of the card checks' declines:
	// "declined", or "refund_declined" for refunds; what names the
	// request in their reasons ("transaction" or "refund").
	declineKind, what string

	// Inside the transaction; reset by begin at each attempt.
	tx         *store.Tx
	a          *store.Authorization
	card       store.Card
	acct       store.Account
	offUs      routing.Decision // the route of a card that is not on-us
	atcSettled bool             // the chip check ran: no useDeclinedATC on a decline
}

func (s *Switch) newAuth(r Request) *auth {
	return &auth{s: s, r: r, declineKind: "declined", what: "transaction"}
}

// begin starts an attempt of the transaction (the store may run it more
// than once).
func (st *auth) begin(tx *store.Tx, a *store.Authorization) {
	st.tx, st.a = tx, a
	st.card, st.acct, st.offUs, st.atcSettled = store.Card{}, store.Account{}, routing.Decision{}, false
}

// cardDecline declines the request for the card found by cardCheck, its
// reason naming the card by id.
func (st *auth) cardDecline(action iso93.ActionCode, kind, reason string) decision {
	return declineOf(action, kind, "card "+itoa(st.card.ID)+": "+reason)
}

// errDiverted ends a transaction whose route check found the card not
// on-us; nothing was written.
var errDiverted = errors.New("authz: card is not on-us")

// inTxReads is the union of what p's checks inside the transaction read,
// and the authorization row every pipeline inserts.
func (p *pipeline) inTxReads() reads {
	rd := reserveAuthorization
	for _, c := range p.checks {
		if c.phase == inTx {
			rd |= c.reads
		}
	}
	return rd
}

// authReads turns a set of reads into what store.Tx.Prefetch fetches for
// st; now is the transaction's clock (the day of the controls' total).
func (st *auth) authReads(now time.Time, rd reads) store.AuthReads {
	var ar store.AuthReads
	if rd&readKey != 0 {
		ar.Key = st.r.IdempotencyKey
	}
	if rd&readTerminal != 0 {
		ar.TerminalID = st.r.TerminalID
	}
	if rd&readBINRoute != 0 && st.routed {
		ar.BINPrefix, ar.PANLength = routing.Prefix(st.o.card.PAN), len(st.o.card.PAN.Digits())
	}
	if rd&readDeviceCounter != 0 {
		ar.Device, ar.Counter = st.o.device, st.o.counter
	}
	if rd&(readCard|readAccountLock|readControls) != 0 {
		ar.Fingerprint = st.o.fp
	}
	if rd&readControls != 0 {
		day := controls.DayStart(st.r.Currency, now)
		ar.DayFrom, ar.DayTo = day, day.AddDate(0, 0, 1)
	}
	if rd&readMerchant != 0 {
		ar.MerchantID = st.term.MerchantID
	}
	if rd&readClearing != 0 {
		ar.ClearingRefs = ledger.ClearingRefs(st.term.MerchantID, st.r.Currency)
	}
	for _, t := range []struct {
		r reads
		t store.Table
	}{{reserveAuthorization, store.TableAuthorizations}, {reserveHold, store.TableHolds}, {reserveTransfer, store.TableTransfers}} {
		if rd&t.r != 0 {
			ar.Reserve = append(ar.Reserve, t.t)
		}
	}
	return ar
}

// run takes st through p: the checks before the transaction, then those
// inside it, and records the decision. A check's error is a fault:
// nothing is recorded and the error is returned. errDiverted (wrapped)
// reports a card the route check found not on-us, with st.offUs set.
func (s *Switch) run(ctx context.Context, p *pipeline, st *auth) (Response, error) {
	i := 0
	for ; i < len(p.checks) && p.checks[i].phase == beforeTx; i++ {
		c := &p.checks[i]
		s.traced(c.name)
		d, err := c.run(ctx, st)
		if err != nil {
			return Response{}, fmt.Errorf("authorize %s: %w", st.r.MTI, err)
		}
		if d.declined() {
			return s.declineWith(ctx, st.r, nil, d.action, d.kind, d.reason)
		}
	}
	inside := p.checks[i:]
	var prefetch func(tx *store.Tx) store.AuthReads
	if p.batched {
		rd := p.inTxReads()
		prefetch = func(tx *store.Tx) store.AuthReads { return st.authReads(tx.Now(), rd) }
	}
	return s.recordWith(ctx, st.r, prefetch, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
		st.begin(tx, a)
		for i := range inside {
			c := &inside[i]
			s.traced(c.name)
			d, err := c.run(ctx, st)
			if err != nil {
				return err
			}
			if d.divert {
				return errDiverted
			}
			if d.declined() {
				if err := decline(ctx, tx, st.r, a, d.action, d.kind, d.reason); err != nil {
					return err
				}
				if st.atcSettled {
					return nil
				}
				return useDeclinedATC(ctx, tx, st.o, st.sec, a.CardID)
			}
		}
		a.ActionCode = iso93.ActionApproved
		return nil
	}, nil)
}

// traced reports a check about to run to the test hook.
func (s *Switch) traced(name string) {
	if s.trace != nil {
		s.trace(name)
	}
}

// pipelineFor returns the pipeline of a money request (MTI 1100, 1200 or
// an offline advice).
func pipelineFor(r Request) *pipeline {
	switch {
	case r.MTI == iso93.MTIAdvice || r.MTI == iso93.MTIAdviceRepeat:
		return &advicePipeline
	case isRefund(r):
		return &refundPipeline
	case r.MTI == iso93.MTIFinancialRequest:
		return &financialPipeline
	}
	return &authorizationPipeline
}
