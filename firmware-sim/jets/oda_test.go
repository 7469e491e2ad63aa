package jets_test

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// bureau is one card bureau for the package's tests: its key generation
// is slow.
var bureau = sync.OnceValues(func() (*jets.Bureau, error) { return jets.NewBureau(nil) })

// chipTerminal is a terminal whose bundle carries issuer test keys, so
// that its chip reads run the EMV kernel.
func chipTerminal(t *testing.T) *device.Terminal {
	t.Helper()
	k := testKeys(t)
	k.Issuer = &device.IssuerTestKeys{IMKAC: bytes.Repeat([]byte{0x4B}, 16)}
	term, err := device.New(k, device.Options{StatePath: filepath.Join(t.TempDir(), "T0000042.state")})
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// TestOfflineChipApproval: with a card bureau and a floor limit, a chip
// sale at or under the limit is authenticated offline (DDA), approved by
// the card's TC and reported in a 1220 advice; above it the terminal
// sends a 1200 with an ARQC and TVR "floor limit exceeded"; without a
// bureau it never approves offline.
func TestOfflineChipApproval(t *testing.T) {
	b, err := bureau()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		bureau  *jets.Bureau
		amount  uint64
		offline bool
	}{
		{"under_floor_limit_offline", b, 1500, true},
		{"at_floor_limit_offline", b, 3000, true},
		{"above_floor_limit_online", b, 3001, false},
		{"no_bureau_online", nil, 1500, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, jets.Config{Terminal: chipTerminal(t), FloorLimit: 3000, Bureau: tt.bureau, OnResult: func(rep jets.Report) {
				if rep.Err != nil {
					t.Logf("terminal error: %v", rep.Err)
				}
			}}, iso93.ActionApproved)
			res := sale(t, r.gw, "S-1", tt.amount)
			r.gw.mu.Lock()
			advs, reqs := r.gw.advices, r.gw.reqs
			r.gw.mu.Unlock()
			if !tt.offline {
				if len(advs) != 0 || len(reqs) != 1 {
					t.Fatalf("%d 1220s and %d 1200s, want an online 1200 only", len(advs), len(reqs))
				}
				chip, err := de55.ParseRequest(reqs[0].ICCData)
				if err != nil {
					t.Fatalf("1200 DE 55: %v", err)
				}
				if chip.CID().Type() != emv.ARQC {
					t.Fatalf("1200 cryptogram type %v, want ARQC", chip.CID().Type())
				}
				if tvr := chip.TVR(); tt.bureau != nil && !tvr.Has(emv.TVRFloorLimitExceeded) {
					t.Fatalf("TVR %v lacks floor limit exceeded", tvr.Flags())
				}
				return
			}
			wantResult(t, "offline sale", res, tlink.OutcomeApproved, iso93.ActionApproved)
			if len(reqs) != 0 || len(advs) != 1 {
				t.Fatalf("%d 1200s and %d 1220s, want one 1220 advice", len(reqs), len(advs))
			}
			a := advs[0]
			if a.FunctionCode != iso93.FunctionPreviousApproval || a.ReasonCode != jets.ReasonICCProcessed || a.original != "" ||
				a.ApprovalCode != res.ApprovalCode || a.ApprovalCode[:2] != "Y1" || a.STAN != res.STAN ||
				a.Amount != int64(tt.amount) || len(a.CardData) == 0 || len(a.PINBlock) != 0 {
				t.Fatalf("1220 function %s reason %s DE 56 %q approval %q (result %q) STAN %s (result %s) amount %d PIN block %d bytes",
					a.FunctionCode, a.ReasonCode, a.original, a.ApprovalCode, res.ApprovalCode, a.STAN, res.STAN, a.Amount, len(a.PINBlock))
			}
			chip, err := de55.ParseRequest(a.ICCData)
			if err != nil {
				t.Fatalf("1220 DE 55: %v", err)
			}
			if chip.CID().Type() != emv.TC {
				t.Fatalf("1220 cryptogram type %v, want TC", chip.CID().Type())
			}
			if tvr := chip.TVR(); tvr != (emv.TVR{}) {
				t.Fatalf("TVR of an offline approval: %v, want no bit set", tvr.Flags())
			}
			if caps, _ := chip.Value(0x9F33); len(caps) != 3 || caps[2] != 0xC0 {
				t.Fatalf("terminal capabilities %X: want SDA and DDA in byte 3", caps)
			}
		})
	}
}

// TestODAFailureGoesOnline: when the terminal's CA public key does not
// recover the card's issuer certificate, DDA fails and a sale under the
// floor limit goes online with an ARQC, the TVR saying "DDA failed".
func TestODAFailureGoesOnline(t *testing.T) {
	b, err := jets.NewBureau(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, jets.Config{Terminal: chipTerminal(t), FloorLimit: 3000, Bureau: b}, iso93.ActionApproved)
	first := sale(t, r.gw, "S-1", 1000) // personalises the card under the first CA key
	wantResult(t, "first sale", first, tlink.OutcomeApproved, iso93.ActionApproved)
	if err := b.ReplaceCAKeys(); err != nil {
		t.Fatal(err)
	}
	sale(t, r.gw, "S-2", 1000) // the fake host sends no ARPC: the outcome is the card's, not checked here
	r.gw.mu.Lock()
	advs, reqs := r.gw.advices, r.gw.reqs
	r.gw.mu.Unlock()
	if len(advs) != 1 || len(reqs) != 1 {
		t.Fatalf("%d 1220s and %d 1200s, want the first sale's advice and the second's 1200", len(advs), len(reqs))
	}
	chip, err := de55.ParseRequest(reqs[0].ICCData)
	if err != nil {
		t.Fatalf("1200 DE 55: %v", err)
	}
	if chip.CID().Type() != emv.ARQC {
		t.Fatalf("cryptogram type %v, want ARQC", chip.CID().Type())
	}
	if tvr := chip.TVR(); !tvr.Has(emv.TVRDDAFailed) || tvr.Has(emv.TVRFloorLimitExceeded) {
		t.Fatalf("TVR %v: want DDA failed, not floor limit exceeded", tvr.Flags())
	}
}
