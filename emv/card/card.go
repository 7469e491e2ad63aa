// Package card simulates an EMV chip card application for the terminal
// simulator and tests: it holds an ICC master key derived from a test
// issuer master key (option A for a TDES IMK; option C for an AES IMK,
// Config.AES), keeps an application transaction counter,
// answers the first GENERATE AC with an ARQC, TC or AAC over the terminal's
// CDOL1 data, checks the issuer's ARPC (method 1) in the second GENERATE
// AC, and in its contactless variant produces the cryptogram in the first
// tap from the PDOL data. With secure messaging keys it runs issuer
// script commands whose MAC verifies (script.go): APPLICATION BLOCK makes
// it answer every later GENERATE AC (and tap) with an AAC.
//
// The cryptogram covers the values of de55.ACDataTags (the common CDOL1
// elements, AIP and ATC) under the EMV common session key for the ATC,
// exactly what the issuer reads back from DE 55 with Request.ACData. With
// TDES keys the cryptogram is the ISO/IEC 9797-1 MAC algorithm 3; with AES
// keys the AES common session key (R = ATC || 00 x14) and the leftmost 8
// bytes of the CMAC, and ARPC method 1 is the AES one (emv/cryptogram,
// aes.go). The issuer application data (9F10) is a fixed CVN-10-style
// value that the issuer does not MAC, the same for both.
//
// This is a simulator: its keys are in process memory. A Card is safe for
// concurrent use; operations on one card are serialised as a real card's
// are.
package card

import (
	"errors"
	"fmt"
	"sync"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

// Errors callers branch on.
var (
	// ErrSequence means a command came out of order: a second GENERATE
	// AC without a first that asked to go online.
	ErrSequence = errors.New("card: command out of sequence")
	// ErrATCExhausted means the transaction counter reached FFFF; the
	// card refuses further transactions.
	ErrATCExhausted = errors.New("card: transaction counter exhausted")
	// ErrData means terminal data does not fit the card's DOL.
	ErrData = errors.New("card: terminal data does not match the data object list")
)

// DefaultCDOL1 returns the card's CDOL1: 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37.
func DefaultCDOL1() dol.DOL { return append(dol.DOL(nil), defaultCDOL1...) }

var defaultCDOL1 = dol.DOL{{Tag: tags.AmountAuthorised, Len: 6}, {Tag: tags.AmountOther, Len: 6}, {Tag: tags.TerminalCountryCode, Len: 2}, {Tag: tags.TVR, Len: 5}, {Tag: tags.TransactionCurrencyCode, Len: 2}, {Tag: tags.TransactionDate, Len: 3}, {Tag: tags.TransactionType, Len: 1}, {Tag: tags.UnpredictableNumber, Len: 4}}

// DefaultCDOL2 returns the card's CDOL2: 8A 95 9F37 (ARC, TVR, unpredictable
// number); the issuer authentication data comes with EXTERNAL
// AUTHENTICATE, here the second GenerateAC call's argument.
func DefaultCDOL2() dol.DOL { return append(dol.DOL(nil), defaultCDOL2...) }

var defaultCDOL2 = dol.DOL{{Tag: tags.AuthorisationResponseCode, Len: 2}, {Tag: tags.TVR, Len: 5}, {Tag: tags.UnpredictableNumber, Len: 4}}

// DefaultPDOL returns the contactless card's PDOL: TTQ then the CDOL1 elements.
func DefaultPDOL() dol.DOL { return append(dol.DOL(nil), defaultPDOL...) }

var defaultPDOL = append(dol.DOL{{Tag: tags.TTQ, Len: 4}}, defaultCDOL1...)

// IssuerApplicationData returns the card's 9F10: length 06, derivation
// key index 01, cryptogram version 0A, card verification results
// 03A00000. The slice is a copy.
func IssuerApplicationData() []byte { return append([]byte(nil), issuerApplicationData...) }

var issuerApplicationData = []byte{0x06, 0x01, 0x0A, 0x03, 0xA0, 0x00, 0x00}

// Config personalises a card.
type Config struct {
	// PAN is the card number's digits (12 to 19). Required.
	PAN string
	// PSN is the PAN sequence number (BCD, 5F34); 0 means 00.
	PSN byte
	// Expiry is 5F24, YYMMDD as 3 BCD bytes. Required.
	Expiry [3]byte
	// IMK is the test issuer master key for application cryptograms: 16
	// bytes (TDES), or with AES 16, 24 or 32 bytes; the card keeps only
	// the ICC master key derived from it. Required.
	IMK []byte
	// AES makes IMK an AES key: the ICC master key is derived with option
	// C, cryptograms are AES-CMAC and ARPC method 1 is the AES one. The
	// issuer's IMK-AC must then be an AES key too.
	AES bool
	// ATC is the counter before the first transaction; 0 means a new card.
	ATC uint16
	// AIP is 82; the zero value means 1900 contact (cardholder
	// verification, terminal risk management, CDA) with the contactless
	// variant's 1980.
	AIP emv.AIP
	// Offline lets the card approve offline with a TC when the terminal
	// asks for one; by default it always asks to go online (ARQC).
	Offline bool
	// ARPCWithSessionKey makes the card check ARPC method 1 under the AC
	// session key instead of the ICC master key.
	ARPCWithSessionKey bool
	// ODA, when set, personalises the card for offline data
	// authentication (oda.go); with a zero AIP the card's AIP is then
	// 7980 (SDA, DDA, cardholder verification, terminal risk management,
	// CDA).
	ODA *ODAConfig
	// IMKSMI and IMKSMC are the test issuer master keys for secure
	// messaging integrity and confidentiality (16-byte TDES keys; the
	// card keeps the ICC master keys derived with option A). Without
	// IMKSMI the card refuses every issuer script command (script.go).
	IMKSMI, IMKSMC []byte
}

// Card is a simulated EMV card application. Safe for concurrent use.
type Card struct {
	pan    string
	psn    byte
	expiry [3]byte
	aip    emv.AIP
	cfg    Config

	mu      sync.Mutex
	mk      []byte
	atc     uint16
	pending *pending  // first GENERATE AC answered ARQC, awaiting the second
	oda     *odaState // nil without ODA; immutable after New

	smi, smc []byte       // ICC master keys for secure messaging; nil without
	script   *scriptState // the last ARQC's ATC and cryptogram, for issuer scripts
	blocked  bool         // APPLICATION BLOCK accepted: every GENERATE AC answers AAC
}

type pending struct {
	atc  uint16
	arqc [8]byte
	r    [8]byte
	data []byte // CDOL1-derived AC data of the first GENERATE AC
}

// New personalises a card. The IMK is not retained.
func New(cfg Config) (*Card, error) {
	derive := cryptogram.DeriveICCMasterKeyA
	if cfg.AES {
		derive = cryptogram.DeriveICCMasterKeyC
	}
	mk, err := derive(cfg.IMK, cfg.PAN, cfg.PSN)
	if err != nil {
		return nil, fmt.Errorf("personalise card: %w", err)
	}
	if len(cfg.PAN) < 12 {
		return nil, fmt.Errorf("personalise card: PAN of %d digits: %w", len(cfg.PAN), cryptogram.ErrPAN)
	}
	if err := tags.Check(tlv.New(tags.ExpirationDate, cfg.Expiry[:])); err != nil {
		return nil, fmt.Errorf("personalise card: expiry: %w", err)
	}
	aip := cfg.AIP
	switch {
	case aip != (emv.AIP{}):
	case cfg.ODA != nil:
		aip = emv.AIP{0x79, 0x80}
	default:
		aip = emv.AIP{0x19, 0x80}
	}
	c := &Card{pan: cfg.PAN, psn: cfg.PSN, expiry: cfg.Expiry, aip: aip, cfg: cfg, mk: mk, atc: cfg.ATC}
	if err := c.personaliseSM(cfg.IMKSMI, cfg.IMKSMC); err != nil {
		return nil, fmt.Errorf("personalise card: %w", err)
	}
	if cfg.ODA != nil {
		if err := c.personaliseODA(cfg.ODA); err != nil {
			return nil, fmt.Errorf("personalise card: %w", err)
		}
	}
	return c, nil
}

// ATC returns the counter of the last transaction.
func (c *Card) ATC() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.atc
}

// MasterKeyKCV returns the ICC master key's 3-byte check value, to match a
// personalisation against the issuer's token (hsm.EMVIssuer.ICCMasterKeyKCV):
// the TDES encryption of zeros, or for AES the CMAC of a zero block.
func (c *Card) MasterKeyKCV() []byte {
	if c.cfg.AES {
		kcv, _ := cryptogram.KCVAES(c.mk) // a personalised card has a valid key
		return kcv
	}
	kcv, _ := cryptogram.KCV(c.mk) // a personalised card has a 16-byte key
	return kcv
}

// Records returns the data a terminal reads from the card (READ RECORD):
// PAN, PSN, expiry, track 2 equivalent, AIP, AUC, CDOL1, CDOL2 and CVM list.
// It contains card data: the terminal must encrypt it, never log it
// (tags.Describe masks it).
func (c *Card) Records() []tlv.TLV {
	pan := packCN(c.pan, (len(c.pan)+1)/2)
	t2 := packCN(c.pan+"D"+fmt.Sprintf("%02X%02X", c.expiry[0], c.expiry[1])+"201", 19)
	return []tlv.TLV{
		tlv.New(tags.PAN, pan),
		tlv.New(tags.PANSequenceNumber, []byte{c.psn}),
		tlv.New(tags.ExpirationDate, c.expiry[:]),
		tlv.New(tags.Track2Equivalent, trimF(t2)),
		tlv.New(tags.AIP, c.aip[:]),
		tlv.New(tags.AUC, []byte{0xFF, 0x00}),
		tlv.New(tags.CDOL1, defaultCDOL1.Encode()),
		tlv.New(tags.CDOL2, defaultCDOL2.Encode()),
		tlv.New(tags.CVMList, emv.CVMList{Rules: []emv.CVMRule{
			{Method: emv.CVMOnlinePIN, ApplyNext: true, Condition: 0x03},
			{Method: emv.CVMSignature, ApplyNext: true, Condition: 0x03},
			{Method: emv.CVMNoCVMRequired, Condition: 0x03},
		}}.Encode()),
	}
}

// packCN packs digits (and D separators as nibble D) left-justified,
// F-padded, into n bytes.
func packCN(s string, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = 0xFF
	}
	for i := 0; i < len(s) && i/2 < n; i++ {
		v := s[i] - '0'
		if s[i] == 'D' {
			v = 0xD
		}
		if i%2 == 0 {
			out[i/2] = v<<4 | 0x0F
		} else {
			out[i/2] = out[i/2]&0xF0 | v
		}
	}
	return out
}

// trimF drops trailing all-F bytes but keeps a final half-byte pad.
func trimF(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0xFF {
		b = b[:len(b)-1]
	}
	return b
}

// Response is a GENERATE AC (or contactless GPO) answer.
type Response struct {
	CID        emv.CID
	ATC        uint16
	Cryptogram [8]byte
	IAD        []byte
}

// TLVs returns the response as the 77 template's content: 9F27, 9F36,
// 9F26, 9F10.
func (r Response) TLVs() []tlv.TLV {
	return []tlv.TLV{
		tlv.New(tags.CID, []byte{byte(r.CID)}),
		tlv.New(tags.ATC, []byte{byte(r.ATC >> 8), byte(r.ATC)}),
		tlv.New(tags.ApplicationCryptogram, r.Cryptogram[:]),
		tlv.New(tags.IssuerApplicationData, r.IAD),
	}
}

// GenerateAC answers the first GENERATE AC: want is the cryptogram the
// terminal asks for, cdol1Data the terminal's data built for
// DefaultCDOL1. The card increments its ATC, never returns more than asked
// (AAC stays AAC), answers a TC request with an ARQC unless
// Config.Offline, and remembers an ARQC for the second GENERATE AC. A
// blocked application (script.go) answers every request with an AAC.
func (c *Card) GenerateAC(want emv.CryptogramType, cdol1Data []byte) (Response, error) {
	return c.generate(want, defaultCDOL1, cdol1Data)
}

// Tap is the contactless variant: one GET PROCESSING OPTIONS with the
// terminal's data built for DefaultPDOL, answered with the cryptogram
// (ARQC, or TC when Config.Offline and the terminal's TTQ does not ask
// for online) and the ATC in the same exchange. There is no second
// GENERATE AC on contactless: an ARPC, if any, is for the next tap.
func (c *Card) Tap(pdolData []byte) (Response, error) {
	ttq, ok := defaultPDOL.Lookup(pdolData, tags.TTQ)
	if !ok {
		return Response{}, fmt.Errorf("tap: %d bytes of PDOL data, want %d: %w", len(pdolData), defaultPDOL.DataLen(), ErrData)
	}
	want := emv.TC
	if ttq[1]&0x80 != 0 { // TTQ byte 2 bit 8: online cryptogram required
		want = emv.ARQC
	}
	r, err := c.generate(want, defaultPDOL, pdolData)
	c.mu.Lock()
	c.pending = nil // contactless has no second GENERATE AC
	c.mu.Unlock()
	return r, err
}

func (c *Card) generate(want emv.CryptogramType, d dol.DOL, data []byte) (Response, error) {
	if len(data) != d.DataLen() {
		return Response{}, fmt.Errorf("GENERATE AC: %d bytes of data, want %d: %w", len(data), d.DataLen(), ErrData)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.atc == 0xFFFF {
		return Response{}, fmt.Errorf("GENERATE AC: %w", ErrATCExhausted)
	}
	c.atc++
	typ := want
	switch {
	case want == emv.AAC || c.blocked:
		typ = emv.AAC
	case want == emv.TC && c.cfg.Offline:
	default:
		typ = emv.ARQC
	}
	acData := c.acData(d, data, c.atc)
	ac, err := c.mac(c.atc, acData)
	if err != nil {
		return Response{}, fmt.Errorf("GENERATE AC: %w", err)
	}
	c.pending, c.script = nil, nil
	if typ == emv.ARQC {
		c.pending = &pending{atc: c.atc, arqc: ac, r: cryptogram.ACSessionR(c.atc), data: acData}
		c.script = &scriptState{atc: c.atc, arqc: ac}
	}
	return Response{CID: emv.CID(typ), ATC: c.atc, Cryptogram: ac, IAD: IssuerApplicationData()}, nil
}

// acData builds the values of de55.ACDataTags from the terminal's DOL
// data, the card's AIP and atc.
func (c *Card) acData(d dol.DOL, data []byte, atc uint16) []byte {
	v := dol.Values{}
	for _, e := range d {
		if x, ok := d.Lookup(data, e.Tag); ok {
			v[e.Tag] = x
		}
	}
	v[tags.AIP] = c.aip[:]
	v[tags.ATC] = []byte{byte(atc >> 8), byte(atc)}
	acTags := de55.ACDataTags()
	ac := make(dol.DOL, 0, len(acTags))
	for _, t := range acTags {
		i, _ := tags.Lookup(t)
		ac = append(ac, dol.Entry{Tag: t, Len: i.Max})
	}
	out, _ := ac.Build(v) // dictionary lengths are valid
	return out
}

func (c *Card) mac(atc uint16, data []byte) ([8]byte, error) {
	sk, err := c.sessionKey(cryptogram.ACSessionR(atc))
	if err != nil {
		return [8]byte{}, err
	}
	defer clear(sk)
	if c.cfg.AES {
		return cryptogram.GenerateACAES(sk, data)
	}
	return cryptogram.GenerateAC(sk, data)
}

// sessionKey derives the common session key for the 8-byte R (for AES, R
// followed by 8 zero bytes).
func (c *Card) sessionKey(r [8]byte) ([]byte, error) {
	if c.cfg.AES {
		return cryptogram.DeriveSessionKeyAES(c.mk, cryptogram.ExtendR(r))
	}
	return cryptogram.DeriveSessionKey(c.mk, r)
}

// CompleteOnline is EXTERNAL AUTHENTICATE plus the second GENERATE AC
// after an online authorisation: issuerAuthData is tag 91 from the
// response (ARPC method 1: ARPC || ARC; nil when the issuer sent none),
// cdol2Data the terminal's data for DefaultCDOL2, approved whether the
// issuer approved. The card answers TC only when the issuer approved and
// the ARPC verified; otherwise AAC. The returned error wraps
// cryptogram.ErrMismatch when issuer authentication failed (the terminal
// then sets TVRIssuerAuthenticationFailed); the response is valid either
// way. The ATC does not change.
func (c *Card) CompleteOnline(issuerAuthData []byte, approved bool, cdol2Data []byte) (Response, error) {
	if len(cdol2Data) != defaultCDOL2.DataLen() {
		return Response{}, fmt.Errorf("second GENERATE AC: %d bytes of data, want %d: %w", len(cdol2Data), defaultCDOL2.DataLen(), ErrData)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	if p == nil {
		return Response{}, fmt.Errorf("second GENERATE AC: %w", ErrSequence)
	}
	c.pending = nil
	var authErr error
	switch {
	case issuerAuthData == nil:
		authErr = fmt.Errorf("no issuer authentication data: %w", cryptogram.ErrMismatch)
	case len(issuerAuthData) != 10:
		authErr = fmt.Errorf("issuer authentication data of %d bytes, want 10: %w", len(issuerAuthData), cryptogram.ErrMismatch)
	default:
		key := c.mk
		if c.cfg.ARPCWithSessionKey {
			sk, err := c.sessionKey(p.r)
			if err != nil {
				return Response{}, fmt.Errorf("second GENERATE AC: %w", err)
			}
			defer clear(sk)
			key = sk
		}
		arpc1 := cryptogram.ARPC1
		if c.cfg.AES {
			arpc1 = cryptogram.ARPC1AES
		}
		want, err := arpc1(key, p.arqc, [2]byte(issuerAuthData[8:]))
		if err != nil {
			return Response{}, fmt.Errorf("second GENERATE AC: %w", err)
		}
		if [8]byte(issuerAuthData[:8]) != want {
			authErr = fmt.Errorf("ARPC: %w", cryptogram.ErrMismatch)
		}
	}
	typ := emv.AAC
	if approved && authErr == nil {
		typ = emv.TC
	}
	// The second cryptogram covers the first's data with the CDOL2 data.
	data := append(append([]byte(nil), p.data...), cdol2Data...)
	ac, err := c.mac(p.atc, data)
	if err != nil {
		return Response{}, fmt.Errorf("second GENERATE AC: %w", err)
	}
	r := Response{CID: emv.CID(typ), ATC: p.atc, Cryptogram: ac, IAD: IssuerApplicationData()}
	if authErr != nil {
		return r, fmt.Errorf("second GENERATE AC: issuer authentication failed: %w", authErr)
	}
	return r, nil
}
