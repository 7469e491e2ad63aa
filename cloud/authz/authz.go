// Package authz is the center's authorization switch for on-us cards: it
// decides authorization (1100) and financial (1200) requests, applies
// advices (1220/1221) and reversals (1420/1421), and records every answer so
// that a repeated request gets the first answer unchanged.
//
// A money request goes through a pipeline of named checks (pipeline.go,
// docs/authorization.md): the checks before the store transaction decrypt
// the card-data block and call the token, so no row lock is held across a
// token call; the checks inside it decide, and the decision and all its
// effects (device counter, hold or posting, authorization row, audit
// record) commit in that one transaction. Action codes are documented on
// Authorize, per check in docs/authorization.md, and in docs/ledger.md.
package authz

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/p2pe/fingerprint"
	"github.com/posgate/posgate/protocol/iso93"
)

// CardDecrypter opens a DE 120 encrypted card-data block inside the token
// and returns the clear card data, the DUKPT device id (the initial key id)
// and the transaction counter of the KSN it was encrypted under. An error
// wrapping ErrMalformedBlock means the block itself is bad (answered 904);
// any other error is a fault (Authorize returns it).
type CardDecrypter interface {
	OpenCardBlock(ctx context.Context, block []byte) (c cardblock.ClearData, dukptDeviceID string, counter uint64, err error)
}

// Fingerprinter computes the PAN fingerprint (32 lower-case hex digits)
// inside the token.
type Fingerprinter interface {
	Fingerprint(pan card.PAN) (string, error)
}

// ErrMalformedBlock is what a CardDecrypter wraps when the block cannot be
// parsed or its plaintext is not card data. It is the card-data block
// format's own sentinel, so the token vault (below authz) wraps it without
// importing the switch.
var ErrMalformedBlock = cardblock.ErrMalformed

// OriginalData identifies the message a reversal or completion advice
// refers to: by its idempotency key when known, else by the original data
// elements (DE 56) of a message from the same terminal.
type OriginalData struct {
	IdempotencyKey string
	MTI            string
	STAN           string
	LocalTime      string
}

// Request is one request from a gateway or a head office, already unpacked
// and authenticated (GatewayID is the peer's certificate identity).
//
// Card data comes either as a DE 120 block (CardBlock, KSN, Fingerprint:
// the edge path) or in clear (PAN and Expiry: the center-to-center path,
// whose head offices are PCI scoped); a request with both or neither is
// refused with 904.
type Request struct {
	MTI            string
	GatewayID      string
	TerminalID     string
	STAN           string
	ProcessingCode string
	Amount         int64
	Currency       string
	LocalTime      string // YYMMDDhhmmss, terminal local time; "" uses the center clock
	IdempotencyKey string
	KSN            []byte
	CardBlock      []byte
	Fingerprint    string
	FunctionCode   string
	Original       *OriginalData // reversals and completion advices
	// PAN and Expiry are clear card data (DE 2, DE 14) of a
	// center-to-center request; Fingerprint is then computed by the
	// switch. Expiry may be zero.
	PAN    card.PAN
	Expiry card.Expiry
	// POSDataCode is DE 22, passed on to brand hosts ("" for the
	// default).
	POSDataCode string
	// HeadOfficeID, when set, marks a center-to-center request from that
	// head office: its terminals are those of merchants whose id or head
	// office is HeadOfficeID, instead of those behind GatewayID. GatewayID
	// still names the originator in the records ("c2c:" + HeadOfficeID).
	HeadOfficeID string
	// ICCData is DE 55 of a chip request (1100/1200), or of an offline
	// approval's advice (1220/1221 without Original): the application
	// cryptogram (an ARQC; in an advice the card's TC or a stand-in's ARQC)
	// and the data it covers (docs/emv.md, "Center integration" and
	// "Advices with chip data"). Empty for magnetic-stripe and keyed
	// requests. Completion advices, reversals and brand-host routed
	// requests ignore it.
	ICCData []byte
	// Fallback marks a magnetic-stripe read of a chip card after the chip
	// failed; the switch also infers it from DE 22 (see isFallback).
	Fallback bool
	// PINBlock is DE 125: the terminal's ISO 9564 format 4 PIN block under
	// the AES DUKPT PIN key of the card block's KSN (pin.go). Empty when
	// no PIN was entered.
	PINBlock []byte

	// terminal is the terminal row Authorize read with the idempotency
	// key, for terminal() to use instead of reading it again.
	terminal *terminalLookup
}

// terminalLookup is the outcome of reading a request's terminal.
type terminalLookup struct {
	t   store.Terminal
	err error
}

// Response is the center's answer. ApprovalCode is set on approvals only;
// RRN on every recorded answer.
type Response struct {
	ActionCode   iso93.ActionCode
	ApprovalCode string
	RRN          string
	// ICCData is the response DE 55 of a chip request whose card was
	// found (tag 91: ARPC method 1 || ARC), on approvals and declines;
	// nil otherwise.
	ICCData []byte
}

// DefaultHoldTTL is how long an authorization hold lasts when Switch.HoldTTL
// is zero.
const DefaultHoldTTL = 7 * 24 * time.Hour

// Switch decides requests against the store. Its fields are set before
// first use and not changed after; it is then safe for concurrent use.
type Switch struct {
	Store     *store.Store
	Decrypter CardDecrypter
	Vault     Fingerprinter
	// HoldTTL is how long an 1100's hold lasts; zero means DefaultHoldTTL.
	HoldTTL time.Duration
	// Router, when set, routes each card by BIN (docs/switching.md): cards
	// of the center's products are decided here, cards of a routed BIN go
	// to their brand host (with stand-in when it does not answer), other
	// cards are declined 111. Nil decides every card on-us.
	Router *routing.Router
	// Chip configures the chip (DE 55) and CVV2 checks; see ChipConfig.
	Chip ChipConfig
	// PIN configures issuer PIN verification (DE 125); see PINConfig.
	PIN PINConfig

	// trace, when set (by tests), is told the name of each check of a
	// pipeline as it is about to run.
	trace func(check string)
}

// Authorize decides r and returns the answer. Its error is non-nil only for
// a fault (store or token unavailable) after which nothing was recorded; the
// caller answers 909 and a repeat of the request is decided afresh.
//
// Action codes: 000 approved; 400 reversal accepted; 904 malformed request,
// card block or fingerprint mismatch; 110 bad amount; 902 unsupported
// processing code or MTI; 120 terminal unknown or behind another gateway;
// 913 KSN counter not above the device's highest (replay) or a second
// completion of one authorization; 111 unknown card, or (with a Router) a
// BIN neither on-us nor routed; 208 lost; 209 stolen;
// 104 suspended; 125 closed; 101 expired; 119 currency or merchant not
// allowed for the card; 116 insufficient funds; 914 original not found.
// Refunds (a 1200 with processing code 20xxxx, see refund.go): 121 more
// than the card may still get back at the merchant, 914 no purchase of the
// card there within RefundWindow.
// Chip and CVV2 (docs/emv.md, docs/issuing.md): 904 malformed DE 55; 902
// application identifier not accepted; 102 ARQC does not verify; 100 ATC
// replayed or regressed, CVV2 wrong, or CVV2 missing for a product that
// requires it; 119 magnetic-stripe fallback refused by the product.
// Offline approval advices with DE 55 (docs/emv.md, "Advices with chip
// data"): 904 malformed DE 55 or reserved 9F27; 902 AAC, application
// identifier not accepted, or no card security keys; 102 TC (or stand-in
// ARQC) does not verify; 100 ATC already used by an accepted cryptogram of
// the card.
// PIN (pin.go): 117 wrong PIN, 106 PIN tries exceeded or PIN blocked, 904
// PIN block that does not decipher.
// Every answer with an idempotency key is recorded; every decline also
// writes an audit record.
func (s *Switch) Authorize(ctx context.Context, r Request) (Response, error) {
	if r.IdempotencyKey == "" || len(r.IdempotencyKey) > 64 {
		// Without a key the answer cannot be recorded for repeats.
		return s.refuse(ctx, r, "request_invalid", "idempotency key must be 1 to 64 characters")
	}
	// One look before anything is decrypted: is the key answered, and
	// (for the request's later checks) which terminal is it? On
	// PostgreSQL both go in one round trip.
	var prev store.Authorization
	var looked *terminalLookup
	err := s.Store.Read(ctx, func(tx *store.Tx) error {
		if err := tx.Prefetch(ctx, s.newAuth(r).authReads(tx.Now(), firstLook)); err != nil {
			return err
		}
		var err error
		if prev, err = tx.AuthorizationByKey(ctx, r.IdempotencyKey); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if r.TerminalID != "" {
			t, terr := tx.Terminal(ctx, r.TerminalID)
			looked = &terminalLookup{t: t, err: terr}
		}
		return err
	})
	r.terminal = looked
	switch {
	case err == nil:
		return s.repeat(ctx, r, prev)
	case !errors.Is(err, store.ErrNotFound):
		return Response{}, fmt.Errorf("authorize %s: %w", r.MTI, err)
	}
	switch r.MTI {
	case iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest:
		if isRefund(r) {
			return s.refund(ctx, r) // refund.go
		}
		return s.authorize(ctx, r)
	case iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		return s.advice(ctx, r) // reverse.go
	case iso93.MTIReversal, iso93.MTIReversalRepeat:
		return s.reverse(ctx, r)
	}
	return s.declineWith(ctx, r, nil, iso93.ActionInvalidTransaction, "request_invalid", "MTI not served by the switch")
}

// repeat answers a request whose idempotency key is recorded.
func (s *Switch) repeat(ctx context.Context, r Request, prev store.Authorization) (Response, error) {
	if prev.GatewayID != r.GatewayID {
		// Another gateway's key: never disclose its answer.
		return s.refuse(ctx, r, "idempotency_conflict", "idempotency key recorded for another gateway")
	}
	resp := responseOf(prev)
	resp.ICCData = s.repeatChip(ctx, r, prev, resp)
	return resp, nil
}

// refuse answers 904 without recording an authorization row (there is no
// usable key), writing only an audit record.
func (s *Switch) refuse(ctx context.Context, r Request, kind, reason string) (Response, error) {
	err := s.Store.Update(ctx, func(tx *store.Tx) error {
		return audit(ctx, tx, r, kind, reason)
	})
	if err != nil {
		return Response{}, fmt.Errorf("authorize %s: %w", r.MTI, err)
	}
	return Response{ActionCode: iso93.ActionFormatError}, nil
}

func responseOf(a store.Authorization) Response {
	return Response{ActionCode: a.ActionCode, ApprovalCode: a.ApprovalCode, RRN: a.RRN}
}

func audit(ctx context.Context, tx *store.Tx, r Request, kind, reason string) error {
	return tx.AppendAudit(ctx, store.AuditRecord{Kind: kind, Actor: "gateway:" + r.GatewayID,
		Detail: fmt.Sprintf("mti %s terminal %q stan %q: %s", r.MTI, r.TerminalID, r.STAN, reason)})
}

// decideFunc sets the decision on the authorization row it is given;
// record writes it.
type decideFunc func(ctx context.Context, tx *store.Tx, a *store.Authorization) error

// record runs decide in one transaction and writes the authorization row it
// filled in, or returns the recorded answer if the key appeared meanwhile.
func (s *Switch) record(ctx context.Context, r Request, decide decideFunc) (Response, error) {
	return s.recordThen(ctx, r, decide, nil)
}

// recordThen is record with after, when not nil, run in the same
// transaction once the new row (with its id and RRN) is written; it is not
// run when the key was already recorded.
func (s *Switch) recordThen(ctx context.Context, r Request, decide, after decideFunc) (Response, error) {
	return s.recordWith(ctx, r, nil, decide, after)
}

// recordWith is recordThen with reads, when not nil, naming what the
// transaction will read (store.Tx.Prefetch, first thing in it): on
// PostgreSQL the whole decision then costs two round trips, the prefetch
// with BEGIN and the writes with COMMIT. With reads the key is not looked
// up again in the transaction (the caller just did, outside it): a
// request with the same key committed meanwhile makes the authorization
// insert fail on the key's unique index, the transaction rolls back, and
// the recorded answer is returned as below.
func (s *Switch) recordWith(ctx context.Context, r Request, reads func(tx *store.Tx) store.AuthReads, decide, after decideFunc) (Response, error) {
	var resp Response
	err := s.Store.Update(ctx, func(tx *store.Tx) error {
		if reads != nil {
			if err := tx.Prefetch(ctx, reads(tx)); err != nil {
				return err
			}
		}
		if reads == nil {
			if prev, err := tx.AuthorizationByKey(ctx, r.IdempotencyKey); err == nil {
				resp = responseOf(prev)
				return nil
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		a := store.Authorization{IdempotencyKey: r.IdempotencyKey, GatewayID: r.GatewayID, TerminalID: r.TerminalID,
			STAN: r.STAN, MTI: r.MTI, ProcessingCode: r.ProcessingCode, FunctionCode: r.FunctionCode,
			LocalTime: r.LocalTime, Amount: r.Amount, Currency: r.Currency, Status: store.AuthDeclined}
		if err := decide(ctx, tx, &a); err != nil {
			return err
		}
		if a.ActionCode == iso93.ActionApproved {
			code, err := approvalCode()
			if err != nil {
				return err
			}
			a.ApprovalCode = code
		}
		id, rrn, err := tx.InsertAuthorization(ctx, a)
		if err != nil {
			return err
		}
		a.ID, a.RRN = id, rrn
		if after != nil {
			if err := after(ctx, tx, &a); err != nil {
				return err
			}
		}
		resp = responseOf(a)
		return nil
	})
	if errors.Is(err, store.ErrDuplicate) {
		// The same key committed between our check and our insert: answer
		// what was recorded.
		var prev store.Authorization
		if verr := s.Store.View(ctx, func(tx *store.Tx) error {
			var err error
			prev, err = tx.AuthorizationByKey(ctx, r.IdempotencyKey)
			return err
		}); verr == nil {
			return s.repeat(ctx, r, prev)
		}
	}
	if err != nil {
		return Response{}, fmt.Errorf("authorize %s: %w", r.MTI, err)
	}
	return resp, nil
}

// declineWith records a decline with an audit record, running pre first (if
// not nil) inside the same transaction.
func (s *Switch) declineWith(ctx context.Context, r Request, pre decideFunc, code iso93.ActionCode, kind, reason string) (Response, error) {
	return s.record(ctx, r, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
		if pre != nil {
			if err := pre(ctx, tx, a); err != nil {
				return err
			}
		}
		return decline(ctx, tx, r, a, code, kind, reason)
	})
}

// decline marks a as declined with code and writes the audit record.
func decline(ctx context.Context, tx *store.Tx, r Request, a *store.Authorization, code iso93.ActionCode, kind, reason string) error {
	a.ActionCode, a.Status = code, store.AuthDeclined
	return audit(ctx, tx, r, kind, reason+" ("+string(code)+")")
}

func approvalCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("draw approval code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// validate checks the fields every money request needs and returns the
// action code and reason of the first problem, or "".
func validate(r Request) (code iso93.ActionCode, reason string) {
	switch {
	case len(r.TerminalID) != 8:
		return iso93.ActionFormatError, "terminal id must be 8 characters"
	case !isDigits(r.STAN, 6):
		return iso93.ActionFormatError, "STAN must be 6 digits"
	case r.LocalTime != "" && !validLocalTime(r.LocalTime):
		return iso93.ActionFormatError, "local time must be YYMMDDhhmmss"
	case !isDigits(r.ProcessingCode, 6):
		return iso93.ActionFormatError, "processing code must be 6 digits"
	case !ledger.ValidCurrency(r.Currency):
		return iso93.ActionFormatError, "currency is not an accepted ISO 4217 numeric code"
	case r.Amount <= 0 || r.Amount > ledger.MaxAmount:
		return iso93.ActionInvalidAmount, "amount out of range"
	case r.ProcessingCode[:2] != "00" && !isRefund(r):
		return iso93.ActionInvalidTransaction, "only purchases (processing code 00xxxx) and 1200 refunds (20xxxx) are supported"
	}
	return "", ""
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validLocalTime(s string) bool {
	_, err := iso93.ParseLocalTime(s)
	return isDigits(s, 12) && err == nil
}

// txnTime is the transaction's date for expiry checks: the terminal's local
// time if given, else the transaction's clock.
func txnTime(r Request, now time.Time) time.Time {
	if r.LocalTime != "" {
		if t, err := iso93.ParseLocalTime(r.LocalTime); err == nil {
			return t
		}
	}
	return now
}

// terminal checks that the terminal exists behind the requesting gateway.
// ok is false when it does not; err is a fault.
func (s *Switch) terminal(ctx context.Context, r Request) (t store.Terminal, ok bool, err error) {
	if l := r.terminal; l != nil && (l.err == nil || errors.Is(l.err, store.ErrNotFound)) {
		t, err = l.t, l.err
	} else {
		err = s.Store.Read(ctx, func(tx *store.Tx) error {
			var err error
			t, err = tx.Terminal(ctx, r.TerminalID)
			return err
		})
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.Terminal{}, false, nil
	}
	if err != nil {
		return store.Terminal{}, false, fmt.Errorf("read terminal: %w", err)
	}
	if r.HeadOfficeID == "" {
		return t, t.GatewayID == r.GatewayID, nil
	}
	var m store.Merchant
	err = s.Store.Read(ctx, func(tx *store.Tx) error {
		var err error
		m, err = tx.Merchant(ctx, t.MerchantID)
		return err
	})
	if err != nil {
		return store.Terminal{}, false, fmt.Errorf("read merchant of terminal: %w", err)
	}
	return t, m.ID == r.HeadOfficeID || m.HeadOfficeID == r.HeadOfficeID, nil
}

// opened is the outcome of decrypting a request's card block.
type opened struct {
	card    cardblock.ClearData
	device  string // "" on the clear-PAN path: no device counter
	counter uint64
	fp      string // the PAN's fingerprint
	// code/reason are set when the block or fingerprint is refused.
	code         iso93.ActionCode
	reason, kind string
}

// open decrypts the block and compares fingerprints. Token faults are
// returned as errors; a bad block or fingerprint is a refusal in o.
func (s *Switch) open(ctx context.Context, r Request) (o opened, err error) {
	if !r.PAN.IsZero() {
		if len(r.CardBlock) != 0 {
			return opened{code: iso93.ActionFormatError, kind: "request_invalid", reason: "clear PAN and card-data block are exclusive"}, nil
		}
		fp, err := s.Vault.Fingerprint(r.PAN)
		if err != nil {
			return opened{}, fmt.Errorf("fingerprint PAN %s: %w", r.PAN.Masked(), err)
		}
		return opened{card: cardblock.ClearData{PAN: r.PAN, Expiry: r.Expiry}, fp: fp}, nil
	}
	if len(r.CardBlock) == 0 {
		return opened{code: iso93.ActionFormatError, kind: "request_invalid", reason: "card-data block missing"}, nil
	}
	if !fingerprint.Valid(r.Fingerprint) {
		return opened{code: iso93.ActionFormatError, kind: "request_invalid", reason: "fingerprint must be 32 lower-case hex digits"}, nil
	}
	c, device, counter, err := s.Decrypter.OpenCardBlock(ctx, r.CardBlock)
	if errors.Is(err, ErrMalformedBlock) {
		return opened{code: iso93.ActionFormatError, kind: "card_block_invalid", reason: err.Error()}, nil
	}
	if err != nil {
		return opened{}, fmt.Errorf("decrypt card block: %w", err)
	}
	o = opened{card: c, device: device, counter: counter, fp: r.Fingerprint}
	fp, err := s.Vault.Fingerprint(c.PAN)
	if err != nil {
		return opened{}, fmt.Errorf("fingerprint PAN %s: %w", c.PAN.Masked(), err)
	}
	if fp != r.Fingerprint {
		o.code, o.kind, o.reason = iso93.ActionFormatError, "fingerprint_mismatch", "DE 122 fingerprint differs from the decrypted PAN's"
	}
	return o, nil
}

// authorize decides an 1100 (hold) or 1200 (posting) through its
// pipeline (authorizationPipeline, financialPipeline).
//
// With a Router, the card's BIN route is read in the transaction's first
// batch (routeCheck): an on-us purchase then costs the key-and-terminal
// look and its transaction's two round trips on PostgreSQL
// (docs/storage.md). A card that is not on-us ends that transaction
// before anything is written and goes to its brand host or is declined
// 111. The token checks before the transaction find no card row for such
// a card and do nothing.
func (s *Switch) authorize(ctx context.Context, r Request) (Response, error) {
	st := s.newAuth(r)
	resp, err := s.run(ctx, pipelineFor(r), st)
	if errors.Is(err, errDiverted) {
		if st.offUs.Routed() {
			return s.forward(ctx, r, st.term, st.o, st.offUs)
		}
		return s.record(ctx, r, func(ctx context.Context, tx *store.Tx, a *store.Authorization) error {
			if declined, err := advanceCounter(ctx, tx, st.r, a, st.o); err != nil || declined {
				return err
			}
			return decline(ctx, tx, st.r, a, iso93.ActionInvalidCardNumber, "no_route",
				"BIN "+st.o.card.PAN.BIN()+" is neither on-us nor routed")
		})
	}
	if err != nil {
		return resp, err
	}
	if resp.ICCData, err = s.chipResponse(st.sec, resp); err != nil {
		// The decision is recorded; the terminal gets it without the
		// ARPC (its card then declines offline) rather than a 909.
		resp.ICCData = nil
	}
	return resp, nil
}

// advanceCounter applies the KSN replay rule (replayCheck) in a
// transaction outside the pipeline (an off-us card's); declined reports
// a 913 recorded on a.
func advanceCounter(ctx context.Context, tx *store.Tx, r Request, a *store.Authorization, o opened) (declined bool, err error) {
	st := &auth{r: r, o: o, tx: tx, a: a}
	d, err := replayCheck.run(ctx, st)
	if err != nil || !d.declined() {
		return false, err
	}
	return true, decline(ctx, tx, r, a, d.action, d.kind, d.reason)
}
