package jets_test

import (
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// nextReversal returns the next 1420 the fake gateway saw.
func nextReversal(t *testing.T, g *gateway) iso93.Reversal {
	t.Helper()
	select {
	case rev := <-g.reversed:
		return rev
	case <-time.After(10 * time.Second):
		t.Fatal("no 1420 sent")
	}
	return iso93.Reversal{}
}

func noReversal(t *testing.T, g *gateway) {
	t.Helper()
	select {
	case rev := <-g.reversed:
		t.Fatalf("unexpected 1420 STAN %s", rev.STAN)
	default:
	}
}

func wantResult(t *testing.T, what string, r tlink.TxnResult, o tlink.Outcome, action iso93.ActionCode) {
	t.Helper()
	if r.Outcome != o || r.ActionCode != string(action) {
		t.Fatalf("%s: outcome %s action %s, want %s %s", what, r.Outcome, r.ActionCode, o, action)
	}
}

func wantOriginal(t *testing.T, de56, mti, stan string) {
	t.Helper()
	od, err := iso93.ParseOriginalData(de56)
	if err != nil || od.MTI != mti || od.STAN != stan {
		t.Fatalf("DE 56 %+v (%v), want MTI %s STAN %s", od, err, mti, stan)
	}
}

func yen(ref string, amount uint64) tlink.TxnCommand {
	return tlink.TxnCommand{Ref: ref, Amount: amount, Currency: "392"}
}

func TestRefundSendsRefund1200(t *testing.T) {
	r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir())}, iso93.ActionApproved)
	res := command(t, r.gw, tlink.KindRefund, tlink.TxnCommand{Ref: "R-1", Amount: 700, Currency: "392", OrigRef: "S-0"})
	wantResult(t, "refund", res, tlink.OutcomeApproved, iso93.ActionApproved)
	reqs := r.gw.requests()
	if len(reqs) != 1 || reqs[0].ProcessingCode != iso93.ProcessingRefund || reqs[0].Amount != 700 || reqs[0].STAN != res.STAN {
		t.Fatalf("requests %d, want one 1200 refund of 700 with the result's STAN", len(reqs))
	}
}

func TestPreAuthSends1100(t *testing.T) {
	r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir())}, iso93.ActionApproved)
	res := command(t, r.gw, tlink.KindPreAuth, yen("P-1", 5000))
	wantResult(t, "pre-auth", res, tlink.OutcomeApproved, iso93.ActionApproved)
	if res.ApprovalCode != "PA0001" {
		t.Fatalf("approval code %q", res.ApprovalCode)
	}
	r.gw.mu.Lock()
	auths := r.gw.auths
	r.gw.mu.Unlock()
	if len(auths) != 1 || auths[0].FunctionCode != iso93.FunctionOriginalAuthorization || auths[0].Amount != 5000 || len(auths[0].CardData) == 0 {
		t.Fatalf("1100s %d, want one of 5000 with function 100 and a card block", len(auths))
	}
	if len(r.gw.requests()) != 0 {
		t.Fatal("a pre-auth sent a 1200")
	}
}

func TestVoid(t *testing.T) {
	tests := []struct {
		name    string
		kind    tlink.Kind
		origMTI string
	}{
		{"of_sale", tlink.KindSale, iso93.MTIFinancialRequest},
		{"of_refund", tlink.KindRefund, iso93.MTIFinancialRequest},
		{"of_pre_auth", tlink.KindPreAuth, iso93.MTIAuthorizationRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir())}, iso93.ActionApproved)
			orig := command(t, r.gw, tt.kind, yen("O-1", 1500))
			wantResult(t, "original", orig, tlink.OutcomeApproved, iso93.ActionApproved)
			v := command(t, r.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-1", OrigRef: "O-1"})
			wantResult(t, "void", v, tlink.OutcomeApproved, iso93.ActionReversalAccepted)
			rev := nextReversal(t, r.gw)
			wantOriginal(t, rev.OriginalData, tt.origMTI, orig.STAN)
			if rev.ReasonCode != iso93.ReasonCustomerCancel || rev.Amount != 1500 || rev.STAN != v.STAN || v.Amount != 1500 {
				t.Fatalf("1420 reason %s amount %d STAN %s; result STAN %s amount %d", rev.ReasonCode, rev.Amount, rev.STAN, v.STAN, v.Amount)
			}
			// Voided once: a second void is refused at the terminal.
			again := command(t, r.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-2", OrigRef: "O-1"})
			wantResult(t, "second void", again, tlink.OutcomeDeclined, iso93.ActionOriginalNotFound)
			noReversal(t, r.gw)
		})
	}
}

func TestVoidRefusals(t *testing.T) {
	r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir())}, iso93.ActionApproved)
	wantResult(t, "sale", sale(t, r.gw, "S-1", 900), tlink.OutcomeApproved, iso93.ActionApproved)
	r.gw.mu.Lock()
	r.gw.action = iso93.ActionInsufficientFunds
	r.gw.mu.Unlock()
	wantResult(t, "declined sale", sale(t, r.gw, "S-2", 900), tlink.OutcomeDeclined, iso93.ActionInsufficientFunds)
	tests := []struct {
		name   string
		cmd    tlink.TxnCommand
		action iso93.ActionCode
	}{
		{"unknown_ref", tlink.TxnCommand{Ref: "V-1", OrigRef: "S-9"}, iso93.ActionOriginalNotFound},
		{"declined_original", tlink.TxnCommand{Ref: "V-2", OrigRef: "S-2"}, iso93.ActionOriginalNotFound},
		{"partial_amount", tlink.TxnCommand{Ref: "V-3", OrigRef: "S-1", Amount: 100, Currency: "392"}, iso93.ActionInvalidAmount},
		{"other_currency", tlink.TxnCommand{Ref: "V-4", OrigRef: "S-1", Amount: 900, Currency: "840"}, iso93.ActionInvalidAmount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, tt.name, command(t, r.gw, tlink.KindVoid, tt.cmd), tlink.OutcomeDeclined, tt.action)
			noReversal(t, r.gw)
		})
	}
}

func TestCapture(t *testing.T) {
	tests := []struct {
		name    string
		capture tlink.TxnCommand
		o       tlink.Outcome
		action  iso93.ActionCode
		sent    bool
	}{
		{"full", tlink.TxnCommand{Ref: "C-1", OrigRef: "P-1", Amount: 5000, Currency: "392"}, tlink.OutcomeApproved, iso93.ActionApproved, true},
		{"less", tlink.TxnCommand{Ref: "C-1", OrigRef: "P-1", Amount: 3200, Currency: "392"}, tlink.OutcomeApproved, iso93.ActionApproved, true},
		{"more_than_authorized", tlink.TxnCommand{Ref: "C-1", OrigRef: "P-1", Amount: 5001, Currency: "392"}, tlink.OutcomeDeclined, iso93.ActionInvalidAmount, false},
		{"unknown_pre_auth", tlink.TxnCommand{Ref: "C-1", OrigRef: "P-9", Amount: 100, Currency: "392"}, tlink.OutcomeDeclined, iso93.ActionOriginalNotFound, false},
		{"other_card", tlink.TxnCommand{Ref: "C-1@mc-ok", OrigRef: "P-1", Amount: 100, Currency: "392"}, tlink.OutcomeDeclined, iso93.ActionOriginalNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir())}, iso93.ActionApproved)
			pa := command(t, r.gw, tlink.KindPreAuth, yen("P-1", 5000))
			wantResult(t, "pre-auth", pa, tlink.OutcomeApproved, iso93.ActionApproved)
			c := command(t, r.gw, tlink.KindCapture, tt.capture)
			wantResult(t, "capture", c, tt.o, tt.action)
			r.gw.mu.Lock()
			advs := r.gw.advices
			r.gw.mu.Unlock()
			if !tt.sent {
				if len(advs) != 0 {
					t.Fatalf("%d 1220s sent for a refused capture", len(advs))
				}
				return
			}
			if len(advs) != 1 {
				t.Fatalf("%d 1220s, want 1", len(advs))
			}
			a := advs[0]
			wantOriginal(t, a.original, iso93.MTIAuthorizationRequest, pa.STAN)
			if a.Amount != int64(tt.capture.Amount) || a.ApprovalCode != "PA0001" || a.FunctionCode != iso93.FunctionPreviousApproval ||
				a.ReasonCode != iso93.ReasonCompletion || len(a.CardData) == 0 || a.STAN != c.STAN || len(a.PINBlock) != 0 {
				t.Fatalf("1220 amount %d approval %q function %s reason %s STAN %s (result %s) PIN block %d bytes",
					a.Amount, a.ApprovalCode, a.FunctionCode, a.ReasonCode, a.STAN, c.STAN, len(a.PINBlock))
			}
			if c.ApprovalCode != "PA0001" {
				t.Fatalf("capture result approval code %q, want the pre-auth's", c.ApprovalCode)
			}
			// Captured once: a second capture is refused at the terminal.
			again := command(t, r.gw, tlink.KindCapture, tlink.TxnCommand{Ref: "C-2", OrigRef: "P-1", Amount: 10, Currency: "392"})
			wantResult(t, "second capture", again, tlink.OutcomeDeclined, iso93.ActionDuplicateTransmission)
			// The capture can be voided: the 1420 names the 1220.
			v := command(t, r.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-1", OrigRef: tt.capture.Ref})
			wantResult(t, "void of capture", v, tlink.OutcomeApproved, iso93.ActionReversalAccepted)
			wantOriginal(t, nextReversal(t, r.gw).OriginalData, iso93.MTIAdvice, c.STAN)
		})
	}
}

func TestJournalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := jets.Config{Terminal: newTerminal(t, dir), Link: linkCfg}
	fw, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := attach(t, fw, iso93.ActionApproved)
	pa := command(t, r.gw, tlink.KindPreAuth, yen("P-1", 4000))
	wantResult(t, "pre-auth", pa, tlink.OutcomeApproved, iso93.ActionApproved)
	wantResult(t, "sale", sale(t, r.gw, "S-1", 300), tlink.OutcomeApproved, iso93.ActionApproved)
	r.shutdown()

	cfg.Terminal = newTerminal(t, dir)
	fw2, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r2 := attach(t, fw2, iso93.ActionApproved)
	wantResult(t, "capture after restart", command(t, r2.gw, tlink.KindCapture, tlink.TxnCommand{Ref: "C-1", OrigRef: "P-1", Amount: 4000, Currency: "392"}),
		tlink.OutcomeApproved, iso93.ActionApproved)
	wantResult(t, "void after restart", command(t, r2.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-1", OrigRef: "S-1"}),
		tlink.OutcomeApproved, iso93.ActionReversalAccepted)
}

func TestUnansweredVoidIsSentAgain(t *testing.T) {
	dir := t.TempDir()
	cfg := jets.Config{Terminal: newTerminal(t, dir), Link: linkCfg, HostTimeout: 300 * time.Millisecond}
	fw, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := attach(t, fw, iso93.ActionApproved)
	s := sale(t, r.gw, "S-1", 800)
	wantResult(t, "sale", s, tlink.OutcomeApproved, iso93.ActionApproved)
	r.gw.mu.Lock()
	r.gw.dropRev = true
	r.gw.mu.Unlock()
	v := command(t, r.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-1", OrigRef: "S-1"})
	if v.Outcome != tlink.OutcomeFailed {
		t.Fatalf("unanswered void: outcome %s", v.Outcome)
	}
	first := nextReversal(t, r.gw)
	if !fw.Unreversed() {
		t.Fatal("an unanswered void is not kept to be sent again")
	}
	r.shutdown()

	cfg.Terminal = newTerminal(t, dir)
	fw2, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r2 := attach(t, fw2, iso93.ActionApproved)
	again := nextReversal(t, r2.gw)
	if again.IdempotencyKey != first.IdempotencyKey || again.OriginalData != first.OriginalData {
		t.Fatalf("repeated void differs: key %q vs %q", again.IdempotencyKey, first.IdempotencyKey)
	}
	poll.Until(t, waitLimit, "the repeated void to be answered", func() bool { return !fw2.Unreversed() })
}
