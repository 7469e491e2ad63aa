package authz_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/protocol/iso93"
)

// testAESIMK is a test AES-256 issuer master key.
var testAESIMK = []byte("posgate test AES-256 IMK-AC key!")

// TestChipAuthorizationAES runs online chip sales of a product whose IMK-AC
// is an AES key: the switch needs no AES setting, the token's EMVIssuer
// follows the IMK's key type. An AES card is approved with an ARPC its
// second GENERATE AC accepts (TC); a tampered AES ARQC, and a TDES card's
// cryptogram under the AES IMK, are declined 102.
func TestChipAuthorizationAES(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		aesLabel := hsmtest.Label(t, "imk-aes")
		if err := w.tok.ImportAES(aesLabel, testAESIMK, hsm.UseDerive); err != nil {
			t.Fatalf("import AES IMK: %v", err)
		}
		c := w.NewCard(t, store.KindCredit, 100000, 0)
		setSecurity(t, st, c, func(p *store.CardSecurity) { p.IMKLabel = aesLabel })
		cc, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testAESIMK, AES: true, ATC: 0x20})
		if err != nil {
			t.Fatalf("new AES chip card: %v", err)
		}

		t.Run("approved_with_arpc_card_answers_tc", func(t *testing.T) {
			r := w.Request(iso93.MTIFinancialRequest, c, 1500)
			r.ICCData = arqc(t, cc, 1500, "")
			resp := authorize(t, w.World, r)
			wantCode(t, resp, iso93.ActionApproved)
			if typ, err := complete(t, cc, resp); err != nil || typ != emv.TC {
				t.Fatalf("card's second GENERATE AC = %v, %v; want TC", typ, err)
			}
		})
		t.Run("tampered_arqc_declined_102", func(t *testing.T) {
			before := auditKinds(t, st, "arqc_invalid")
			r := w.Request(iso93.MTIFinancialRequest, c, 1500)
			d := arqc(t, cc, 1500, "")
			i := strings.Index(hex.EncodeToString(d), "9f2608") / 2
			d[i+3+5] ^= 0x40
			r.ICCData = d
			resp := authorize(t, w.World, r)
			wantCode(t, resp, iso93.ActionSuspectedFraud)
			if got := auditKinds(t, st, "arqc_invalid"); got != before+1 {
				t.Fatalf("arqc_invalid audit records %d, want %d", got, before+1)
			}
			p, err := de55.ParseResponse(resp.ICCData)
			if err != nil || len(p.IssuerAuthData) != 10 || string(p.IssuerAuthData[8:]) != "59" {
				t.Fatalf("decline's issuer authentication data %X, %v; want ARPC || \"59\"", p.IssuerAuthData, err)
			}
			// The decline's ARPC is over the tampered ARQC: the card
			// refuses it and declines.
			if typ, err := complete(t, cc, resp); !errors.Is(err, cryptogram.ErrMismatch) || typ != emv.AAC {
				t.Fatalf("card after a tampered ARQC = %v, %v; want AAC and ErrMismatch", typ, err)
			}
		})
		t.Run("tdes_card_under_aes_imk_declined_102", func(t *testing.T) {
			tdes, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testIMK, ATC: 0x80})
			if err != nil {
				t.Fatal(err)
			}
			r := w.Request(iso93.MTIFinancialRequest, c, 900)
			r.ICCData = arqc(t, tdes, 900, "")
			wantCode(t, authorize(t, w.World, r), iso93.ActionSuspectedFraud)
		})
	})
}
