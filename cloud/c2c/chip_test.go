package c2c_test

import (
	"testing"

	"github.com/posgate/posgate/cloud/c2c"
	"github.com/posgate/posgate/cloud/cardsec"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/protocol/iso93"
)

// TestHeadOfficeChipSale sends a head office's chip sale (clear PAN and
// DE 55) over the center-to-center port: the ARQC is verified in the
// token and the answer carries the ARPC the card accepts; a tampered
// cryptogram is declined 102.
func TestHeadOfficeChipSale(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	imkValue := []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10}
	tok := hsmtest.Token(t)
	imk := hsmtest.Label(t, "imk")
	if err := tok.ImportTDES(imk, imkValue, hsm.UseDerive); err != nil {
		t.Fatal(err)
	}
	keys, err := cardsec.New(tok, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keys.Close() })
	w.Switch.Chip.Keys, w.Switch.Chip.IMKLabel = keys, imk
	srv := start(t, c2c.Config{Switch: w.Switch})
	conn := dial(t, srv.Addr().String())

	c := w.NewCard(t, store.KindCredit, 100_000, 0)
	cc, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: imkValue, ATC: 0x10})
	if err != nil {
		t.Fatal(err)
	}
	m := sale(t, cloudtest.OtherTerminal, c, 1500)
	if err := m.BinaryField(iso93.FieldICCData, cloudtest.ChipDE55(t, cc, 1500, emv.TC, emv.ARQC, "0000048000", "BBA4CD5B", "")); err != nil {
		t.Fatal(err)
	}
	resp, err := conn.Send(m)
	if err != nil {
		t.Fatal(err)
	}
	if action, _ := resp.GetString(iso93.FieldActionCode); action != string(iso93.ActionApproved) {
		t.Fatalf("chip sale: action %s, want 000", action)
	}
	icc, err := resp.GetBytes(iso93.FieldICCData)
	if err != nil || len(icc) == 0 {
		t.Fatalf("chip sale answered without DE 55: %v", err)
	}
	r, err := de55.ParseResponse(icc)
	if err != nil {
		t.Fatalf("response DE 55: %v", err)
	}
	if len(r.IssuerAuthData) != 10 {
		t.Fatalf("issuer authentication data of %d bytes, want ARPC || ARC", len(r.IssuerAuthData))
	}
	cdol2, err := card.DefaultCDOL2().Build(dol.Values{tags.AuthorisationResponseCode: r.IssuerAuthData[8:],
		tags.TVR: []byte{0, 0, 0x04, 0x80, 0}, tags.UnpredictableNumber: []byte{0x11, 0x22, 0x33, 0x44}})
	if err != nil {
		t.Fatal(err)
	}
	final, err := cc.CompleteOnline(r.IssuerAuthData, true, cdol2)
	if err != nil || final.CID.Type() != emv.TC {
		t.Fatalf("the card refused the center's ARPC: %v %v", final.CID.Flags(), err)
	}

	// A cryptogram changed on the way: declined 102.
	d := cloudtest.ChipDE55(t, cc, 700, emv.TC, emv.ARQC, "0000048000", "BBA4CD5B", "")
	d[len(d)-1] ^= 0x01
	m = sale(t, cloudtest.OtherTerminal, c, 700)
	if err := m.BinaryField(iso93.FieldICCData, d); err != nil {
		t.Fatal(err)
	}
	if action, _ := send(t, conn, m); action == string(iso93.ActionApproved) {
		t.Fatalf("a tampered chip sale was approved")
	}
	cloudtest.CheckLedger(t, st)
}
