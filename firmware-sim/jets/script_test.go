package jets_test

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// The issuer keys of the script tests: the bundle's issuer test keys and
// what the fake host computes with.
var (
	scriptIMKAC  = bytes.Repeat([]byte{0x4B}, 16)
	scriptIMKSMI = []byte{0x1A, 0x2B, 0x3C, 0x4D, 0x5E, 0x6F, 0x70, 0x81, 0x92, 0xA3, 0xB4, 0xC5, 0xD6, 0xE7, 0xF8, 0x09}
	scriptIMKSMC = []byte{0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xA9, 0xBA, 0xCB, 0xDC, 0xED, 0xFE, 0x0F, 0x10}
)

// lockedBuffer is an io.Writer safe for the firmware's logger and the
// test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// smTerminal is a terminal whose bundle carries the IMK-AC and, with sm,
// the IMK-SMI and IMK-SMC.
func smTerminal(t *testing.T, sm bool) *device.Terminal {
	t.Helper()
	k := testKeys(t)
	k.Issuer = &keybundle.IssuerTestKeys{IMKAC: scriptIMKAC}
	if sm {
		k.Issuer.IMKSMI, k.Issuer.IMKSMC = scriptIMKSMI, scriptIMKSMC
	}
	term, err := device.New(k, device.Options{StatePath: filepath.Join(t.TempDir(), "T0000042.state")})
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// issuerAnswer is the fake issuer: for the 1200 of deck card c it
// returns the response DE 55 with the ARPC (method 1, ARC arc, under the
// card's MK-AC) and one script template of tag tmpl holding APPLICATION
// BLOCK, its MAC made in pure Go (cryptogram.ScriptMAC) under the card's
// SMI session key for the request's ARQC; tamper flips one MAC bit.
func issuerAnswer(t *testing.T, c deck.Card, arc [2]byte, tmpl tlv.Tag, tamper bool) func(iso93.FinancialRequest) []byte {
	return func(req iso93.FinancialRequest) []byte {
		chip, err := de55.ParseRequest(req.ICCData)
		if err != nil {
			t.Errorf("1200 DE 55: %v", err)
			return nil
		}
		mk, err := cryptogram.DeriveICCMasterKeyA(scriptIMKAC, c.PAN, c.PSN)
		if err != nil {
			t.Error(err)
			return nil
		}
		arpc, err := cryptogram.ARPC1(mk, chip.Cryptogram(), arc)
		if err != nil {
			t.Error(err)
			return nil
		}
		smi, err := cryptogram.DeriveICCMasterKeyA(scriptIMKSMI, c.PAN, c.PSN)
		if err != nil {
			t.Error(err)
			return nil
		}
		sk, err := cryptogram.DeriveSessionKey(smi, cryptogram.SMSessionR(chip.Cryptogram()))
		if err != nil {
			t.Error(err)
			return nil
		}
		h := [4]byte{0x84, card.InsApplicationBlock, 0, 0}
		mac, err := cryptogram.ScriptMAC(sk, h, chip.ATC(), chip.Cryptogram(), nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		if tamper {
			mac[7] ^= 0x01
		}
		cmd := append(append(h[:], cryptogram.ScriptMACLen), mac[:]...)
		b, err := de55.BuildResponse(de55.Response{
			IssuerAuthData: de55.IssuerAuthDataMethod1(arpc, arc),
			Scripts: []tlv.TLV{{Tag: tmpl, Children: []tlv.TLV{
				tlv.New(0x9F18, []byte{0, 0, 0, 1}),
				tlv.New(tags.IssuerScriptCommand, cmd),
			}}},
		})
		if err != nil {
			t.Error(err)
		}
		return b
	}
}

// TestIssuerScriptBlocksCard: a lost card's chip sale is declined 208
// with an APPLICATION BLOCK script (template 72 after the second
// GENERATE AC, or 71 before it); the card runs it (9000) and is blocked,
// so its next sale at that terminal is declined by the card (AAC,
// ErrCardDeclined, action 100) and nothing is sent. A tampered MAC (6988),
// a bundle without secure messaging keys (6985), or a contactless read
// (the card has left the field) leave the card unblocked: its next sale
// goes online.
func TestIssuerScriptBlocksCard(t *testing.T) {
	visa, err := deck.Lookup("visa-ok")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sm      bool
		tmpl    tlv.Tag
		tamper  bool
		entry   device.EntryMode
		blocked bool
		sws     string // status words logged; "" when no script runs
		// cda: a terminal with a card bureau, CDA and a floor limit
		// between the two sales' amounts, so that the second sale asks
		// the card for a TC with CDA.
		cda bool
	}{
		{"template_72_blocks", true, tags.IssuerScript2, false, device.EntryChip, true, "9000", false},
		{"template_71_blocks", true, tags.IssuerScript1, false, device.EntryChip, true, "9000", false},
		{"blocked_declines_cda_tc_request", true, tags.IssuerScript2, false, device.EntryChip, true, "9000", true},
		{"tampered_mac_refused", true, tags.IssuerScript2, true, device.EntryChip, false, "6988", false},
		{"no_sm_keys_refused", false, tags.IssuerScript2, false, device.EntryChip, false, "6985", false},
		{"contactless_not_run", true, tags.IssuerScript2, false, device.EntryContactless, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			var (
				mu      sync.Mutex
				reports []jets.Report
			)
			var (
				b     *jets.Bureau
				floor int64
			)
			amount2 := uint64(1500)
			if tt.cda {
				var err error
				if b, err = bureau(); err != nil {
					t.Fatal(err)
				}
				floor, amount2 = 1000, 500
			}
			r := start(t, jets.Config{
				Bureau:     b,
				CDA:        tt.cda,
				FloorLimit: floor,
				Terminal:   smTerminal(t, tt.sm),
				Picker:     jets.ByRef(jets.Cycle(device.Read{Card: visa, Entry: tt.entry})),
				Logger:     slog.New(slog.NewTextHandler(logs, nil)),
				OnResult: func(rep jets.Report) {
					mu.Lock()
					reports = append(reports, rep)
					mu.Unlock()
				},
			}, iso93.ActionLostCard)
			r.gw.mu.Lock()
			r.gw.icc = issuerAnswer(t, visa, [2]byte{'4', '1'}, tt.tmpl, tt.tamper)
			r.gw.mu.Unlock()

			wantResult(t, "lost card's sale", sale(t, r.gw, "S-1", 1500), tlink.OutcomeDeclined, iso93.ActionLostCard)
			l := logs.String()
			switch {
			case tt.sws == "" && strings.Contains(l, "issuer script run"):
				t.Fatalf("a script ran:\n%s", l)
			case tt.sws == "" && !strings.Contains(l, "issuer scripts not run"):
				t.Fatalf("the contactless read did not log the script it left:\n%s", l)
			case tt.sws != "" && !strings.Contains(l, "status_words="+tt.sws):
				t.Fatalf("no script run with status words %s logged:\n%s", tt.sws, l)
			case tt.sws != "" && !strings.Contains(l, "template="+tt.tmpl.String()):
				t.Fatalf("the script log does not name template %s:\n%s", tt.tmpl, l)
			}
			if strings.Contains(l, visa.PAN) {
				t.Fatal("the log carries the clear PAN")
			}

			// The answer to sale 2 carries no script: what it shows is
			// the card's state after sale 1.
			r.gw.mu.Lock()
			r.gw.icc, r.gw.action = nil, iso93.ActionApproved
			r.gw.mu.Unlock()
			res := sale(t, r.gw, "S-2", amount2)
			reqs := r.gw.requests()
			mu.Lock()
			last := reports[len(reports)-1]
			mu.Unlock()
			if tt.blocked {
				wantResult(t, "blocked card's sale", res, tlink.OutcomeDeclined, iso93.ActionDoNotHonour)
				r.gw.mu.Lock()
				advs := len(r.gw.advices)
				r.gw.mu.Unlock()
				if len(reqs) != 1 || advs != 0 {
					t.Fatalf("%d 1200s and %d 1220s, want only the first 1200: a blocked card's sale is declined at the terminal", len(reqs), advs)
				}
				if !errors.Is(last.Err, jets.ErrCardDeclined) {
					t.Fatalf("report error %v, want ErrCardDeclined", last.Err)
				}
				return
			}
			if len(reqs) != 2 {
				t.Fatalf("%d 1200s, want 2: the unblocked card's sale goes online", len(reqs))
			}
			chip, err := de55.ParseRequest(reqs[1].ICCData)
			if err != nil {
				t.Fatal(err)
			}
			if chip.CID().Type() != emv.ARQC {
				t.Fatalf("second sale's cryptogram type %v, want ARQC", chip.CID().Type())
			}
			if errors.Is(last.Err, jets.ErrCardDeclined) {
				t.Fatal("an unblocked card declined offline")
			}
		})
	}
}
