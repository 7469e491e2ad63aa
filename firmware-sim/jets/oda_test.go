package jets_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/ptytest"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// bureau is one card bureau for the package's tests: its key generation
// is slow.
var bureau = sync.OnceValues(func() (*jets.Bureau, error) { return jets.NewBureau(nil) })

// chipTerminal is a terminal whose bundle carries issuer test keys, so
// that its chip reads run the EMV kernel.
func chipTerminal(t testing.TB) *device.Terminal {
	t.Helper()
	k := testKeys(t)
	k.Issuer = &keybundle.IssuerTestKeys{IMKAC: bytes.Repeat([]byte{0x4B}, 16)}
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
		cda     bool
		amount  uint64
		offline bool
	}{
		{"under_floor_limit_offline", b, false, 1500, true},
		{"at_floor_limit_offline", b, false, 3000, true},
		{"under_floor_limit_offline_cda", b, true, 1500, true},
		{"above_floor_limit_online", b, false, 3001, false},
		{"above_floor_limit_online_cda", b, true, 3001, false},
		{"no_bureau_online", nil, false, 1500, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, jets.Config{Terminal: chipTerminal(t), FloorLimit: 3000, Bureau: tt.bureau, CDA: tt.cda, OnResult: func(rep jets.Report) {
				if rep.Err != nil {
					t.Logf("terminal error: %v", rep.Err)
				}
			}}, iso93.ActionApproved)
			res := sale(t, r.gw, "S-1", tt.amount)
			if tt.offline {
				// The advice follows the txn-result (advice.go).
				poll.Until(t, waitLimit, "the advice", func() bool { return r.fw.PendingAdvices() == 0 })
			}
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
			if a.FunctionCode != iso93.FunctionPreviousApproval || a.ReasonCode != iso93.ReasonICCProcessed || a.original != "" ||
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
			wantCaps := byte(0xC0) // SDA, DDA
			if tt.cda {
				wantCaps = 0xC8 // and CDA
			}
			if caps, _ := chip.Value(0x9F33); len(caps) != 3 || caps[2] != wantCaps {
				t.Fatalf("terminal capabilities %X: want %02X in byte 3", caps, wantCaps)
			}
			if ac := chip.Cryptogram(); ac == ([8]byte{}) {
				t.Fatal("DE 55 carries no application cryptogram")
			}
		})
	}
}

// TestODAFailureGoesOnline: when the terminal's CA public key does not
// recover the card's issuer certificate, ODA fails and a sale under the
// floor limit goes online with an ARQC, the TVR saying "DDA failed" (or
// "CDA failed" at a CDA terminal, which shows CDA was the method).
func TestODAFailureGoesOnline(t *testing.T) {
	tests := []struct {
		name   string
		cda    bool
		failed emv.Bit
	}{
		{"dda", false, emv.TVRDDAFailed},
		{"cda", true, emv.TVRCDAFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := jets.NewBureau(nil)
			if err != nil {
				t.Fatal(err)
			}
			r := start(t, jets.Config{Terminal: chipTerminal(t), FloorLimit: 3000, Bureau: b, CDA: tt.cda}, iso93.ActionApproved)
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
			if tvr := chip.TVR(); !tvr.Has(tt.failed) || tvr.Has(emv.TVRFloorLimitExceeded) {
				t.Fatalf("TVR %v: want the method's failure bit, not floor limit exceeded", tvr.Flags())
			}
		})
	}
}

// BenchmarkOfflineChipSaleOverPTY measures one offline chip approval as
// the gateway sees it over a real pty: command, DDA and TC at the
// terminal, 1220, 1230, txn-result, then the signature (the sale took no
// PIN).
func BenchmarkOfflineChipSaleOverPTY(b *testing.B) {
	bu, err := bureau()
	if err != nil {
		b.Fatal(err)
	}
	k := testKeys(b)
	k.Issuer = &keybundle.IssuerTestKeys{IMKAC: bytes.Repeat([]byte{0x4B}, 16)}
	term, err := device.New(k, device.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fw, err := jets.New(jets.Config{Terminal: term, FloorLimit: 1000, Bureau: bu})
	if err != nil {
		b.Fatal(err)
	}
	master, slave := ptytest.Open(b)
	port, err := transport.Open(transport.DeviceConfig{Medium: transport.Serial, Path: slave})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { fw.Serve(ctx, master) })
	ep := tlink.New(port, tlink.Config{})
	wg.Go(func() { ep.Run(ctx) })
	defer func() { cancel(); ep.Close(); wg.Wait() }()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		c, _ := (&tlink.TxnCommand{Ref: fmt.Sprint("B", i), Amount: 100, Currency: "392"}).MarshalBinary()
		if err := ep.Send(ctx, tlink.KindSale, c); err != nil {
			b.Fatal(err)
		}
		var got []byte
		for result, signed := false, false; !result || !signed; {
			m, err := ep.Receive(ctx)
			if err != nil {
				b.Fatal(err)
			}
			switch m.Kind {
			case tlink.KindFinancialRequest:
				var adv iso93.Advice
				if err := iso93.UnpackInto(m.Payload, &adv); err != nil {
					b.Fatal(err)
				}
				raw, _ := iso93.Pack(adv.Response(iso93.ActionApproved), iso93.MTIAdviceResponse)
				if err := ep.Send(ctx, tlink.KindFinancialResponse, raw); err != nil {
					b.Fatal(err)
				}
			case tlink.KindTxnResult:
				var r tlink.TxnResult
				if err := r.UnmarshalBinary(m.Payload); err != nil || r.Outcome != tlink.OutcomeApproved || r.ApprovalCode[:2] != "Y1" {
					b.Fatalf("txn-result %+v (%v): want an offline approval", r, err)
				}
				result = true
			case tlink.KindSignature:
				var s tlink.Signature
				if err := s.UnmarshalBinary(m.Payload); err != nil {
					b.Fatal(err)
				}
				got = append(got, s.Data...)
				ack := tlink.SignatureAck{Ref: s.Ref, Status: tlink.SignatureOK, NextOffset: uint32(len(got))}
				if len(got) == int(s.Total) {
					ack.Status, signed = tlink.SignatureComplete, true
				}
				p, _ := ack.MarshalBinary()
				if err := ep.Send(ctx, tlink.KindSignatureAck, p); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
