package authz_test

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/protocol/iso93"
)

// testSMI and testSMC are test issuer master keys for secure messaging.
var (
	testSMI = []byte{0x4C, 0x1F, 0x8A, 0x23, 0x5D, 0x70, 0x9E, 0xB6, 0x13, 0xC8, 0x2A, 0x64, 0xF1, 0x07, 0xD9, 0x3E}
	testSMC = []byte{0x5B, 0x68, 0x02, 0x9D, 0xE4, 0x31, 0xA7, 0xCB, 0x86, 0x1A, 0x75, 0x4F, 0x38, 0xD0, 0xE9, 0x62}
)

// withScripts gives w's switch secure messaging under testSMI/testSMC.
func withScripts(t *testing.T, w *chipWorld) {
	t.Helper()
	smi, smc := hsmtest.Label(t, "imk-smi"), hsmtest.Label(t, "imk-smc")
	if err := w.tok.ImportTDES(smi, testSMI, hsm.UseDerive); err != nil {
		t.Fatalf("import IMK-SMI: %v", err)
	}
	if err := w.tok.ImportTDES(smc, testSMC, hsm.UseDerive); err != nil {
		t.Fatalf("import IMK-SMC: %v", err)
	}
	sm, err := w.tok.SecureMessaging(smi, smc, 0)
	if err != nil {
		t.Fatalf("secure messaging: %v", err)
	}
	t.Cleanup(func() { _ = sm.Close() })
	w.Switch.Chip.Scripts = sm
}

// smCard personalises the world's card with the AC and SM keys.
func smCard(t *testing.T, pan string) *card.Card {
	t.Helper()
	cc, err := card.New(card.Config{PAN: pan, PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testIMK, ATC: 0x20, IMKSMI: testSMI, IMKSMC: testSMC})
	if err != nil {
		t.Fatalf("new chip card: %v", err)
	}
	return cc
}

// scripts returns the issuer script templates of a response DE 55.
func scripts(t *testing.T, resp authz.Response) []tlv.TLV {
	t.Helper()
	if len(resp.ICCData) == 0 {
		t.Fatalf("response %s carries no DE 55", resp.ActionCode)
	}
	r, err := de55.ParseResponse(resp.ICCData)
	if err != nil {
		t.Fatalf("parse response DE 55: %v", err)
	}
	return r.Scripts
}

// TestLostCardBlockScript: the center declines a lost (208) or stolen
// (209) card's chip request whose ARQC verifies with a DE 55 whose
// template 72 holds one APPLICATION BLOCK command; the card accepts it
// after its second GENERATE AC and declines every later transaction. The
// same script with one MAC bit changed is refused and changes nothing.
func TestLostCardBlockScript(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		withScripts(t, w)
		for _, tc := range []struct {
			name    string
			status  store.CardStatus
			code    iso93.ActionCode
			arc     string
			tamper  bool
			wantSW  uint16
			blocked bool
		}{
			{"lost_card_blocked", store.CardLost, iso93.ActionLostCard, "41", false, card.SWOK, true},
			{"stolen_card_blocked", store.CardStolen, iso93.ActionStolenCard, "43", false, card.SWOK, true},
			{"tampered_mac_ignored", store.CardLost, iso93.ActionLostCard, "41", true, card.SWSecureMessaging, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindCredit, 100000, 0)
				if err := w.Issuer.SetStatus(context.Background(), c.ID, tc.status, "test"); err != nil {
					t.Fatalf("set status: %v", err)
				}
				cc := smCard(t, c.PAN.Digits())
				r := w.Request(iso93.MTIFinancialRequest, c, 1500)
				r.ICCData = arqc(t, cc, 1500, "")
				resp := authorize(t, w.World, r)
				wantCode(t, resp, tc.code)
				list := scripts(t, resp)
				if len(list) != 1 || list[0].Tag != tags.IssuerScript2 || len(list[0].Children) != 1 {
					t.Fatalf("scripts %v, want one 72 template with one command", list)
				}
				cmd := list[0].Children[0]
				if cmd.Tag != tags.IssuerScriptCommand || len(cmd.Value) != 13 || hex.EncodeToString(cmd.Value[:5]) != "841e000008" {
					t.Fatalf("script command %s %X, want 86 with 841E000008 || MAC", cmd.Tag, cmd.Value)
				}
				if tc.tamper {
					cmd.Value[12] ^= 0x01
				}
				// The card declines (second GENERATE AC, ARPC for the
				// decline's ARC), then the terminal runs the 72 script.
				if typ, err := complete(t, cc, resp); err != nil || typ != emv.AAC {
					t.Fatalf("second GENERATE AC = %v, %v; want AAC with a valid ARPC", typ, err)
				}
				p, _ := de55.ParseResponse(resp.ICCData)
				if string(p.IssuerAuthData[8:]) != tc.arc {
					t.Fatalf("ARC %q, want %s", p.IssuerAuthData[8:], tc.arc)
				}
				sws, err := cc.RunScript(list[0])
				if err != nil || !slices.Equal(sws, []uint16{tc.wantSW}) || cc.Blocked() != tc.blocked {
					t.Fatalf("run script = %04X, %v, blocked %v; want %04X, blocked %v", sws, err, cc.Blocked(), tc.wantSW, tc.blocked)
				}
				want := emv.ARQC
				if tc.blocked {
					want = emv.AAC
				}
				generateAC(t, cc, 100, emv.TC, want, "0000048000", "01020304", "")
			})
		}
	})
}

// TestNoBlockScript: no script for an approval, for a lost card whose
// ARQC does not verify, or without secure messaging configured.
func TestNoBlockScript(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		withScripts(t, w)
		t.Run("approved", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 100000, 0)
			cc := smCard(t, c.PAN.Digits())
			r := w.Request(iso93.MTIFinancialRequest, c, 1500)
			r.ICCData = arqc(t, cc, 1500, "")
			resp := authorize(t, w.World, r)
			wantCode(t, resp, iso93.ActionApproved)
			if s := scripts(t, resp); len(s) != 0 {
				t.Fatalf("approval carries scripts %v", s)
			}
		})
		t.Run("lost_card_bad_arqc", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 100000, 0)
			if err := w.Issuer.SetStatus(context.Background(), c.ID, store.CardLost, "test"); err != nil {
				t.Fatal(err)
			}
			cc := smCard(t, c.PAN.Digits())
			r := w.Request(iso93.MTIFinancialRequest, c, 1500)
			d := arqc(t, cc, 1500, "")
			i := strings.Index(hex.EncodeToString(d), "9f2608") / 2
			d[i+3] ^= 0x01
			r.ICCData = d
			resp := authorize(t, w.World, r)
			wantCode(t, resp, iso93.ActionLostCard)
			if s := scripts(t, resp); len(s) != 0 {
				t.Fatalf("decline of an unverified ARQC carries scripts %v", s)
			}
		})
		t.Run("no_secure_messaging", func(t *testing.T) {
			w.Switch.Chip.Scripts = nil
			c := w.NewCard(t, store.KindCredit, 100000, 0)
			if err := w.Issuer.SetStatus(context.Background(), c.ID, store.CardStolen, "test"); err != nil {
				t.Fatal(err)
			}
			cc := smCard(t, c.PAN.Digits())
			r := w.Request(iso93.MTIFinancialRequest, c, 1500)
			r.ICCData = arqc(t, cc, 1500, "")
			resp := authorize(t, w.World, r)
			wantCode(t, resp, iso93.ActionStolenCard)
			if s := scripts(t, resp); len(s) != 0 {
				t.Fatalf("switch without Scripts sent %v", s)
			}
		})
	})
}
