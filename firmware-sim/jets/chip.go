package jets

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tlv"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/protocol/iso93"
)

// The terminal's EMV kernel (docs/termsim.md, "Chip cards"). For a chip or
// contactless read of a deck card with that interface, when the terminal's
// key bundle carries issuer test keys (device.IssuerTestKeys: the
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

// Terminal data the kernel puts in DE 55.
var (
	terminalCapabilities = []byte{0xE0, 0x68, 0x00}       // 9F33: manual, stripe, chip; online PIN, signature, no CVM; no ODA
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

// chipSession is one card's EMV session at the read head between the
// first GENERATE AC and the answer.
type chipSession struct {
	card        *card.Card
	contactless bool
	tvr         emv.TVR
	un          []byte
}

// chipCard returns the simulated card of deck card c, personalised once
// per firmware under imk (or the counterfeit key for a cloned chip), so
// that its ATC advances from one transaction to the next.
func (f *Firmware) chipCard(c deck.Card, imk []byte) (*card.Card, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k, ok := f.chips[c.Name]; ok {
		return k, nil
	}
	exp, err := expiryBCD(c.Expiry)
	if err != nil {
		return nil, err
	}
	if c.Fault == deck.ChipCloned {
		imk = counterfeitIMK
	}
	k, err := card.New(card.Config{PAN: c.PAN, PSN: c.PSN, Expiry: exp, IMK: imk})
	if err != nil {
		return nil, fmt.Errorf("personalise chip of %s: %w", c.Masked(), err)
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
	k, err := f.chipCard(c, issuer.IMKAC)
	if err != nil {
		return nil, err
	}
	// SELECT by AID, GET PROCESSING OPTIONS, READ RECORD.
	recs := k.Records()
	aip, ok := findTag(recs, 0x82)
	if !ok {
		return nil, errors.New("read record: the card has no AIP (82)")
	}
	s := &chipSession{card: k, contactless: read.Entry == device.EntryContactless, un: make([]byte, 4)}
	rand.Read(s.un)
	s.tvr.Set(emv.TVROfflineDataAuthNotPerformed)

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
	// for an ARQC; the deck's cards always go online anyway.
	want := emv.TC
	if int64(fin.Amount) > f.cfg.FloorLimit {
		s.tvr.Set(emv.TVRFloorLimitExceeded)
		want = emv.ARQC
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
		0x9F33: terminalCapabilities,
		0x9F34: cvm,
		0x9F35: terminalTypeAttended,
	}
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
		if r, err = k.GenerateAC(want, cdol1); err != nil {
			return nil, fmt.Errorf("first GENERATE AC: %w", err)
		}
	}
	if got := r.CID.Type(); got != emv.ARQC {
		// An offline TC would need the terminal's offline approval and
		// its advice; an offline AAC a local decline. The deck's cards
		// always ask to go online.
		return nil, fmt.Errorf("card answered %02X, not an ARQC: offline chip decisions are not supported", byte(r.CID))
	}
	for _, v := range r.TLVs() {
		values[v.Tag] = v.Value
	}
	if fin.ICCData, err = de55.Build(values); err != nil {
		return nil, fmt.Errorf("build DE 55: %w", err)
	}
	return s, nil
}

// complete hands the answer to the card: for a contact card EXTERNAL
// AUTHENTICATE with tag 91 and the second GENERATE AC, whose TC approves
// and AAC declines; a contactless card follows the host. It reports
// whether the card accepts the host's decision as an approval.
func (s *chipSession) complete(res device.Result) (bool, error) {
	approved := res.ActionCode.Approved()
	if s.contactless {
		return approved, nil
	}
	var iad []byte
	arc := []byte("Z3") // no issuer authentication data: unable to go online
	if len(res.ICCResponse) > 0 {
		resp, err := de55.ParseResponse(res.ICCResponse)
		if err != nil {
			s.tvr.Set(emv.TVRIssuerAuthenticationFailed)
		} else {
			iad = resp.IssuerAuthData
		}
	}
	if len(iad) == 10 {
		arc = iad[8:10]
	}
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
	return r.CID.Type() == emv.TC, nil
}
