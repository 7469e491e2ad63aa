package authz

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/iso93"
)

// Chip cards and card verification values (docs/emv.md, "Center
// integration"; docs/issuing.md, "Card verification values").
//
// Token calls happen outside the store transaction: before it, the switch
// reads the card and its product's settings, verifies the ARQC (and makes
// the approval ARPC in the same token session) and CVV2; inside it, the
// decision uses those results and advances the ATC guard; after it, a
// decline's ARPC is made for the decline's ARC.

// CardSecurity is the token side of the chip and CVV2 checks.
// *cardsec.Keys satisfies it. Implementations are safe for concurrent use.
type CardSecurity interface {
	// VerifyARQC verifies req under the IMK labelled imkLabel and returns
	// the ARPC (method 1) for arc; an error wrapping hsm.ErrCryptogram
	// means the cryptogram does not verify.
	VerifyARQC(imkLabel string, req hsm.ARQCRequest, arc [2]byte) ([8]byte, error)
	// ARPC returns the ARPC (method 1) for req.ARQC and arc without
	// verifying.
	ARPC(imkLabel string, req hsm.ARQCRequest, arc [2]byte) ([8]byte, error)
	// VerifyCVV checks code; an error wrapping hsm.ErrCVV means it does
	// not match.
	VerifyCVV(cvkLabel string, pan card.PAN, exp card.Expiry, serviceCode string, code card.SecurityCode) error
}

// Default token labels used when a product names none.
const (
	DefaultIMKLabel = "imk-ac"
	DefaultCVKLabel = "cvk"
)

// ChipConfig configures the chip and CVV2 checks of a Switch.
type ChipConfig struct {
	// Keys computes in the token. Nil refuses every request with DE 55
	// (902) and every product whose CVV2 policy asks for a check fails
	// as a fault; magnetic-stripe requests are unaffected.
	Keys CardSecurity
	// IMKLabel is the IMK-AC label of products that name none; ""
	// means DefaultIMKLabel.
	IMKLabel string
	// CVKLabel is the CVK label of products that name none; "" means
	// DefaultCVKLabel.
	CVKLabel string
	// AllowedAIDs lists the application identifiers (tag 84, upper-case
	// hex) accepted; empty accepts any, including a request without 84.
	// With a list, a request whose AID is absent or not listed is
	// declined 902.
	AllowedAIDs []string
	// Scripts computes issuer script MACs under the IMK-SMI; nil sends
	// no issuer scripts. With it, the decline of a lost (208) or stolen
	// (209) card's online request whose ARQC verified carries an
	// APPLICATION BLOCK script (docs/emv.md, "Secure messaging and
	// issuer scripts"). *hsm.SecureMessaging satisfies it.
	Scripts ScriptSigner
}

// ScriptSigner computes secure messaging MACs of issuer script commands
// in the token. Implementations are safe for concurrent use.
type ScriptSigner interface {
	// ScriptMAC returns the 8-byte MAC of c under the card's SMI
	// session key for c.ARQC.
	ScriptMAC(c hsm.ScriptCommand) ([8]byte, error)
}

// applicationBlock is the header (CLA INS P1 P2) of APPLICATION BLOCK
// with secure messaging.
var applicationBlock = [4]byte{0x84, 0x1E, 0x00, 0x00}

// ARCs (tag 8A values, two ASCII characters) of the ARPC the switch
// returns, by action code; see arcFor.
var (
	arcApproved = [2]byte{'0', '0'}
)

// arcFor maps an action code to the authorisation response code the ARPC
// covers: 00 approved, 51 insufficient funds, 54 expired, 41 lost, 43
// stolen, 59 suspected fraud (bad cryptogram), 57 not permitted, 05 any
// other decline.
func arcFor(action iso93.ActionCode) [2]byte {
	switch action {
	case iso93.ActionApproved:
		return arcApproved
	case iso93.ActionInsufficientFunds:
		return [2]byte{'5', '1'}
	case iso93.ActionExpiredCard:
		return [2]byte{'5', '4'}
	case iso93.ActionLostCard:
		return [2]byte{'4', '1'}
	case iso93.ActionStolenCard:
		return [2]byte{'4', '3'}
	case iso93.ActionSuspectedFraud:
		return [2]byte{'5', '9'}
	case iso93.ActionNotPermittedToCardholder, iso93.ActionInvalidTransaction:
		return [2]byte{'5', '7'}
	}
	return [2]byte{'0', '5'}
}

// cvvOutcome is the result of the CVV2 check before the transaction.
type cvvOutcome int

const (
	cvvNotChecked cvvOutcome = iota
	cvvValid
	cvvInvalid
	cvvMissing
)

// security is what the checks before the transaction found for one
// request's card.
type security struct {
	cardID int64
	policy store.CardSecurity
	imk    string

	chip   *de55.Request // nil without DE 55
	arqc   hsm.ARQCRequest
	aidOK  bool
	arqcOK bool
	arpc   [8]byte // for arcApproved, when arqcOK

	cvv cvvOutcome
}

func (s *Switch) imkLabel(p store.CardSecurity) string {
	switch {
	case p.IMKLabel != "":
		return p.IMKLabel
	case s.Chip.IMKLabel != "":
		return s.Chip.IMKLabel
	}
	return DefaultIMKLabel
}

func (s *Switch) cvkLabel(p store.CardSecurity) string {
	switch {
	case p.CVKLabel != "":
		return p.CVKLabel
	case s.Chip.CVKLabel != "":
		return s.Chip.CVKLabel
	}
	return DefaultCVKLabel
}

// aidAllowed applies ChipConfig.AllowedAIDs.
func (s *Switch) aidAllowed(req *de55.Request) bool {
	if len(s.Chip.AllowedAIDs) == 0 {
		return true
	}
	aid, ok := req.Value(tlv.Tag(0x84))
	if !ok {
		return false
	}
	h := hex.EncodeToString(aid)
	for _, a := range s.Chip.AllowedAIDs {
		if len(a) == len(h) && bytes.EqualFold([]byte(a), []byte(h)) {
			return true
		}
	}
	return false
}

// verifyCard runs the token checks of a request before its transaction.
// It returns nil when there is nothing to check (no DE 55, no CVV2 to
// verify, the block refused, or no card with the fingerprint: the
// transaction then declines). Errors are faults.
func (s *Switch) verifyCard(ctx context.Context, r Request, o opened, chip *de55.Request) (*security, error) {
	if o.code != "" || (chip == nil && o.card.SecurityCode.IsZero()) {
		if chip == nil && o.code == "" {
			// A CVV2-required product must still see a missing code:
			// read its policy (no token call).
			return s.cvvPolicyOnly(ctx, o)
		}
		return nil, nil
	}
	sec := &security{chip: chip}
	var c store.Card
	err := s.Store.Read(ctx, func(tx *store.Tx) error {
		var err error
		c, sec.policy, err = tx.CardSecurityByFingerprint(ctx, o.fp)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read card security settings: %w", err)
	}
	sec.cardID = c.ID
	sec.imk = s.imkLabel(sec.policy)
	if chip != nil {
		if err := s.verifyCryptogram(sec, o); err != nil {
			return nil, err
		}
	}
	switch {
	case sec.policy.CVV2 == store.CVV2Off:
	case o.card.SecurityCode.IsZero():
		if sec.policy.CVV2 == store.CVV2Required {
			sec.cvv = cvvMissing
		}
	default:
		if s.Chip.Keys == nil {
			return nil, fmt.Errorf("CVV2 check for card %d: no card security keys configured", c.ID)
		}
		exp, err := card.ParseExpiry(c.Expiry)
		if err != nil {
			exp = o.card.Expiry
		}
		err = s.Chip.Keys.VerifyCVV(s.cvkLabel(sec.policy), o.card.PAN, exp, hsm.ServiceCodeCVV2, o.card.SecurityCode)
		switch {
		case err == nil:
			sec.cvv = cvvValid
		case errors.Is(err, hsm.ErrCVV):
			sec.cvv = cvvInvalid
		default:
			return nil, fmt.Errorf("card %d: %w", c.ID, err)
		}
	}
	return sec, nil
}

// verifyCryptogram checks the AID of sec.chip and verifies its
// application cryptogram in the token for card sec.cardID, setting
// sec.aidOK, sec.arqc, sec.arqcOK and sec.arpc. The cryptogram is checked
// the same way whatever its type (ARQC or TC): both are the MAC over the
// same data under the session key of the ATC. Errors are faults.
func (s *Switch) verifyCryptogram(sec *security, o opened) error {
	if s.Chip.Keys == nil {
		return fmt.Errorf("chip request for card %d: no card security keys configured", sec.cardID)
	}
	chip := sec.chip
	sec.aidOK = s.aidAllowed(chip)
	sec.arqc = hsm.ARQCRequest{PAN: o.card.PAN.Digits(), PSN: chip.PSN(), R: cryptogram.ACSessionR(chip.ATC()),
		Data: chip.ACData(), ARQC: chip.Cryptogram()}
	if !sec.aidOK {
		return nil
	}
	arpc, err := s.Chip.Keys.VerifyARQC(sec.imk, sec.arqc, arcApproved)
	switch {
	case err == nil:
		sec.arqcOK, sec.arpc = true, arpc
	case !errors.Is(err, hsm.ErrCryptogram):
		return fmt.Errorf("card %d: %w", sec.cardID, err)
	}
	return nil
}

// cvvPolicyOnly reads the card's policy for a request without a security
// code, so that a CVV2-required product declines it.
func (s *Switch) cvvPolicyOnly(ctx context.Context, o opened) (*security, error) {
	sec := &security{}
	err := s.Store.Read(ctx, func(tx *store.Tx) error {
		c, policy, err := tx.CardSecurityByFingerprint(ctx, o.fp)
		sec.cardID, sec.policy = c.ID, policy
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read card security settings: %w", err)
	}
	if sec.policy.CVV2 != store.CVV2Required {
		return nil, nil
	}
	sec.cvv = cvvMissing
	return sec, nil
}

// isFallback reports whether r is a magnetic-stripe read of a chip card:
// r.Fallback, or no DE 55 with DE 22 position 1 '5' (ICC-capable
// terminal) and position 7 '2' (magnetic stripe read) for a card whose
// service code starts with 2 or 6 (chip card).
func isFallback(r Request, o opened) bool {
	if len(r.ICCData) > 0 {
		return false
	}
	if r.Fallback {
		return true
	}
	p, sc := r.POSDataCode, o.card.ServiceCode
	return len(p) == 12 && p[0] == '5' && p[6] == '2' && sc != "" && (sc[0] == '2' || sc[0] == '6')
}

// de55ParseCheck parses the request's DE 55 before the transaction (a
// request whose block was refused has none to parse). A DE 55 that does
// not parse, or that comes while no card security keys are configured,
// is refused by de55Check inside the transaction.
var de55ParseCheck = check{name: "de55 parse", phase: beforeTx,
	run: func(_ context.Context, st *auth) (decision, error) {
		if len(st.r.ICCData) == 0 || st.o.code != "" {
			return pass, nil
		}
		req, err := de55.ParseRequest(st.r.ICCData)
		switch {
		case err != nil:
			st.chipErr = err
		case st.s.Chip.Keys == nil:
			st.chip, st.chipErr = &req, errors.New("chip requests are not served: no card security keys")
		default:
			st.chip = &req
		}
		return pass, nil
	}}

// cardSecurityCheck runs the token checks of the chip and CVV2 rules
// before the transaction (verifyCard): it reads the card's security
// settings, verifies the ARQC (making the approval's ARPC in the same
// token session) and the CVV2. It decides nothing: chipCheck and cvvCheck
// apply its verdict inside the transaction.
var cardSecurityCheck = check{name: "card security", phase: beforeTx,
	run: func(ctx context.Context, st *auth) (decision, error) {
		o := st.o
		if st.chipErr != nil || o.code != "" || (st.chip == nil && st.s.Chip.Keys == nil && o.card.SecurityCode.IsZero()) {
			return pass, nil
		}
		sec, err := st.s.verifyCard(ctx, st.r, o, st.chip)
		st.sec = sec
		return pass, err
	}}

// de55Check refuses a DE 55 de55ParseCheck could not use: 904 when it
// does not parse, 902 when chip requests are not served (de55_invalid).
var de55Check = check{name: "de55", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionFormatError, iso93.ActionInvalidTransaction},
	run: func(_ context.Context, st *auth) (decision, error) {
		if st.chipErr == nil {
			return pass, nil
		}
		code := iso93.ActionFormatError
		if st.chip != nil {
			code = iso93.ActionInvalidTransaction
		}
		return declineOf(code, "de55_invalid", "DE 55: "+st.chipErr.Error()), nil
	}}

// fallbackCheck declines 119 (fallback_refused) a magnetic-stripe read of
// a chip card (isFallback) when the card's product does not allow it.
var fallbackCheck = check{name: "fallback", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionNotPermittedToCardholder},
	run: func(ctx context.Context, st *auth) (decision, error) {
		if !isFallback(st.r, st.o) {
			return pass, nil
		}
		p, err := st.tx.ProductCardSecurity(ctx, st.card.ProductID)
		if err != nil || p.AllowFallback {
			return pass, err
		}
		return st.cardDecline(iso93.ActionNotPermittedToCardholder, "fallback_refused", "magnetic-stripe fallback not allowed for the product"), nil
	}}

// chipCheck applies the token's verdict on a chip request's cryptogram:
// 902 application identifier absent or not accepted (aid_refused), 102
// ARQC does not verify (arqc_invalid), 100 ATC replayed or regressed
// (atc_replayed, useATC). A verified ARQC's ATC is recorded as used.
// Declines of the checks before it record the ATC too (useDeclinedATC).
var chipCheck = check{name: "chip", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionInvalidTransaction, iso93.ActionSuspectedFraud, iso93.ActionDoNotHonour},
	run: func(ctx context.Context, st *auth) (decision, error) {
		st.atcSettled = true
		if len(st.r.ICCData) == 0 {
			return pass, nil
		}
		sec, err := st.securityOf()
		if err != nil || sec.chip == nil {
			return pass, err
		}
		if !sec.aidOK {
			return st.cardDecline(iso93.ActionInvalidTransaction, "aid_refused", "application identifier (84) absent or not accepted"), nil
		}
		if !sec.arqcOK {
			return st.cardDecline(iso93.ActionSuspectedFraud, "arqc_invalid", "ARQC does not verify"), nil
		}
		refused, err := useATC(ctx, st.tx, st.o.fp, sec.chip, true)
		if err != nil || refused == "" {
			return pass, err
		}
		return st.cardDecline(iso93.ActionDoNotHonour, "atc_replayed", refused), nil
	}}

// cvvCheck applies the token's verdict on the CVV2: 100 when it does not
// verify (cvv2_invalid) or is absent for a product that requires it
// (cvv2_missing).
var cvvCheck = check{name: "cvv", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionDoNotHonour},
	run: func(_ context.Context, st *auth) (decision, error) {
		if st.sec == nil || st.sec.cvv == cvvNotChecked {
			return pass, nil
		}
		sec, err := st.securityOf()
		if err != nil {
			return pass, err
		}
		switch sec.cvv {
		case cvvInvalid:
			return st.cardDecline(iso93.ActionDoNotHonour, "cvv2_invalid", "CVV2 does not verify"), nil
		case cvvMissing:
			return st.cardDecline(iso93.ActionDoNotHonour, "cvv2_missing", "CVV2 required by the product and absent"), nil
		}
		return pass, nil
	}}

// securityOf returns the token's verdict for the card found in the
// transaction; a verdict missing or for another card means the card
// appeared (or changed) between the checks before the transaction and
// this one: a fault, and a repeat decides afresh.
func (st *auth) securityOf() (*security, error) {
	if st.sec == nil || st.sec.cardID != st.card.ID {
		return nil, fmt.Errorf("card %d changed during the authorization", st.card.ID)
	}
	return st.sec, nil
}

// useDeclinedATC records the ATC of a verified ARQC as used when the
// request was declined by the card checks before the chip checks (status,
// expiry, controls): its DE 55 relabelled as an advice's TC would
// otherwise post once the card is usable again (an ARQC and a TC over the
// same data are the same MAC). A refusal of the ATC changes nothing: the
// request is declined anyway.
func useDeclinedATC(ctx context.Context, tx *store.Tx, o opened, sec *security, cardID int64) error {
	if sec == nil || sec.chip == nil || !sec.arqcOK || cardID == 0 || sec.cardID != cardID {
		return nil
	}
	_, err := useATC(ctx, tx, o.fp, sec.chip, true)
	return err
}

// useATC applies the ATC rule (docs/emv.md, "The ATC rule") to the
// accepted cryptogram of chip, of the card application of fingerprint fp,
// inside the authorization's transaction: it advances the application's
// highest ATC when chip's is above it and records chip's ATC as used. An
// online request's ATC must be above the highest (an ARQC is sent the
// moment it is made); an advice's ATC must only be unused (an advice may
// arrive after later online requests of the card). It returns "" when
// the ATC is accepted, else the reason it is not (nothing is recorded
// then).
func useATC(ctx context.Context, tx *store.Tx, fp string, chip *de55.Request, online bool) (string, error) {
	key, atc := fp+":"+hex.EncodeToString([]byte{chip.PSN()}), chip.ATC()
	// emv_atc first, then emv_atc_used: the lock order of store.Tx.UseATC.
	fresh, err := tx.AdvanceATC(ctx, key, atc)
	if err != nil {
		return "", err
	}
	if online && !fresh {
		last, err := tx.ATC(ctx, key)
		if err != nil {
			return "", err
		}
		what := "ATC replayed"
		if atc < last {
			what = "ATC regressed"
		}
		return fmt.Sprintf("%s: %d, highest accepted %d", what, atc, last), nil
	}
	unused, err := tx.UseATC(ctx, key, atc)
	if err != nil {
		return "", err
	}
	if !unused {
		return fmt.Sprintf("ATC replayed: %d already used by an accepted cryptogram of the card", atc), nil
	}
	return "", nil
}

// chipResponse returns the response DE 55 (tag 91: ARPC method 1 || ARC,
// and for a lost or stolen card an issuer script, see blockScript) for a
// chip request whose card was found, or nil. A decline's ARPC is made
// here, after the transaction.
func (s *Switch) chipResponse(sec *security, resp Response) ([]byte, error) {
	if sec == nil || sec.chip == nil || resp.ActionCode == "" {
		return nil, nil
	}
	arc := arcFor(resp.ActionCode)
	arpc := sec.arpc
	if !sec.arqcOK || arc != arcApproved {
		var err error
		if arpc, err = s.Chip.Keys.ARPC(sec.imk, sec.arqc, arc); err != nil {
			return nil, fmt.Errorf("ARPC for action %s: %w", resp.ActionCode, err)
		}
	}
	r := de55.Response{IssuerAuthData: de55.IssuerAuthDataMethod1(arpc, arc)}
	if script, ok := s.blockScript(sec, resp); ok {
		r.Scripts = []tlv.TLV{script}
	}
	b, err := de55.BuildResponse(r)
	if err != nil {
		return nil, fmt.Errorf("build response DE 55: %w", err)
	}
	return b, nil
}

// repeatChip rebuilds the response DE 55 of a repeated chip request (its
// answer was lost on the way back): the repeat carries the same DE 55, so
// the ARQC is verified again in the token and the ARPC (and any script)
// is made for the recorded answer, which the card then accepts as it
// would have the first. Nothing is recorded and the ATC rule is not
// applied again; any failure (not a chip request, the card or its
// cryptogram not matching the record, a token fault) answers without DE
// 55, as a repeat did before.
func (s *Switch) repeatChip(ctx context.Context, r Request, prev store.Authorization, resp Response) []byte {
	if len(r.ICCData) == 0 || s.Chip.Keys == nil || prev.CardID == 0 ||
		(r.MTI != iso93.MTIAuthorizationRequest && r.MTI != iso93.MTIFinancialRequest) {
		return nil
	}
	chip, err := de55.ParseRequest(r.ICCData)
	if err != nil {
		return nil
	}
	o, err := s.open(ctx, r)
	if err != nil || o.code != "" {
		return nil
	}
	sec, err := s.verifyCard(ctx, r, o, &chip)
	if err != nil || sec == nil || sec.cardID != prev.CardID {
		return nil
	}
	b, err := s.chipResponse(sec, resp)
	if err != nil {
		return nil
	}
	return b
}

// blockScript returns the issuer script template 72 of one APPLICATION
// BLOCK command (84 1E 00 00 08 || MAC) for the decline of a lost (208)
// or stolen (209) card's request whose cryptogram is a verified ARQC,
// its MAC computed in the token under the card's SMI session key for
// that ARQC. ok is false when no script is due, Scripts is nil, or the
// token could not compute the MAC: the decline then goes without it
// (the card still declines; a later request is answered the same way).
func (s *Switch) blockScript(sec *security, resp Response) (tlv.TLV, bool) {
	switch resp.ActionCode {
	case iso93.ActionLostCard, iso93.ActionStolenCard:
	default:
		return tlv.TLV{}, false
	}
	if s.Chip.Scripts == nil || !sec.arqcOK || sec.chip.CID().Type() != emv.ARQC {
		return tlv.TLV{}, false
	}
	mac, err := s.Chip.Scripts.ScriptMAC(hsm.ScriptCommand{PAN: sec.arqc.PAN, PSN: sec.arqc.PSN, ATC: sec.chip.ATC(),
		ARQC: sec.arqc.ARQC, Header: applicationBlock})
	if err != nil {
		return tlv.TLV{}, false
	}
	cmd := append(append(applicationBlock[:], cryptogram.ScriptMACLen), mac[:]...)
	return tlv.TLV{Tag: tags.IssuerScript2, Children: []tlv.TLV{tlv.New(tags.IssuerScriptCommand, cmd)}}, true
}

// adviceChip is what the checks before an advice's transaction found in
// its DE 55 (docs/emv.md, "Advices with chip data").
type adviceChip struct {
	// chip is the parsed DE 55, nil when the advice carries none or it
	// was refused before the transaction.
	chip *de55.Request
	// sec is the token's verdict on chip for the card with the
	// advice's fingerprint; nil when there is no such card (the card
	// checks then decline the advice).
	sec *security
	// code, kind and reason are set when DE 55 is refused before the
	// transaction.
	code         iso93.ActionCode
	kind, reason string
}

// checkAdviceChip reads an offline approval advice's DE 55 before its
// transaction: it must parse (904), carry an approving cryptogram type
// in 9F27 (a TC: the card approved offline; or an ARQC: the gateway
// stood in for the center; an AAC is 902, the reserved type 904), and
// its cryptogram is verified in the token under the card's IMK as an
// ARQC is. An advice without DE 55, or whose card block was refused,
// has nothing to check. Errors are faults.
func (s *Switch) checkAdviceChip(ctx context.Context, r Request, o opened) (adviceChip, error) {
	if len(r.ICCData) == 0 || o.code != "" {
		return adviceChip{}, nil
	}
	req, err := de55.ParseRequest(r.ICCData)
	if err != nil {
		return adviceChip{code: iso93.ActionFormatError, kind: "de55_invalid", reason: "DE 55: " + err.Error()}, nil
	}
	switch t := req.CID().Type(); t {
	case emv.TC, emv.ARQC:
	case emv.AAC:
		return adviceChip{code: iso93.ActionInvalidTransaction, kind: "advice_aac",
			reason: "DE 55 9F27 is an AAC: the card declined the transaction it advises as approved"}, nil
	default:
		return adviceChip{code: iso93.ActionFormatError, kind: "de55_invalid",
			reason: "DE 55 9F27 names the reserved cryptogram type " + t.String()}, nil
	}
	if s.Chip.Keys == nil {
		return adviceChip{code: iso93.ActionInvalidTransaction, kind: "de55_invalid",
			reason: "DE 55: chip advices are not served: no card security keys"}, nil
	}
	ac := adviceChip{chip: &req}
	sec := &security{chip: &req}
	err = s.Store.Read(ctx, func(tx *store.Tx) error {
		c, err := tx.CardByFingerprint(ctx, o.fp)
		if err != nil {
			return err
		}
		sec.cardID = c.ID
		sec.policy, err = tx.ProductCardSecurity(ctx, c.ProductID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return ac, nil
	}
	if err != nil {
		return adviceChip{}, fmt.Errorf("read card security settings: %w", err)
	}
	sec.imk = s.imkLabel(sec.policy)
	if err := s.verifyCryptogram(sec, o); err != nil {
		return adviceChip{}, err
	}
	ac.sec = sec
	return ac, nil
}

// adviceChipVerifyCheck reads an offline approval advice's DE 55 before
// its transaction and verifies its cryptogram in the token
// (checkAdviceChip); adviceDE55Check and adviceChipCheck apply the
// verdict inside the transaction.
var adviceChipVerifyCheck = check{name: "advice chip verify", phase: beforeTx,
	run: func(ctx context.Context, st *auth) (decision, error) {
		ac, err := st.s.checkAdviceChip(ctx, st.r, st.o)
		st.advice = ac
		return pass, err
	}}

// adviceDE55Check refuses an advice's DE 55 that checkAdviceChip refused:
// 904 malformed or reserved 9F27 (de55_invalid), 902 an AAC (advice_aac)
// or no card security keys (de55_invalid).
var adviceDE55Check = check{name: "advice de55", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionFormatError, iso93.ActionInvalidTransaction},
	run: func(_ context.Context, st *auth) (decision, error) {
		if ac := st.advice; ac.code != "" {
			return declineOf(ac.code, ac.kind, ac.reason), nil
		}
		return pass, nil
	}}

// adviceChipCheck applies the chip checks of an offline approval advice
// to the card inside its transaction, after the card checks: AID not
// accepted 902 (aid_refused), cryptogram not verifying 102 (tc_invalid
// or arqc_invalid), ATC already used 100 (atc_replayed).
var adviceChipCheck = check{name: "advice chip", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionInvalidTransaction, iso93.ActionSuspectedFraud, iso93.ActionDoNotHonour},
	run: func(ctx context.Context, st *auth) (decision, error) {
		ac, c := st.advice, st.card
		if ac.chip == nil {
			return pass, nil
		}
		sec := ac.sec
		if sec == nil || sec.cardID != c.ID {
			// The card appeared (or changed) between the checks before the
			// transaction and this one: a fault; a repeat decides afresh.
			return pass, fmt.Errorf("card %d changed during the advice", c.ID)
		}
		typ := ac.chip.CID().Type()
		switch {
		case !sec.aidOK:
			return st.cardDecline(iso93.ActionInvalidTransaction, "aid_refused", "application identifier (84) absent or not accepted"), nil
		case !sec.arqcOK && typ == emv.TC:
			return st.cardDecline(iso93.ActionSuspectedFraud, "tc_invalid", "offline approval's TC does not verify"), nil
		case !sec.arqcOK:
			return st.cardDecline(iso93.ActionSuspectedFraud, "arqc_invalid", "stand-in advice's ARQC does not verify"), nil
		}
		refused, err := useATC(ctx, st.tx, st.o.fp, ac.chip, false)
		if err != nil || refused == "" {
			return pass, err
		}
		return st.cardDecline(iso93.ActionDoNotHonour, "atc_replayed", refused), nil
	}}
