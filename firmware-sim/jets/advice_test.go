package jets_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
)

// chipTerminalAt is chipTerminal with its state file in dir, so that a
// test can restart the terminal on it.
func chipTerminalAt(t *testing.T, dir string) *device.Terminal {
	t.Helper()
	k := testKeys(t)
	k.Issuer = &keybundle.IssuerTestKeys{IMKAC: bytes.Repeat([]byte{0x4B}, 16)}
	term, err := device.New(k, device.Options{StatePath: filepath.Join(dir, "T0000042.state")})
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// adviceConfig is a chip terminal with a card bureau and a floor limit of
// 3000, a short host timeout and short advice retries.
func adviceConfig(t *testing.T, dir string) jets.Config {
	t.Helper()
	b, err := bureau()
	if err != nil {
		t.Fatal(err)
	}
	return jets.Config{Terminal: chipTerminalAt(t, dir), FloorLimit: 3000, Bureau: b, Link: linkCfg,
		HostTimeout: 300 * time.Millisecond, AdviceRetry: 20 * time.Millisecond, AdviceRetryMax: 80 * time.Millisecond}
}

// setAdvice makes the fake gateway answer advices with action ("" its
// action for everything), or not at all.
func (g *gateway) setAdvice(action iso93.ActionCode, drop bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.advAction, g.dropAdv = action, drop
}

func (g *gateway) adviceList() []adviceSeen {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]adviceSeen(nil), g.advices...)
}

func (g *gateway) sentList() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.sent...)
}

// offlineSale runs a sale that must be approved offline.
func offlineSale(t *testing.T, g *gateway, ref string, amount uint64) tlink.TxnResult {
	t.Helper()
	res := sale(t, g, ref, amount)
	wantResult(t, "offline sale "+ref, res, tlink.OutcomeApproved, iso93.ActionApproved)
	if !strings.HasPrefix(res.ApprovalCode, "Y1") {
		t.Fatalf("sale %s: approval code %q, want an offline one (Y1...)", ref, res.ApprovalCode)
	}
	return res
}

// sameAdvice fails unless b repeats a: every data element but the MTI.
func sameAdvice(t *testing.T, a, b adviceSeen) {
	t.Helper()
	if b.IdempotencyKey != a.IdempotencyKey || b.STAN != a.STAN || b.LocalTime != a.LocalTime || b.Amount != a.Amount ||
		b.ApprovalCode != a.ApprovalCode || b.FunctionCode != a.FunctionCode || b.ReasonCode != a.ReasonCode ||
		!bytes.Equal(b.CardData, a.CardData) || !bytes.Equal(b.KSN, a.KSN) || !bytes.Equal(b.ICCData, a.ICCData) || b.Fingerprint != a.Fingerprint {
		t.Fatalf("advice STAN %s sent again with other data: key %q vs %q", a.STAN, b.IdempotencyKey, a.IdempotencyKey)
	}
}

// record is the firmware's non-volatile record as docs/termsim.md
// describes it, read from the terminal's state file.
type record struct {
	Version int `json:"version"`
	Last    struct {
		Ref string `json:"ref"`
		RRN string `json:"rrn"`
	} `json:"last"`
	Journal []struct {
		Ref     string `json:"ref"`
		Request struct {
			STAN string
			MTI  string
			RRN  string
		} `json:"request"`
	} `json:"journal"`
	Advices []struct {
		STAN   string `json:"stan"`
		Ref    string `json:"ref"`
		Advice []byte `json:"advice"`
	} `json:"advices"`
}

func readRecord(t *testing.T, dir string) (record, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "T0000042.state"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Last record `json:"last_txn"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("state file: %v", err)
	}
	return file.Last, raw
}

// TestAdviceQueuedUntilHostTakesIt: offline approvals are reported at
// once; their advices stay queued while the host does not answer or
// answers 907, are sent again on the retry timer (oldest first, the
// second never before the first is taken, every repeat a 1221 with the
// same idempotency key) and leave the queue when answered 000, the RRN
// going into the journal and the last transaction.
func TestAdviceQueuedUntilHostTakesIt(t *testing.T) {
	dir := t.TempDir()
	r := start(t, adviceConfig(t, dir), iso93.ActionApproved)
	r.gw.setAdvice("", true)
	s1 := offlineSale(t, r.gw, "S-1", 1000)
	s2 := offlineSale(t, r.gw, "S-2", 1200)
	if n := r.fw.PendingAdvices(); n != 2 {
		t.Fatalf("%d advices pending with the host silent, want 2", n)
	}
	poll.Until(t, waitLimit, "three unanswered sends", func() bool { return len(r.gw.adviceList()) >= 3 })

	// The gateway is up, its uplink is not: 907.
	r.gw.setAdvice(iso93.ActionIssuerInoperative, false)
	poll.Until(t, waitLimit, "two sends answered 907", func() bool {
		n := 0
		for _, a := range r.gw.adviceList() {
			if a.answered == iso93.ActionIssuerInoperative {
				n++
			}
		}
		return n >= 2
	})
	// The second 907 answered a send that followed the first 907.
	if n := r.fw.PendingAdvices(); n != 2 {
		t.Fatalf("%d advices pending after 907 answers, want 2", n)
	}

	r.gw.setAdvice(iso93.ActionApproved, false)
	poll.Until(t, waitLimit, "the queue to empty", func() bool { return r.fw.PendingAdvices() == 0 })
	advs := r.gw.adviceList()
	first := map[string]adviceSeen{}
	last1, first2 := -1, -1
	for i, a := range advs {
		switch a.STAN {
		case s1.STAN:
			last1 = i
		case s2.STAN:
			if first2 < 0 {
				first2 = i
			}
		default:
			t.Fatalf("advice with STAN %s, sales were %s and %s", a.STAN, s1.STAN, s2.STAN)
		}
		f, seen := first[a.STAN]
		if !seen {
			first[a.STAN] = a
			if a.mti != iso93.MTIAdvice {
				t.Fatalf("first send of STAN %s is a %s, want 1220", a.STAN, a.mti)
			}
			continue
		}
		if a.mti != iso93.MTIAdviceRepeat {
			t.Fatalf("send %d of STAN %s is a %s, want 1221", i, a.STAN, a.mti)
		}
		sameAdvice(t, f, a)
	}
	if first2 < 0 || first2 < last1 || advs[last1].answered != iso93.ActionApproved {
		t.Fatalf("sends of S-1 up to %d (last answered %q), first of S-2 at %d: S-2 must follow S-1's acceptance", last1, advs[last1].answered, first2)
	}
	if n := len(advs) - first2; n != 1 {
		t.Fatalf("S-2's advice sent %d times, want once (the host was answering)", n)
	}

	var lt tlink.LastTxn
	request(t, r.gw.ep, tlink.KindLastTxnQuery, tlink.RefOnly{Ref: "q"}, &lt)
	if lt.Txn == nil || lt.Txn.Ref != "S-2" || lt.Txn.RRN != "RRN000"+s2.STAN || lt.Txn.ApprovalCode != s2.ApprovalCode {
		t.Fatalf("last-txn %+v: want S-2 with the 1230's RRN", lt.Txn)
	}
	rec, _ := readRecord(t, dir)
	rrns := map[string]string{}
	for _, e := range rec.Journal {
		rrns[e.Ref] = e.Request.RRN
	}
	if rec.Version != 2 || len(rec.Advices) != 0 || rrns["S-1"] != "RRN000"+s1.STAN || rrns["S-2"] != "RRN000"+s2.STAN {
		t.Fatalf("record version %d, %d advices, journal RRNs %v", rec.Version, len(rec.Advices), rrns)
	}
}

// TestAdviceSurvivesRestart: advices never answered are in the state
// file (no clear card data), a new firmware on it starts with them and
// sends them, in order, as 1221s with the same idempotency keys.
func TestAdviceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := adviceConfig(t, dir)
	fw, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := attach(t, fw, iso93.ActionApproved)
	r.gw.setAdvice("", true)
	s1 := offlineSale(t, r.gw, "S-1", 1000)
	s2 := offlineSale(t, r.gw, "S-2", 1100)
	poll.Until(t, waitLimit, "a send of the first advice", func() bool { return len(r.gw.adviceList()) >= 1 })
	r.shutdown()
	before := r.gw.adviceList()[0]

	rec, file := readRecord(t, dir)
	if len(rec.Advices) != 2 || rec.Advices[0].STAN != s1.STAN || rec.Advices[1].STAN != s2.STAN || rec.Advices[0].Ref != "S-1" {
		t.Fatalf("state file holds %d advices %+v, want S-1's then S-2's", len(rec.Advices), rec.Advices)
	}
	for _, c := range deck.Cards() {
		for _, a := range rec.Advices {
			if bytes.Contains(a.Advice, []byte(c.PAN)) {
				t.Fatalf("a queued advice carries the clear PAN of deck card %s", c.Name)
			}
		}
		if bytes.Contains(file, []byte(c.PAN)) {
			t.Fatalf("the state file carries the clear PAN of deck card %s", c.Name)
		}
	}

	// Power cycle: a new Terminal and firmware on the same state file.
	cfg.Terminal = chipTerminalAt(t, dir)
	fw2, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := fw2.PendingAdvices(); n != 2 {
		t.Fatalf("%d advices pending after the restart, want 2", n)
	}
	r2 := attach(t, fw2, iso93.ActionApproved)
	poll.Until(t, waitLimit, "the restored advices to be taken", func() bool { return fw2.PendingAdvices() == 0 })
	advs := r2.gw.adviceList()
	if len(advs) != 2 || advs[0].STAN != s1.STAN || advs[1].STAN != s2.STAN {
		t.Fatalf("after the restart the host got %d advices, want S-1's then S-2's", len(advs))
	}
	for _, a := range advs {
		if a.mti != iso93.MTIAdviceRepeat {
			t.Fatalf("restored advice STAN %s sent as a %s, want 1221 (it may have been sent before)", a.STAN, a.mti)
		}
	}
	sameAdvice(t, before, advs[0])
	var lt tlink.LastTxn
	request(t, r2.gw.ep, tlink.KindLastTxnQuery, tlink.RefOnly{Ref: "q"}, &lt)
	if lt.Txn == nil || lt.Txn.Ref != "S-2" || lt.Txn.Outcome != tlink.OutcomeApproved || lt.Txn.RRN != "RRN000"+s2.STAN {
		t.Fatalf("last-txn after the restart %+v", lt.Txn)
	}
}

// TestRefusedAdviceLeavesQueue: a 1230 refusing the advice ends it (no
// more sends); the approval stays in the journal, so it can be voided.
func TestRefusedAdviceLeavesQueue(t *testing.T) {
	r := start(t, adviceConfig(t, t.TempDir()), iso93.ActionApproved)
	r.gw.setAdvice(iso93.ActionInsufficientFunds, false)
	s1 := offlineSale(t, r.gw, "S-1", 1000)
	poll.Until(t, waitLimit, "the refused advice to leave the queue", func() bool { return r.fw.PendingAdvices() == 0 })
	r.gw.setAdvice("", false)
	v := command(t, r.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-1", OrigRef: "S-1"})
	wantResult(t, "void of the refused offline approval", v, tlink.OutcomeApproved, iso93.ActionReversalAccepted)
	wantOriginal(t, nextReversal(t, r.gw).OriginalData, iso93.MTIAdvice, s1.STAN)
	if advs := r.gw.adviceList(); len(advs) != 1 || advs[0].answered != iso93.ActionInsufficientFunds {
		t.Fatalf("%d advices sent, want the one refused", len(advs))
	}
}

// TestAdvicesGoBeforeTheNextRequest: with the retry timer out of the
// way, a pending advice is sent before a command's own request: a void of
// the approval is refused while its advice is not taken (nothing sent),
// and once the host answers, the next online sale's 1200 follows the
// advice's acceptance.
func TestAdvicesGoBeforeTheNextRequest(t *testing.T) {
	cfg := adviceConfig(t, t.TempDir())
	cfg.AdviceRetry, cfg.AdviceRetryMax = time.Hour, time.Hour
	r := start(t, cfg, iso93.ActionApproved)
	r.gw.setAdvice("", true)
	s1 := offlineSale(t, r.gw, "S-1", 1000)
	poll.Until(t, waitLimit, "the first send", func() bool { return len(r.gw.adviceList()) >= 1 })

	v := command(t, r.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-1", OrigRef: "S-1"})
	wantResult(t, "void while the advice is pending", v, tlink.OutcomeFailed, iso93.ActionIssuerInoperative)
	noReversal(t, r.gw)

	r.gw.setAdvice("", false)
	s2 := sale(t, r.gw, "S-2@visa-ok:magstripe", 1500)
	wantResult(t, "online sale", s2, tlink.OutcomeApproved, iso93.ActionApproved)
	if n := r.fw.PendingAdvices(); n != 0 {
		t.Fatalf("%d advices pending after the online sale, want them sent first", n)
	}
	sent := r.gw.sentList()
	i := len(sent) - 1
	if sent[i] != iso93.MTIFinancialRequest+" "+s2.STAN || sent[i-1] != iso93.MTIAdviceRepeat+" "+s1.STAN {
		t.Fatalf("requests %v: want S-1's 1221 just before S-2's 1200", sent)
	}
	for _, s := range sent {
		if strings.HasPrefix(s, iso93.MTIReversal) {
			t.Fatalf("requests %v: a 1420 was sent", sent)
		}
	}
}

// TestAdviceBeforeSignature: after an offline approval the terminal
// sends the txn-result, then the advice, and the signature only once the
// advice was answered (the gateway links a signature to the request with
// its STAN).
func TestAdviceBeforeSignature(t *testing.T) {
	r := start(t, adviceConfig(t, t.TempDir()), iso93.ActionApproved)
	s1 := offlineSale(t, r.gw, "S-1", 1000)
	poll.Until(t, waitLimit, "the signature", func() bool { return slices.Contains(r.gw.sentList(), "signature "+s1.STAN) })
	sent := r.gw.sentList()
	if len(sent) < 2 || sent[0] != iso93.MTIAdvice+" "+s1.STAN || sent[1] != "signature "+s1.STAN {
		t.Fatalf("sent %v: want the 1220, then the signature", sent)
	}
	if n := r.fw.PendingAdvices(); n != 0 {
		t.Fatalf("%d advices pending once the signature goes", n)
	}
}

// TestFullAdviceQueueGoesOnline: with MaxPendingAdvices advices queued, a
// chip sale under the floor limit asks for an ARQC and goes online.
func TestFullAdviceQueueGoesOnline(t *testing.T) {
	cfg := adviceConfig(t, t.TempDir())
	cfg.MaxPendingAdvices = 1
	r := start(t, cfg, iso93.ActionApproved)
	r.gw.setAdvice("", true)
	offlineSale(t, r.gw, "S-1", 1000)
	s2 := sale(t, r.gw, "S-2", 1000) // the fake host sends no ARPC: the outcome is the card's
	if strings.HasPrefix(s2.ApprovalCode, "Y1") {
		t.Fatalf("second sale approved offline (%s) with the advice queue full", s2.ApprovalCode)
	}
	reqs := r.gw.requests()
	if len(reqs) != 1 || reqs[0].STAN != s2.STAN {
		t.Fatalf("%d 1200s, want S-2's", len(reqs))
	}
	chip, err := de55.ParseRequest(reqs[0].ICCData)
	if err != nil {
		t.Fatal(err)
	}
	if chip.CID().Type() != emv.ARQC {
		t.Fatalf("cryptogram type %v, want ARQC", chip.CID().Type())
	}
	if n := r.fw.PendingAdvices(); n != 1 {
		t.Fatalf("%d advices pending, want 1", n)
	}
}

// TestRecordVersions: a state file of the record before the advice queue
// (no version) is read with an empty queue and rewritten as version 2; a
// newer version, or a queue that is not readable, is refused.
func TestRecordVersions(t *testing.T) {
	tests := []struct {
		name    string
		record  string
		refused bool
		newer   bool // refused with ErrRecordVersion
	}{
		{"version_1", fmt.Sprintf(`{"last":{"command":%d,"ref":"S-old","outcome":%d,"action_code":"000","stan":"000003"},"journal":[{"kind":%d,"ref":"S-old","time":"20250101120000","request":{"STAN":"000003","Amount":500,"Currency":"392","LocalTime":"250101120000","ProcessingCode":"000000"}}]}`,
			tlink.KindSale, tlink.OutcomeApproved, tlink.KindSale), false, false},
		{"version_3", `{"version":3,"last":{"command":16,"ref":"S-new","outcome":1}}`, true, true},
		{"queue_in_version_1", `{"advices":[{"stan":"000001","ref":"S-1","advice":"AAAA"}]}`, true, false},
		{"unreadable_advice", `{"version":2,"advices":[{"stan":"000001","ref":"S-1","advice":"AAAA"}]}`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state := fmt.Sprintf(`{"dukpt_counter":3,"stan":3,"last_txn":%s}`, tt.record)
			if err := os.WriteFile(filepath.Join(dir, "T0000042.state"), []byte(state), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := jets.Config{Terminal: newTerminal(t, dir), Link: linkCfg}
			fw, err := jets.New(cfg)
			switch {
			case !tt.refused && err != nil:
				t.Fatalf("New: %v", err)
			case tt.refused && err == nil:
				t.Fatal("New accepted the record")
			case tt.newer != errors.Is(err, jets.ErrRecordVersion):
				t.Fatalf("New: %v; ErrRecordVersion wanted: %v", err, tt.newer)
			case tt.refused:
				t.Logf("refused: %v", err)
				if after, _ := os.ReadFile(filepath.Join(dir, "T0000042.state")); string(after) != state {
					t.Fatal("a refused record was rewritten")
				}
				return
			}
			if n := fw.PendingAdvices(); n != 0 {
				t.Fatalf("%d advices from a version 1 record", n)
			}
			r := attach(t, fw, iso93.ActionApproved)
			wantResult(t, "void of the old record's sale", command(t, r.gw, tlink.KindVoid, tlink.TxnCommand{Ref: "V-1", OrigRef: "S-old"}),
				tlink.OutcomeApproved, iso93.ActionReversalAccepted)
			rec, _ := readRecord(t, dir)
			if rec.Version != 2 || rec.Last.Ref != "V-1" || len(rec.Journal) != 1 {
				t.Fatalf("rewritten record version %d, last %q, %d journal entries", rec.Version, rec.Last.Ref, len(rec.Journal))
			}
		})
	}
}

func TestAdviceConfigRefused(t *testing.T) {
	tests := []struct {
		name string
		cfg  jets.Config
	}{
		{"max_below_retry", jets.Config{AdviceRetry: time.Minute, AdviceRetryMax: time.Second}},
		{"negative_retry", jets.Config{AdviceRetry: -time.Second}},
		{"negative_max_pending", jets.Config{MaxPendingAdvices: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := jets.New(tt.cfg); !errors.Is(err, jets.ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
}
