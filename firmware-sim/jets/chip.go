package jets

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/oda"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// The terminal's EMV kernel (docs/termsim.md, "Chip cards"). For a chip or
// contactless read of a deck card with that interface, when the terminal's
// key bundle carries issuer test keys (keybundle.IssuerTestKeys: the
// simulator also plays the card bureau that personalised the card; the
// kernel itself never uses them), the terminal runs the card (emv/card):
// application selection by the deck card's AID, GET PROCESSING OPTIONS
// (AIP), READ RECORD, cardholder verification (online PIN, signature or
// no CVM), terminal risk management against the floor limit, the first
// GENERATE AC, and sends the request with DE 55 (de55.Build). On the
// answer a contact card gets EXTERNAL AUTHENTICATE and the second GENERATE
// AC with the ARPC of tag 91 and answers TC (approved) or AAC; a
// contactless card gave its cryptogram in the tap and is not asked again.
// A dead chip (deck.ChipDead) makes the terminal fall back to the
// magnetic stripe. Without issuer test keys a chip read is sent as before,
// without DE 55.
//
// Issuer scripts (docs/emv.md, "Secure messaging and issuer scripts"):
// when the bundle's issuer test keys carry the IMK-SMI (and IMK-SMC), the
// deck cards are personalised for secure messaging, and complete() hands
// the card each template 71 of the answer's DE 55 before the second
// GENERATE AC and each template 72 after it (card.RunScript), logging the
// status words. A card the issuer blocked (APPLICATION BLOCK) answers its
// next first GENERATE AC, or tap, with an AAC: the terminal declines the
// transaction offline (ErrCardDeclined, action 100, nothing sent). The
// simulated cards live in the Firmware (one set per terminal, for the
// life of the process), so a block holds for that terminal's later sales
// until the process ends; another terminal of a farm, or a restarted
// termsim, holds its own unblocked copy of the card.
//
// Offline data authentication and offline approval (docs/emv.md, "How the
// terminal simulator should call it"): when Config.Bureau is set, contact
// cards are personalised for SDA, DDA and CDA by that bureau and allowed
// to approve offline; the kernel reads the records, runs the ODA step
// (oda.Verifier.Authenticate with the bureau's CA public keys: DDA, or
// CDA when Config.CDA) and, for a sale at or under the floor limit with no
// ODA failure, asks the card for a TC (with CDA: GENERATE AC with CDA,
// the signature verified, a failing one declined at the terminal). A TC is an offline
// approval: the terminal answers approved (approval code "Y1" and four
// STAN digits, EMV's offline-approved response code as the marker),
// journals it and sends a 1220 advice (function 201, reason
// iso93.ReasonICCProcessed, DE 55 with the TC) through its advice queue
// (advice.go). Any ODA failure, an amount above the floor limit, or a full
// advice queue (Config.MaxPendingAdvices) goes online with an ARQC as
// before, the TVR telling the issuer why (nothing in it for a full queue).

// ErrCardDeclined is the error of a transaction the card declined
// offline: its first GENERATE AC (or tap) answered an AAC, which a deck
// card does only when an issuer script blocked its application. The
// terminal answers declined, action 100, and sends nothing.
var ErrCardDeclined = errors.New("jets: the card declined offline (AAC)")

// Terminal data the kernel puts in DE 55.
var (
	terminalCapabilities = []byte{0xE0, 0x68, 0x00}       // 9F33: manual, stripe, chip; online PIN, signature, no CVM; no ODA
	terminalCapsODA      = []byte{0xE0, 0x68, 0xC0}       // 9F33 with a Bureau: byte 3 SDA, DDA
	terminalCapsCDA      = []byte{0xE0, 0x68, 0xC8}       // 9F33 with a Bureau and Config.CDA: SDA, DDA, CDA
	terminalTypeAttended = []byte{0x22}                   // 9F35: attended, merchant, online with offline capability
	contactlessTTQ       = []byte{0x36, 0x80, 0x40, 0x00} // 9F66: EMV mode, online PIN, signature; online cryptogram required
	countryJapan         = []byte{0x03, 0x92}             // 9F1A
)

// counterfeitIMK personalises deck.ChipCloned cards: a key the issuer
// does not hold.
var counterfeitIMK = func() []byte {
	s := sha256.Sum256([]byte("posgate simulator counterfeit IMK"))
	return s[:16]
}()

// Key sizes of the bureau's test keys (docs/emv.md, "Test CA and
// simulated card"): with a 1152-bit CA the 1024-bit issuer key needs a
// remainder (92), and so does the 1024-bit ICC key (9F48).
const (
	bureauCABits     = 1152
	bureauIssuerBits = 1024
	bureauICCBits    = 1024
	bureauCAIndex    = 0x99 // tag 8F of the test CA keys
)

// Bureau is the simulated card bureau's offline data authentication keys:
// a test CA per registered application provider (the first five bytes of
// a deck card's AID), an issuer per CA and issuer identifier (the first
// six PAN digits), and one ICC key all its cards share (generating one per
// card is slow). The keys are generated in process memory when first
// needed and live as long as the Bureau: a farm makes one at start and
// gives it to all its terminals, whose kernels take the CA public keys
// from it (CAKeys). A real terminal gets its CA public keys from the
// payment schemes through its acquirer, never from a card bureau; this is
// a simulation shortcut. A Bureau is safe for concurrent use.
type Bureau struct {
	mu      sync.Mutex
	now     func() time.Time
	icc     *rsa.PrivateKey
	cas     map[[5]byte]*oda.CA
	issuers map[string]*oda.Issuer // by RID hex and issuer identifier
}

// NewBureau returns a Bureau with a fresh ICC key; now (nil: time.Now)
// dates the issuer certificates, valid for five years from it.
func NewBureau(now func() time.Time) (*Bureau, error) {
	if now == nil {
		now = time.Now
	}
	icc, err := rsa.GenerateKey(rand.Reader, bureauICCBits)
	if err != nil {
		return nil, fmt.Errorf("card bureau: generate ICC key: %w", err)
	}
	return &Bureau{now: now, icc: icc, cas: map[[5]byte]*oda.CA{}, issuers: map[string]*oda.Issuer{}}, nil
}

// CAKeys returns the public keys of the test CAs made so far, what a
// terminal's oda.Verifier trusts.
func (b *Bureau) CAKeys() []oda.CAPublicKey {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]oda.CAPublicKey, 0, len(b.cas))
	for _, ca := range b.cas {
		keys = append(keys, ca.PublicKey())
	}
	return keys
}

// odaConfig returns the ODA personalisation of a card with pan under rid,
// making the CA and issuer on first use (RSA key generation under the
// lock: CPU only, no I/O).
func (b *Bureau) odaConfig(rid [5]byte, pan string, expiry time.Time) (*card.ODAConfig, error) {
	if len(pan) < 6 {
		return nil, errors.New("card bureau: PAN too short for an issuer identifier")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ca, ok := b.cas[rid]
	if !ok {
		key, err := rsa.GenerateKey(rand.Reader, bureauCABits)
		if err != nil {
			return nil, fmt.Errorf("card bureau: generate CA key: %w", err)
		}
		if ca, err = oda.NewCA(rid, bureauCAIndex, key); err != nil {
			return nil, fmt.Errorf("card bureau: CA: %w", err)
		}
		b.cas[rid] = ca
	}
	id := hex.EncodeToString(rid[:]) + "/" + pan[:6]
	is, ok := b.issuers[id]
	if !ok {
		key, err := rsa.GenerateKey(rand.Reader, bureauIssuerBits)
		if err != nil {
			return nil, fmt.Errorf("card bureau: generate issuer key: %w", err)
		}
		if is, err = ca.CertifyIssuer(key, oda.CertTemplate{Subject: pan[:6], Expiry: b.now().AddDate(5, 0, 0), Serial: [3]byte{0, 0, 1}}); err != nil {
			return nil, fmt.Errorf("card bureau: certify issuer: %w", err)
		}
		b.issuers[id] = is
	}
	return &card.ODAConfig{Issuer: is, ICCKey: b.icc, CertExpiry: expiry, Serial: [3]byte{0, 0, 2}, DAC: [2]byte{0xDA, 0xC1}}, nil
}

// chipSession is one card's EMV session at the read head between the
// first GENERATE AC and the answer. offline means the card approved
// offline (TC): there is no answer to wait for, only an advice to send.
type chipSession struct {
	card        *card.Card
	contactless bool
	offline     bool
	declined    bool  // the card answered an AAC, or its TC failed CDA: a local decline
	declineErr  error // why, when declined
	log         *slog.Logger
	method      oda.Method
	tvr         emv.TVR
	un          []byte
}

// chipCard returns the simulated card of deck card c, personalised once
// per firmware under the issuer test keys keys (a cloned chip: under the
// counterfeit key, without secure messaging keys), so that its ATC, and
// an application block an issuer script made, carry from one transaction
// to the next.
//
// With a Bureau the card is also personalised for offline data
// authentication and may approve offline; the bureau's key generation
// runs before f.mu is taken.
func (f *Firmware) chipCard(c deck.Card, keys *keybundle.IssuerTestKeys, rid [5]byte) (*card.Card, error) {
	f.mu.Lock()
	k, ok := f.chips[c.Name]
	f.mu.Unlock()
	if ok {
		return k, nil
	}
	exp, err := expiryBCD(c.Expiry)
	if err != nil {
		return nil, err
	}
	cfg := card.Config{PAN: c.PAN, PSN: c.PSN, Expiry: exp, IMK: keys.IMKAC, IMKSMI: keys.IMKSMI, IMKSMC: keys.IMKSMC}
	if c.Fault == deck.ChipCloned {
		cfg.IMK, cfg.IMKSMI, cfg.IMKSMC = counterfeitIMK, nil, nil
	}
	if b := f.cfg.Bureau; b != nil {
		yy, _ := strconv.Atoi(c.Expiry[:2]) // checked by expiryBCD
		mm, _ := strconv.Atoi(c.Expiry[2:])
		if cfg.ODA, err = b.odaConfig(rid, c.PAN, time.Date(2000+yy, time.Month(mm), 1, 0, 0, 0, 0, time.UTC)); err != nil {
			return nil, fmt.Errorf("personalise chip of %s: %w", c.Masked(), err)
		}
		cfg.Offline = true
	}
	k, err = card.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("personalise chip of %s: %w", c.Masked(), err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if prev, ok := f.chips[c.Name]; ok {
		return prev, nil // personalised meanwhile by another transaction
	}
	if f.chips == nil {
		f.chips = map[string]*card.Card{}
	}
	f.chips[c.Name] = k
	return k, nil
}

// expiryBCD turns YYMM into 5F24's YYMMDD (last day of the month) as BCD.
func expiryBCD(yymm string) ([3]byte, error) {
	if len(yymm) != 4 {
		return [3]byte{}, fmt.Errorf("card expiry: want YYMM")
	}
	yy, err1 := strconv.Atoi(yymm[:2])
	mm, err2 := strconv.Atoi(yymm[2:])
	if err1 != nil || err2 != nil || mm < 1 || mm > 12 {
		return [3]byte{}, fmt.Errorf("card expiry: want YYMM")
	}
	last := time.Date(2000+yy, time.Month(mm)+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return [3]byte{bcdByte(yy), bcdByte(mm), bcdByte(last)}, nil
}

func bcdByte(n int) byte { return byte(n/10<<4 | n%10) }

// bcd returns n as digits BCD digits (digits even) in digits/2 bytes.
func bcd(n uint64, digits int) []byte {
	b := make([]byte, digits/2)
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(n%10) | byte(n/10%10)<<4
		n /= 100
	}
	return b
}

// findTag finds tag in list, looking into templates.
func findTag(list []tlv.TLV, tag tlv.Tag) ([]byte, bool) {
	for _, t := range list {
		if t.Tag == tag && t.Value != nil {
			return t.Value, true
		}
		if v, ok := findTag(t.Children, tag); ok {
			return v, true
		}
	}
	return nil, false
}

// startChip runs the kernel up to the first cryptogram for read and puts
// the chip data into fin.ICCData. It returns nil (and leaves fin as it is)
// when the read is not an EMV one; a dead chip turns read into a
// magnetic-stripe fallback read (no PIN: signature). It sends nothing.
func (t *run) startChip(read *device.Read, fin *device.Financial) (*chipSession, error) {
	f := t.f
	c := read.Card
	if read.Entry == device.EntryMagstripe {
		return nil, nil
	}
	if (read.Entry == device.EntryChip && !c.Chip) || (read.Entry == device.EntryContactless && !c.Contactless) {
		return nil, nil
	}
	if c.Fault == deck.ChipDead {
		// No answer to reset: the terminal asks for a swipe; the center
		// sees a stripe read at a chip-capable terminal (fallback).
		f.show("CHIP ERROR\nSWIPE CARD")
		read.Entry, read.PIN = device.EntryMagstripe, ""
		fin.Read = *read
		t.rep.Entry = device.EntryMagstripe
		return nil, nil
	}
	issuer := f.cfg.Terminal.Keys().Issuer
	if issuer == nil || c.AID == "" {
		return nil, nil
	}
	aid, err := hex.DecodeString(c.AID)
	if err != nil {
		return nil, fmt.Errorf("select: deck AID of %s is not hex", c.Masked())
	}
	if len(aid) < 5 {
		return nil, fmt.Errorf("select: deck AID of %s is shorter than a RID", c.Masked())
	}
	rid := [5]byte(aid[:5])
	k, err := f.chipCard(c, issuer, rid)
	if err != nil {
		return nil, err
	}
	// SELECT by AID, GET PROCESSING OPTIONS, READ RECORD.
	recs := k.Records()
	aip, ok := findTag(recs, 0x82)
	if !ok {
		return nil, errors.New("read record: the card has no AIP (82)")
	}
	s := &chipSession{card: k, contactless: read.Entry == device.EntryContactless, un: make([]byte, 4), log: f.log}
	rand.Read(s.un)
	caps := terminalCapabilities
	var (
		tsi   emv.TSI
		odaOK bool
		d     oda.CardData
		v     oda.Verifier
	)
	if f.cfg.Bureau != nil && !s.contactless {
		// Offline data authentication: DDA, or CDA when the terminal
		// claims it (Config.CDA; SDA when the card offers no more); the
		// outcome is in the TVR and TSI, a failure is not an error of the
		// transaction but a reason to go online.
		caps = terminalCapsODA
		if f.cfg.CDA {
			caps = terminalCapsCDA
		}
		afl, odaRecs, err := k.ReadRecords()
		if err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
		d, err = oda.ReadCardData(rid, afl, odaRecs, k.AIP())
		if err != nil {
			s.tvr.Set(emv.TVRICCDataMissing)
			s.tvr.Set(emv.TVRDDAFailed)
			tsi.Set(emv.TSIOfflineDataAuthPerformed)
		} else {
			v = oda.Verifier{Keys: f.cfg.Bureau.CAKeys(), Now: f.cfg.Now}
			s.method, err = v.Authenticate(d, k.AIP(), oda.Terminal{SDA: true, DDA: true, CDA: f.cfg.CDA}, [4]byte(s.un), k, &s.tvr, &tsi)
			odaOK = err == nil
			if err != nil {
				f.log.Info("offline data authentication failed: going online", "method", s.method, "err", err)
			}
		}
	} else {
		s.tvr.Set(emv.TVROfflineDataAuthNotPerformed)
	}

	// Cardholder verification: the PIN decision was made by the read
	// (online PIN: chip always, contactless above the CVM limit).
	cvm := []byte{byte(emv.CVMNoCVMRequired), 0x03, byte(emv.CVMResultSuccessful)}
	switch {
	case read.PIN != "":
		cvm = []byte{byte(emv.CVMOnlinePIN), 0x03, byte(emv.CVMResultUnknown)}
		s.tvr.Set(emv.TVROnlinePINEntered)
	case !s.contactless:
		cvm = []byte{byte(emv.CVMSignature), 0x03, byte(emv.CVMResultUnknown)}
	}
	// Terminal risk management: above the floor limit the terminal asks
	// for an ARQC. Terminal action analysis: under it, a sale whose ODA
	// succeeded (no failure bit in the TVR) and without online PIN asks
	// for a TC; anything else goes online.
	want := emv.ARQC
	if int64(fin.Amount) > f.cfg.FloorLimit {
		s.tvr.Set(emv.TVRFloorLimitExceeded)
	} else if odaOK && t.kind == tlink.KindSale && read.PIN == "" {
		if n := f.PendingAdvices(); n >= f.cfg.MaxPendingAdvices {
			f.log.Warn("advice queue full: going online", "pending", n)
		} else {
			want = emv.TC
		}
	}
	now := f.cfg.Now()
	cur, err := strconv.ParseUint(fin.Currency, 10, 16)
	if err != nil || fin.Currency == "" {
		cur = 392
	}
	txnType := byte(0x00)
	if fin.ProcessingCode == iso93.ProcessingRefund {
		txnType = 0x20
	}
	psn := []byte{c.PSN}
	values := dol.Values{
		0x9F02: bcd(uint64(fin.Amount), 12),
		0x9F03: make([]byte, 6),
		0x9F1A: countryJapan,
		0x95:   s.tvr[:],
		0x5F2A: bcd(cur, 4),
		0x9A:   []byte{bcdByte(now.Year() % 100), bcdByte(int(now.Month())), bcdByte(now.Day())},
		0x9C:   {txnType},
		0x9F37: s.un,
		0x82:   aip,
		0x84:   aid,
		0x5F34: psn,
		0x9F33: caps,
		0x9F34: cvm,
		0x9F35: terminalTypeAttended,
	}
	// The TSI (9B) stays at the terminal: de55 does not allow it in a
	// request (docs/emv.md's recipe names it; the TVR carries the outcome).
	var r card.Response
	if s.contactless {
		values[0x9F66] = contactlessTTQ
		pdol, err := card.DefaultPDOL().Build(values)
		if err != nil {
			return nil, fmt.Errorf("build PDOL data: %w", err)
		}
		r, err = k.Tap(pdol)
		if err != nil {
			return nil, fmt.Errorf("tap: %w", err)
		}
	} else {
		cdol1, err := card.DefaultCDOL1().Build(values)
		if err != nil {
			return nil, fmt.Errorf("build CDOL1 data: %w", err)
		}
		if want == emv.TC && s.method == oda.MethodCDA {
			return s, s.offlineCDA(v, d, cdol1, values, fin)
		}
		// An ARQC is asked for without CDA, also at a CDA terminal: the
		// issuer authenticates it online (a simplification of Book 3).
		if r, err = k.GenerateAC(want, cdol1); err != nil {
			return nil, fmt.Errorf("first GENERATE AC: %w", err)
		}
	}
	switch got := r.CID.Type(); {
	case got == emv.ARQC:
	case got == emv.TC && want == emv.TC:
		s.offline = true
	case got == emv.AAC:
		// The card declines offline: a deck card does so only when an
		// issuer script blocked its application.
		s.declined, s.declineErr = true, ErrCardDeclined
		f.log.Info("the card declined offline (AAC)", "asked", want.String(), "atc", r.ATC)
		return s, nil
	default:
		return nil, fmt.Errorf("card answered %02X to a %v request", byte(r.CID), want)
	}
	for _, v := range r.TLVs() {
		values[v.Tag] = v.Value
	}
	if fin.ICCData, err = de55.Build(values); err != nil {
		return nil, fmt.Errorf("build DE 55: %w", err)
	}
	return s, nil
}

// offlineCDA asks the card for a TC with CDA and verifies the answer's
// signature (Verifier.AuthenticateCDA): a verified TC is an offline
// approval (s.offline) whose DE 55 carries the cryptogram recovered from
// the signature; a signature that fails makes the TC worthless and the
// sale a local decline (s.declined, TVR "CDA failed"). 9F4B is not put in
// DE 55 (de55 allows no CDA signature in a request).
func (s *chipSession) offlineCDA(v oda.Verifier, d oda.CardData, cdol1 []byte, values dol.Values, fin *device.Financial) error {
	resp, err := s.card.GenerateACCDA(emv.TC, cdol1)
	if err != nil {
		return fmt.Errorf("first GENERATE AC with CDA: %w", err)
	}
	cid, ok := findTag(resp, 0x9F27)
	if ok && len(cid) == 1 && emv.CID(cid[0]).Type() == emv.AAC {
		// A blocked application declines offline.
		s.declined, s.declineErr = true, ErrCardDeclined
		s.log.Info("the card declined offline (AAC)", "asked", emv.TC.String())
		return nil
	}
	if !ok || len(cid) != 1 || emv.CID(cid[0]).Type() != emv.TC {
		return fmt.Errorf("card answered %X to a TC request with CDA: referrals are not supported", cid)
	}
	res, err := v.AuthenticateCDA(d, [4]byte(s.un), nil, cdol1, resp, &s.tvr)
	if err != nil {
		s.declined, s.declineErr = true, fmt.Errorf("CDA of the card's TC: %w", err)
		return nil
	}
	for _, o := range resp {
		if o.Tag != 0x9F4B {
			values[o.Tag] = o.Value
		}
	}
	values[0x9F26] = res.Cryptogram[:]
	values[0x95] = s.tvr[:]
	if fin.ICCData, err = de55.Build(values); err != nil {
		return fmt.Errorf("build DE 55: %w", err)
	}
	s.offline = true
	return nil
}

// offline finishes a sale the card approved offline (TC): the approval
// (last transaction approved, journal entry) and the 1220 advice built
// from raw (the 1200 BuildFinancial made) are saved together, in the
// advice queue, before the txn-result says approved with the offline
// approval code; the queue's sender (advice.go) delivers the advice after
// the txn-result and before the signature. The approval stands whatever
// the advice's fate (the card's TC is the authority).
func (t *run) offline(s *chipSession, raw []byte, res device.Result) {
	f := t.f
	adv, code, err := offlineAdvice(raw, &res)
	if err != nil {
		f.show("CARD ERROR")
		t.finish(tlink.OutcomeFailed, "", err)
		return
	}
	res.ActionCode, res.ApprovalCode = iso93.ActionApproved, code
	t.rec.STAN, t.rec.Approval = res.STAN, code
	t.rec.Outcome, t.rec.Action = uint8(tlink.OutcomeApproved), string(iso93.ActionApproved)
	e := journalEntry{Kind: uint8(t.kind), Ref: t.cmd.Ref, Time: t.rec.Time, Request: res}
	p := pendingAdvice{STAN: res.STAN, Ref: t.cmd.Ref, Time: t.rec.Time, Advice: adv}
	if err := f.save(update{last: t.rec, advise: &p, journal: func(j []journalEntry) []journalEntry { return append(j, e) }}); err != nil {
		// Without the record the terminal could not account for the
		// approval nor advise it: it does not approve.
		f.show("SYSTEM ERROR")
		t.finish(tlink.OutcomeFailed, iso93.ActionSystemMalfunction, err)
		return
	}
	f.log.Info("chip sale approved offline", "stan", res.STAN, "approval_code", code, "method", s.method.String(),
		"tvr", hex.EncodeToString(s.tvr[:]), "advices_pending", f.PendingAdvices())
	t.advised = true
	t.done(res, tlink.OutcomeApproved) // the advice goes after the txn-result, before the signature
}

// offlineAdvice turns the packed 1200 raw that BuildFinancial made for an
// offline chip approval into the 1220 advice of that approval: function
// code 201, reason iso93.ReasonICCProcessed, DE 38 the terminal's offline
// approval code, the rest (card-data block, KSN, DE 55 with the TC,
// idempotency key) unchanged. It returns the advice, the approval code,
// and res updated to expect the 1230.
func offlineAdvice(raw []byte, res *device.Result) ([]byte, string, error) {
	var fr iso93.FinancialRequest
	if err := iso93.UnpackInto(raw, &fr); err != nil {
		return nil, "", fmt.Errorf("offline approval advice: unpack the request: %w", err)
	}
	code := "Y1" + fr.STAN[len(fr.STAN)-4:]
	fr.FunctionCode, fr.ReasonCode = iso93.FunctionPreviousApproval, iso93.ReasonICCProcessed
	adv, err := iso93.Pack(&iso93.Advice{Trace: fr.Trace, Payment: fr.Payment, Card: fr.Card, ApprovalCode: code}, iso93.MTIAdvice)
	if err != nil {
		return nil, "", fmt.Errorf("offline approval advice: pack 1220: %w", err)
	}
	res.MTI = iso93.MTIAdvice
	return adv, code, nil
}

// complete hands the answer to the card: for a contact card EXTERNAL
// AUTHENTICATE with tag 91, the issuer scripts of templates 71, the
// second GENERATE AC, whose TC approves and AAC declines, then the
// scripts of templates 72 (runScripts); a contactless card follows the
// host and runs no script (it has left the field). It reports whether the
// card accepts the host's decision as an approval.
func (s *chipSession) complete(res device.Result) (bool, error) {
	approved := res.ActionCode.Approved()
	var (
		iad     []byte
		scripts []tlv.TLV
	)
	if len(res.ICCResponse) > 0 {
		resp, err := de55.ParseResponse(res.ICCResponse)
		if err != nil {
			s.tvr.Set(emv.TVRIssuerAuthenticationFailed)
			s.log.Warn("response DE 55 does not parse: no issuer authentication, no scripts", "stan", res.STAN, "err", err)
		} else {
			iad, scripts = resp.IssuerAuthData, resp.Scripts
		}
	}
	if s.contactless {
		if len(scripts) > 0 {
			s.log.Info("issuer scripts not run: the contactless card has left the field", "stan", res.STAN, "templates", len(scripts))
		}
		return approved, nil
	}
	arc := []byte("Z3") // no issuer authentication data: unable to go online
	if len(iad) == 10 {
		arc = iad[8:10]
	}
	s.runScripts(scripts, tags.IssuerScript1, res.STAN)
	cdol2, err := card.DefaultCDOL2().Build(dol.Values{0x8A: arc, 0x95: s.tvr[:], 0x9F37: s.un})
	if err != nil {
		return false, fmt.Errorf("build CDOL2 data: %w", err)
	}
	r, err := s.card.CompleteOnline(iad, approved, cdol2)
	if err != nil && !errors.Is(err, cryptogram.ErrMismatch) {
		return false, fmt.Errorf("second GENERATE AC: %w", err)
	}
	if err != nil {
		s.tvr.Set(emv.TVRIssuerAuthenticationFailed)
	}
	s.runScripts(scripts, tags.IssuerScript2, res.STAN)
	return r.CID.Type() == emv.TC, nil
}

// runScripts hands the card each issuer script template of tag which (71
// or 72) in scripts, in order (card.RunScript: its 86 commands until one
// fails), sets the TVR's "script processing failed" bit of that template
// kind when a command does not answer 9000, and logs each template's
// status words and whether the card is blocked after it: no card data,
// no command bytes.
func (s *chipSession) runScripts(scripts []tlv.TLV, which tlv.Tag, stan string) {
	failed := emv.TVRScriptFailedBeforeFinalAC
	if which == tags.IssuerScript2 {
		failed = emv.TVRScriptFailedAfterFinalAC
	}
	for i, t := range scripts {
		if t.Tag != which {
			continue
		}
		sws, err := s.card.RunScript(t) // t.Tag is 71 or 72: no ErrScript
		if err != nil {
			s.tvr.Set(failed)
			s.log.Warn("issuer script not run", "stan", stan, "template", which.String(), "index", i, "err", err)
			continue
		}
		words := make([]string, len(sws))
		ok := true
		for j, sw := range sws {
			words[j] = fmt.Sprintf("%04X", sw)
			ok = ok && sw == card.SWOK
		}
		if !ok {
			s.tvr.Set(failed)
		}
		id, _ := findTag(t.Children, issuerScriptID)
		s.log.Info("issuer script run", "stan", stan, "template", which.String(), "index", i, "script_id", hex.EncodeToString(id),
			"commands", len(sws), "status_words", strings.Join(words, " "), "ok", ok, "card_blocked", s.card.Blocked())
	}
}

// issuerScriptID is tag 9F18, the optional identifier of an issuer script.
const issuerScriptID tlv.Tag = 0x9F18
