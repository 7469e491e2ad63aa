package card_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/cryptogram/cryptogramtest"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// terminal holds one transaction's terminal data.
func terminal(t testing.TB, un string) dol.Values {
	return dol.Values{
		tags.AmountAuthorised:        unhex(t, "000000001200"),
		tags.AmountOther:             unhex(t, "000000000000"),
		tags.TerminalCountryCode:     unhex(t, "0392"),
		tags.TVR:                     unhex(t, "0000048000"),
		tags.TransactionCurrencyCode: unhex(t, "0392"),
		tags.TransactionDate:         unhex(t, "260121"),
		tags.TransactionType:         {0x00},
		tags.UnpredictableNumber:     unhex(t, un),
		tags.TTQ:                     unhex(t, "36004000"),
	}
}

func newCard(t testing.TB, cfg card.Config) *card.Card {
	t.Helper()
	v := cryptogramtest.Load(t)[0]
	if cfg.IMK == nil {
		cfg.IMK = v.IMK
	}
	if cfg.PAN == "" {
		cfg.PAN, cfg.PSN = v.PAN, v.PSN
	}
	if cfg.Expiry == [3]byte{} {
		cfg.Expiry = [3]byte{0x30, 0x12, 0x31}
	}
	c, err := card.New(cfg)
	if err != nil {
		t.Fatalf("new card: %v", err)
	}
	return c
}

// de55For builds the request DE 55 from terminal data and the card's
// answer, as the terminal does.
func de55For(t testing.TB, c *card.Card, term dol.Values, r card.Response) []byte {
	t.Helper()
	v := dol.Values{}
	for k, x := range term {
		if k != tags.TTQ {
			v[k] = x
		}
	}
	for _, x := range r.TLVs() {
		v[x.Tag] = x.Value
	}
	for _, x := range c.Records() {
		if x.Tag == tags.AIP || x.Tag == tags.PANSequenceNumber {
			v[x.Tag] = x.Value
		}
	}
	b, err := de55.Build(v)
	if err != nil {
		t.Fatalf("build DE 55: %v", err)
	}
	return b
}

func TestPublishedKey(t *testing.T) {
	v := cryptogramtest.Load(t)[0]
	c := newCard(t, card.Config{})
	if got := fmt.Sprintf("%X", c.MasterKeyKCV()[:2]); got != fmt.Sprintf("%X", v.ICCMKKCV) {
		t.Fatalf("ICC MK KCV = %s, want %X", got, v.ICCMKKCV)
	}
}

func TestContactFlowSoftware(t *testing.T) {
	v := cryptogramtest.Load(t)[0]
	tests := []struct {
		name      string
		approved  bool
		tamper    bool
		sessionK  bool
		wantType  emv.CryptogramType
		wantError error
	}{
		{"approved", true, false, false, emv.TC, nil},
		{"approved_session_key_arpc", true, false, true, emv.TC, nil},
		{"declined", false, false, false, emv.AAC, nil},
		{"bad_arpc", true, true, false, emv.AAC, cryptogram.ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t, card.Config{ATC: 0x10, ARPCWithSessionKey: tc.sessionK})
			term := terminal(t, "BBA4CD5B")
			data, _ := card.DefaultCDOL1().Build(term)
			r, err := c.GenerateAC(emv.TC, data)
			if err != nil {
				t.Fatalf("first GENERATE AC: %v", err)
			}
			if r.CID.Type() != emv.ARQC || r.ATC != 0x11 {
				t.Fatalf("first answer %v ATC %d, want ARQC ATC 17", r.CID.Flags(), r.ATC)
			}
			// Issuer side, pure Go: read DE 55, verify, answer.
			req, err := de55.ParseRequest(de55For(t, c, term, r))
			if err != nil {
				t.Fatalf("parse DE 55: %v", err)
			}
			mk, _ := cryptogram.DeriveICCMasterKeyA(v.IMK, v.PAN, req.PSN())
			sk, _ := cryptogram.DeriveSessionKey(mk, cryptogram.ACSessionR(req.ATC()))
			if err := cryptogram.VerifyAC(sk, req.ACData(), req.Cryptogram()); err != nil {
				t.Fatalf("issuer verify: %v", err)
			}
			arc := [2]byte{'0', '5'}
			if tc.approved {
				arc = [2]byte{'0', '0'}
			}
			key := mk
			if tc.sessionK {
				key = sk
			}
			arpc, _ := cryptogram.ARPC1(key, req.Cryptogram(), arc)
			if tc.tamper {
				arpc[0] ^= 1
			}
			cdol2, _ := card.DefaultCDOL2().Build(dol.Values{tags.AuthorisationResponseCode: arc[:], tags.TVR: unhex(t, "0000048000"), tags.UnpredictableNumber: unhex(t, "01020304")})
			r2, err := c.CompleteOnline(de55.IssuerAuthDataMethod1(arpc, arc), tc.approved, cdol2)
			if !errors.Is(err, tc.wantError) || (tc.wantError == nil && err != nil) {
				t.Fatalf("second GENERATE AC: %v, want %v", err, tc.wantError)
			}
			if r2.CID.Type() != tc.wantType || r2.ATC != r.ATC {
				t.Fatalf("second answer %v ATC %d, want %v ATC %d", r2.CID.Flags(), r2.ATC, tc.wantType, r.ATC)
			}
			if _, err := c.CompleteOnline(nil, true, cdol2); !errors.Is(err, card.ErrSequence) {
				t.Fatalf("repeated second GENERATE AC: %v, want ErrSequence", err)
			}
		})
	}
}

// TestContactFlowToken runs the card against the issuer in the token: DE
// 55 out, ARQC verified and ARPC made by hsm.EMVIssuer, ATC guarded, DE 55
// response back, TC from the card; then a replayed request is refused.
func TestContactFlowToken(t *testing.T) {
	tok := hsmtest.Token(t)
	v := cryptogramtest.Load(t)[0]
	label := hsmtest.Label(t, "imk-ac")
	if err := tok.ImportTDES(label, v.IMK, hsm.UseDerive); err != nil {
		t.Fatalf("import IMK: %v", err)
	}
	iss, err := tok.EMVIssuer(label, 0)
	if err != nil {
		t.Fatalf("EMV issuer: %v", err)
	}
	defer iss.Close()
	guard := &emv.MemoryATCGuard{MaxGap: 50}
	c := newCard(t, card.Config{})
	if kcv, err := iss.ICCMasterKeyKCV(v.PAN, v.PSN); err != nil || kcv != fmt.Sprintf("%X", c.MasterKeyKCV()) {
		t.Fatalf("token ICC MK KCV %s, %v; card %X", kcv, err, c.MasterKeyKCV())
	}
	var firstDE55 []byte
	authorise := func(raw []byte) ([]byte, error) {
		req, err := de55.ParseRequest(raw)
		if err != nil {
			return nil, err
		}
		arpc, err := iss.VerifyARQCAndARPC1(hsm.ARQCRequest{PAN: v.PAN, PSN: req.PSN(), R: cryptogram.ACSessionR(req.ATC()), Data: req.ACData(), ARQC: req.Cryptogram()}, [2]byte{'0', '0'}, hsm.ARPCKeyICCMaster)
		if err != nil {
			return nil, err
		}
		if err := guard.Accept(context.Background(), "fingerprint-of-card/45", req.ATC()); err != nil {
			return nil, err
		}
		return de55.BuildResponse(de55.Response{IssuerAuthData: de55.IssuerAuthDataMethod1(arpc, [2]byte{'0', '0'})})
	}
	for i, un := range []string{"11111111", "22222222"} {
		term := terminal(t, un)
		data, _ := card.DefaultCDOL1().Build(term)
		r, err := c.GenerateAC(emv.ARQC, data)
		if err != nil {
			t.Fatalf("GENERATE AC %d: %v", i, err)
		}
		raw := de55For(t, c, term, r)
		if i == 0 {
			firstDE55 = raw
		}
		respRaw, err := authorise(raw)
		if err != nil {
			t.Fatalf("authorise %d: %v", i, err)
		}
		resp, err := de55.ParseResponse(respRaw)
		if err != nil {
			t.Fatalf("parse response: %v", err)
		}
		cdol2, _ := card.DefaultCDOL2().Build(dol.Values{tags.AuthorisationResponseCode: []byte("00")})
		r2, err := c.CompleteOnline(resp.IssuerAuthData, true, cdol2)
		if err != nil || r2.CID.Type() != emv.TC {
			t.Fatalf("second GENERATE AC %d: %v, %v", i, r2.CID.Flags(), err)
		}
	}
	if _, err := authorise(firstDE55); !errors.Is(err, emv.ErrATCRegressed) {
		t.Fatalf("replayed first request: %v, want ErrATCRegressed", err)
	}
	tampered := bytes.Clone(firstDE55)
	tampered[3] ^= 0x01 // inside 9F26
	if _, err := authorise(tampered); !errors.Is(err, hsm.ErrCryptogram) {
		t.Fatalf("tampered request: %v, want ErrCryptogram", err)
	}
}

func TestContactless(t *testing.T) {
	tests := []struct {
		name    string
		offline bool
		ttq     string
		want    emv.CryptogramType
	}{
		{"online_required", false, "36804000", emv.ARQC},
		{"card_always_online", false, "36004000", emv.ARQC},
		{"offline_capable", true, "36004000", emv.TC},
		{"offline_card_online_terminal", true, "36804000", emv.ARQC},
	}
	v := cryptogramtest.Load(t)[0]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t, card.Config{Offline: tc.offline})
			term := terminal(t, "CAFEBABE")
			term[tags.TTQ] = unhex(t, tc.ttq)
			data, _ := card.DefaultPDOL().Build(term)
			r, err := c.Tap(data)
			if err != nil {
				t.Fatalf("tap: %v", err)
			}
			if r.CID.Type() != tc.want || r.ATC != 1 {
				t.Fatalf("tap answer %v ATC %d, want %v ATC 1", r.CID.Flags(), r.ATC, tc.want)
			}
			req, err := de55.ParseRequest(de55For(t, c, term, r))
			if err != nil {
				t.Fatalf("parse DE 55: %v", err)
			}
			mk, _ := cryptogram.DeriveICCMasterKeyA(v.IMK, v.PAN, v.PSN)
			sk, _ := cryptogram.DeriveSessionKey(mk, cryptogram.ACSessionR(r.ATC))
			if err := cryptogram.VerifyAC(sk, req.ACData(), r.Cryptogram); err != nil {
				t.Fatalf("issuer verify of the tap cryptogram: %v", err)
			}
			if _, err := c.CompleteOnline(make([]byte, 10), true, make([]byte, card.DefaultCDOL2().DataLen())); !errors.Is(err, card.ErrSequence) {
				t.Fatalf("second GENERATE AC after a tap: %v, want ErrSequence", err)
			}
		})
	}
}

func TestCardErrors(t *testing.T) {
	c := newCard(t, card.Config{ATC: 0xFFFE})
	data := make([]byte, card.DefaultCDOL1().DataLen())
	if _, err := c.GenerateAC(emv.AAC, data[:5]); !errors.Is(err, card.ErrData) {
		t.Fatalf("short CDOL1 data: %v", err)
	}
	r, err := c.GenerateAC(emv.AAC, data)
	if err != nil || r.CID.Type() != emv.AAC {
		t.Fatalf("AAC request: %v, %v", r.CID.Flags(), err)
	}
	if _, err := c.GenerateAC(emv.ARQC, data); !errors.Is(err, card.ErrATCExhausted) {
		t.Fatalf("ATC FFFF: %v, want ErrATCExhausted", err)
	}
	if _, err := c.Tap([]byte{1}); !errors.Is(err, card.ErrData) {
		t.Fatalf("short PDOL data: %v", err)
	}
	for _, cfg := range []card.Config{{PAN: "1234", IMK: make([]byte, 16), Expiry: [3]byte{0x30, 1, 1}}, {PAN: "4761739001010010", IMK: make([]byte, 8), Expiry: [3]byte{0x30, 1, 1}}, {PAN: "4761739001010010", IMK: make([]byte, 16), Expiry: [3]byte{0x30, 0x1A, 1}}} {
		if _, err := card.New(cfg); err == nil {
			t.Fatalf("New accepted a bad config")
		}
	}
}

func TestRecordsMasked(t *testing.T) {
	c := newCard(t, card.Config{PAN: "4761739001010010", PSN: 1})
	recs := c.Records()
	x, ok := tlv.Find(recs, tags.Track2Equivalent)
	if !ok || !strings.HasPrefix(fmt.Sprintf("%X", x.Value), "4761739001010010D3012201") {
		t.Fatalf("track 2 equivalent malformed")
	}
	for _, r := range recs {
		if err := tags.Check(r); err != nil {
			t.Fatalf("record %s: %v", r.Tag, err)
		}
	}
	var sb strings.Builder
	if err := tags.Describe(&sb, recs); err != nil {
		t.Fatalf("describe: %v", err)
	}
	if strings.Contains(sb.String(), "4761739001010010") {
		t.Fatal("described records show the PAN")
	}
}
