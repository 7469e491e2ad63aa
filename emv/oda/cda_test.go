package oda_test

import (
	"errors"
	"testing"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/oda"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

func cdol1Data(t testing.TB, amount byte, un [4]byte) []byte {
	t.Helper()
	d, err := card.DefaultCDOL1().Build(dol.Values{
		tags.AmountAuthorised:        {0, 0, 0, 0, 0x10, amount},
		tags.TerminalCountryCode:     {0x03, 0x92},
		tags.TVR:                     {0, 0, 0, 0, 0},
		tags.TransactionCurrencyCode: {0x03, 0x92},
		tags.TransactionDate:         {0x26, 0x11, 0x24},
		tags.UnpredictableNumber:     un[:],
	})
	if err != nil {
		t.Fatalf("build CDOL1 data: %v", err)
	}
	return d
}

func replaced(list []tlv.TLV, tag tlv.Tag, v []byte) []tlv.TLV {
	return replace(list, tag, v)
}

func TestCDA(t *testing.T) {
	f := newFixture(t, "icc")
	un := [4]byte{0x0A, 0x0B, 0x0C, 0x0D}
	data := cdol1Data(t, 0x00, un)

	// A twin card (same personalisation and ATC) answers the same
	// GENERATE AC without CDA: its cryptogram in the clear is what the
	// CDA signature must carry.
	twin := newFixture(t, "icc").card
	plain, err := twin.GenerateAC(emv.ARQC, data)
	if err != nil {
		t.Fatalf("GenerateAC: %v", err)
	}
	resp, err := f.card.GenerateACCDA(emv.ARQC, data)
	if err != nil {
		t.Fatalf("GenerateACCDA: %v", err)
	}
	if _, ok := tlv.Find(resp, tags.ApplicationCryptogram); ok {
		t.Error("CDA answer carries 9F26 in the clear")
	}
	sdad, _ := tlv.Find(resp, tags.SignedDynamicData)
	tcCID := []byte{byte(emv.TC)}

	for _, tc := range []struct {
		name     string
		un       [4]byte
		data     []byte
		resp     []tlv.TLV
		want     error
		wantBits []emv.Bit
	}{
		{"ok", un, data, resp, nil, nil},
		{"amount_changed", un, cdol1Data(t, 0x01, un), resp, oda.ErrHash, []emv.Bit{emv.TVRCDAFailed}},
		{"wrong_unpredictable_number", [4]byte{0x0A, 0x0B, 0x0C, 0x0E}, data, resp, oda.ErrHash, []emv.Bit{emv.TVRCDAFailed}},
		{"cid_changed_to_tc", un, data, replaced(resp, tags.CID, tcCID), oda.ErrHash, []emv.Bit{emv.TVRCDAFailed}},
		{"atc_changed", un, data, replaced(resp, tags.ATC, []byte{0x00, 0x09}), oda.ErrHash, []emv.Bit{emv.TVRCDAFailed}},
		{"tampered_signature", un, data, replaced(resp, tags.SignedDynamicData, flip(sdad.Value, 9)), oda.ErrRecoveredFormat, []emv.Bit{emv.TVRCDAFailed}},
		{"signature_absent", un, data, replaced(resp, tags.SignedDynamicData, nil), oda.ErrMissingData, []emv.Bit{emv.TVRCDAFailed, emv.TVRICCDataMissing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tvr emv.TVR
			r, err := f.verifier.AuthenticateCDA(f.data, tc.un, nil, tc.data, tc.resp, &tvr)
			var want emv.TVR
			for _, b := range tc.wantBits {
				want.Set(b)
			}
			if tvr != want {
				t.Errorf("TVR %v, want %v", tvr.Flags(), want.Flags())
			}
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("AuthenticateCDA error = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("AuthenticateCDA: %v", err)
			}
			if r.Cryptogram != plain.Cryptogram {
				t.Errorf("signed cryptogram %X, want the card's %X", r.Cryptogram, plain.Cryptogram)
			}
			if len(r.DynamicNumber) != 8 {
				t.Errorf("dynamic number of %d bytes, want 8", len(r.DynamicNumber))
			}
		})
	}
}

func TestCDAAnswers(t *testing.T) {
	k := keys()
	ca, err := oda.NewCA(testRID, 0x92, k["ca"])
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.CertifyIssuer(k["issuer"], oda.CertTemplate{Subject: "4761", Expiry: certExpiry})
	if err != nil {
		t.Fatal(err)
	}
	un := [4]byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name    string
		offline bool
		want    emv.CryptogramType
		wantCID emv.CryptogramType
		signed  bool
	}{
		{"offline_tc", true, emv.TC, emv.TC, true},
		{"online_card_asked_tc_gives_arqc", false, emv.TC, emv.ARQC, true},
		{"aac_unsigned", true, emv.AAC, emv.AAC, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := card.New(card.Config{PAN: testPAN, Expiry: [3]byte{0x28, 0x12, 0x31}, IMK: testIMK, Offline: tc.offline,
				ODA: &card.ODAConfig{Issuer: iss, ICCKey: k["icc512"], CertExpiry: certExpiry}})
			if err != nil {
				t.Fatal(err)
			}
			afl, recs, err := c.ReadRecords()
			if err != nil {
				t.Fatal(err)
			}
			d, err := oda.ReadCardData(testRID, afl, recs, c.AIP())
			if err != nil {
				t.Fatal(err)
			}
			v := &oda.Verifier{Keys: []oda.CAPublicKey{ca.PublicKey()}, Now: f0}
			var tvr emv.TVR
			var tsi emv.TSI
			m, err := v.Authenticate(d, c.AIP(), oda.Terminal{SDA: true, DDA: true, CDA: true}, un, c, &tvr, &tsi)
			if m != oda.MethodCDA || err != nil {
				t.Fatalf("Authenticate = %v, %v; want CDA, nil", m, err)
			}
			data := cdol1Data(t, 0x00, un)
			resp, err := c.GenerateACCDA(tc.want, data)
			if err != nil {
				t.Fatalf("GenerateACCDA: %v", err)
			}
			cid, _ := tlv.Find(resp, tags.CID)
			if got := emv.CID(cid.Value[0]).Type(); got != tc.wantCID {
				t.Errorf("CID %v, want %v", got, tc.wantCID)
			}
			_, hasSig := tlv.Find(resp, tags.SignedDynamicData)
			if hasSig != tc.signed {
				t.Fatalf("9F4B present = %v, want %v", hasSig, tc.signed)
			}
			if tc.signed {
				if _, err := v.AuthenticateCDA(d, un, nil, data, resp, &tvr); err != nil {
					t.Fatalf("AuthenticateCDA: %v", err)
				}
			}
			if tvr != (emv.TVR{}) {
				t.Errorf("TVR %v, want none", tvr.Flags())
			}
		})
	}
}

func f0() time.Time { return today }
