package jets_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/fwimage"
	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/p2pe/pinblock"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/ptytest"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// X9.24-3 test BDK and IKID (CRYPTO_VECTORS.md); the IK is derived here.
var (
	testBDK, _ = hex.DecodeString("FEDCBA9876543210F1F1F1F1F1F1F1F1")
	testIKID   = [8]byte{0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56}
)

func testKeys(t testing.TB) keybundle.Keys {
	t.Helper()
	ik, err := dukpt.AESInitialKey(testBDK, testIKID)
	if err != nil {
		t.Fatal(err)
	}
	return keybundle.Keys{TerminalID: "T0000042", IKID: testIKID, InitialKey: ik, FingerprintKey: bytes.Repeat([]byte{0x5A}, 32)}
}

var vendor = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

// linkCfg keeps timers short so that a cut line is noticed quickly.
var linkCfg = tlink.Config{AckTimeout: 200 * time.Millisecond, InterByteTimeout: 100 * time.Millisecond, ResponseTimeout: 5 * time.Second, DuplicateWindow: 2 * time.Second}

// gateway is the test's side of the link: a tlink endpoint on the pty slave
// opened with terminal/transport (tarm/serial), playing the gateway. It
// answers financial requests with the action code in approve and collects
// txn-results.
type gateway struct {
	ep      *tlink.Endpoint
	results chan tlink.TxnResult
	action  iso93.ActionCode
	drop    bool // do not answer 1200s
	dropRev bool // do not answer 1420s

	reversed chan iso93.Reversal // every 1420 received

	mu      sync.Mutex
	reqs    []iso93.FinancialRequest
	auths   []iso93.AuthorizationRequest // 1100s
	advices []adviceSeen                 // 1220s and 1221s
	// advAction, when set, answers 1220s and 1221s instead of action;
	// dropAdv leaves them unanswered.
	advAction iso93.ActionCode
	dropAdv   bool
	// icc, when set, makes the response DE 55 of a 1200 from the request.
	icc func(iso93.FinancialRequest) []byte
	// sent is every financial request's MTI and STAN, and "signature"
	// and the STAN of every signature chunk (not answered), in arrival
	// order.
	sent []string
}

// adviceSeen is a 1220 or 1221 the fake gateway received, with its DE 56
// and the action code it answered ("" when it did not).
type adviceSeen struct {
	iso93.Advice
	mti      string
	original string
	answered iso93.ActionCode
}

// rig is one firmware serving the master side of a pty, and a gateway.
type rig struct {
	fw     *jets.Firmware
	gw     *gateway
	served chan error
	stop   context.CancelFunc
}

func newTerminal(t *testing.T, dir string) *device.Terminal {
	t.Helper()
	term, err := device.New(testKeys(t), device.Options{StatePath: filepath.Join(dir, "T0000042.state")})
	if err != nil {
		t.Fatal(err)
	}
	return term
}

func start(t *testing.T, cfg jets.Config, action iso93.ActionCode) *rig {
	t.Helper()
	cfg.Link = linkCfg
	fw, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return attach(t, fw, action)
}

func attach(t *testing.T, fw *jets.Firmware, action iso93.ActionCode) *rig {
	t.Helper()
	master, slave := ptytest.Open(t)
	port, err := transport.Open(transport.DeviceConfig{Medium: transport.Serial, Path: slave})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{fw: fw, served: make(chan error, 1), stop: cancel}
	go func() { r.served <- fw.Serve(ctx, master) }()
	gw := &gateway{ep: tlink.New(port, linkCfg), results: make(chan tlink.TxnResult, 16), action: action, reversed: make(chan iso93.Reversal, 4)}
	r.gw = gw
	var wg sync.WaitGroup
	wg.Go(func() { gw.ep.Run(ctx) })
	wg.Go(func() { gw.serve(t, ctx) })
	t.Cleanup(func() {
		r.shutdown()
		wg.Wait()
	})
	return r
}

// shutdown stops both sides and waits for the firmware's Serve.
func (r *rig) shutdown() {
	r.stop()
	r.gw.ep.Close()
	select {
	case <-r.served:
	case <-time.After(10 * time.Second):
		panic("firmware Serve did not return after shutdown")
	}
	r.served <- nil // let a second shutdown pass
}

func (g *gateway) serve(t *testing.T, ctx context.Context) {
	for {
		m, err := g.ep.Receive(ctx)
		if err != nil {
			return
		}
		switch m.Kind {
		case tlink.KindTxnResult:
			var r tlink.TxnResult
			if err := r.UnmarshalBinary(m.Payload); err != nil {
				t.Errorf("txn-result does not decode: %v", err)
				continue
			}
			g.results <- r
		case tlink.KindSignature:
			var c tlink.Signature
			if err := c.UnmarshalBinary(m.Payload); err == nil {
				g.mu.Lock()
				g.sent = append(g.sent, "signature "+c.STAN)
				g.mu.Unlock()
			}
		case tlink.KindFinancialRequest:
			mti, msg, err := iso93.Unpack(m.Payload)
			if err != nil {
				t.Errorf("financial request does not unpack: %v", err)
				continue
			}
			stan, _ := msg.GetString(iso93.FieldSTAN)
			g.mu.Lock()
			g.sent = append(g.sent, mti+" "+stan)
			g.mu.Unlock()
			if mti == iso93.MTIReversal {
				var rev iso93.Reversal
				if err := iso93.UnpackInto(m.Payload, &rev); err != nil {
					t.Errorf("1420: %v", err)
					continue
				}
				select {
				case g.reversed <- rev:
				default:
					t.Error("more 1420s than the test expects")
				}
				g.mu.Lock()
				drop := g.dropRev
				g.mu.Unlock()
				if drop {
					continue
				}
				raw, err := iso93.Pack(rev.Response(iso93.ActionReversalAccepted), iso93.MTIReversalResponse)
				if err != nil {
					t.Errorf("pack 1430: %v", err)
					continue
				}
				g.ep.Send(ctx, tlink.KindFinancialResponse, raw)
				continue
			}
			if mti == iso93.MTIAuthorizationRequest || mti == iso93.MTIAdvice || mti == iso93.MTIAdviceRepeat {
				if err := g.answerOther(ctx, mti, m.Payload); err != nil && ctx.Err() == nil {
					t.Errorf("%s: %v", mti, err)
				}
				continue
			}
			var req iso93.FinancialRequest
			if err := iso93.UnpackInto(m.Payload, &req); err != nil {
				t.Errorf("1200 does not unpack: %v", err)
				continue
			}
			g.mu.Lock()
			g.reqs = append(g.reqs, req)
			drop := g.drop
			g.mu.Unlock()
			if drop {
				continue
			}
			resp := req.Response(g.action)
			if g.action.Approved() {
				resp.ApprovalCode = "A1B2C3"
			}
			resp.MaskedPAN = req.MaskedPAN
			g.mu.Lock()
			icc := g.icc
			g.mu.Unlock()
			if icc != nil {
				resp.ICCData = icc(req)
			}
			raw, err := iso93.Pack(resp, iso93.MTIFinancialResponse)
			if err != nil {
				t.Errorf("pack 1210: %v", err)
				continue
			}
			if err := g.ep.Send(ctx, tlink.KindFinancialResponse, raw); err != nil {
				return
			}
		}
	}
}

// answerOther answers a 1100 with a 1110 and a 1220 or 1221 with a 1230
// (g.advAction when set, RRN "RRN" + STAN when approved), both with
// g.action, and records them.
func (g *gateway) answerOther(ctx context.Context, mti string, raw []byte) error {
	var resp []byte
	var err error
	g.mu.Lock()
	action, drop := g.action, g.drop
	g.mu.Unlock()
	switch mti {
	case iso93.MTIAuthorizationRequest:
		var req iso93.AuthorizationRequest
		if err := iso93.UnpackInto(raw, &req); err != nil {
			return err
		}
		g.mu.Lock()
		g.auths = append(g.auths, req)
		g.mu.Unlock()
		r := req.Response(action)
		if action.Approved() {
			r.ApprovalCode = "PA0001"
		}
		resp, err = iso93.Pack(r, iso93.MTIAuthorizationResponse)
	case iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		var adv iso93.Advice
		if err := iso93.UnpackInto(raw, &adv); err != nil {
			return err
		}
		_, msg, err := iso93.Unpack(raw)
		if err != nil {
			return err
		}
		od, _ := msg.GetString(iso93.FieldOriginalData)
		g.mu.Lock()
		if g.advAction != "" {
			action = g.advAction
		}
		drop = g.dropAdv
		seen := adviceSeen{Advice: adv, mti: mti, original: od}
		if !drop {
			seen.answered = action
		}
		g.advices = append(g.advices, seen)
		g.mu.Unlock()
		r := adv.Response(action)
		if action.Approved() {
			r.RRN = "RRN000" + adv.STAN
		}
		resp, err = iso93.Pack(r, iso93.MTIAdviceResponse)
		if err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if drop {
		return nil
	}
	return g.ep.Send(ctx, tlink.KindFinancialResponse, resp)
}

func (g *gateway) requests() []iso93.FinancialRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]iso93.FinancialRequest(nil), g.reqs...)
}

func request[T interface{ UnmarshalBinary([]byte) error }](t *testing.T, ep *tlink.Endpoint, k tlink.Kind, q tlink.RefOnly, out T) {
	t.Helper()
	p, _ := q.MarshalBinary()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := ep.Request(ctx, k, p)
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	if err := out.UnmarshalBinary(m.Payload); err != nil {
		t.Fatalf("%s answer: %v", k, err)
	}
}

func sale(t *testing.T, g *gateway, ref string, amount uint64) tlink.TxnResult {
	t.Helper()
	return command(t, g, tlink.KindSale, tlink.TxnCommand{Ref: ref, Amount: amount, Currency: "392"})
}

// command sends a transaction command and waits for its txn-result.
func command(t *testing.T, g *gateway, k tlink.Kind, c tlink.TxnCommand) tlink.TxnResult {
	t.Helper()
	ref := c.Ref
	p, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.ep.Send(ctx, k, p); err != nil {
		t.Fatalf("send %s: %v", k, err)
	}
	select {
	case r := <-g.results:
		return r
	case <-ctx.Done():
		t.Fatalf("no txn-result for %s", ref)
	}
	return tlink.TxnResult{}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name  string
		term  bool
		state tlink.DeviceState
	}{
		{"injected", true, tlink.StateIdle},
		{"no_keys", false, tlink.StateError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := jets.Config{Serial: "SN-1"}
			if tt.term {
				cfg.Terminal = newTerminal(t, t.TempDir())
			}
			r := start(t, cfg, iso93.ActionApproved)
			var st tlink.Status
			request(t, r.gw.ep, tlink.KindStatusRequest, tlink.RefOnly{Ref: "st1"}, &st)
			want := tlink.Status{Ref: "st1", DeviceKind: 1, State: tt.state, Model: jets.DefaultModel, Serial: "SN-1", Firmware: "1.0.0", Protocol: tlink.ProtocolVersion}
			if st != want {
				t.Fatalf("status %+v, want %+v", st, want)
			}
		})
	}
}

func TestKeyStatus(t *testing.T) {
	dir := t.TempDir()
	r := start(t, jets.Config{Terminal: newTerminal(t, dir), VendorKey: vendor.Public().(ed25519.PublicKey), FirmwareDir: filepath.Join(dir, "fw")}, iso93.ActionApproved)
	var ks tlink.KeyStatus
	request(t, r.gw.ep, tlink.KindKeyStatusRequest, tlink.RefOnly{Ref: "ks1"}, &ks)
	if ks.Ref != "ks1" || len(ks.Keys) != 3 {
		t.Fatalf("key status %+v", ks)
	}
	// The IK's KCV by hsmctl's rule (AES-CMAC of a zero block): the
	// X9.24-3 IK 1273671EA26AC29AFA4D1084127652A1 has CMAC(0) starting
	// with these bytes (computed with crypto/aes below, independently).
	dk := ks.Keys[0]
	if dk.Slot != "dukpt-ik" || dk.Type != tlink.KeyAES128DUKPT || !bytes.Equal(dk.KSN, append(testIKID[:], 0, 0, 0, 0)) {
		t.Fatalf("DUKPT key info %+v", dk)
	}
	if want := cmacZero(t, testKeys(t).InitialKey); dk.KCV != want {
		t.Fatalf("DUKPT KCV %X, want %X", dk.KCV, want)
	}
	if ks.Keys[1].Type != tlink.KeyFingerprint || ks.Keys[1].KSN != nil || ks.Keys[2].Type != tlink.KeyFirmware {
		t.Fatalf("other keys %+v", ks.Keys[1:])
	}
	// After a sale the KSN counter has moved.
	if res := sale(t, r.gw, "S1", 500); res.Outcome != tlink.OutcomeApproved {
		t.Fatalf("sale %+v", res)
	}
	request(t, r.gw.ep, tlink.KindKeyStatusRequest, tlink.RefOnly{}, &ks)
	if !bytes.Equal(ks.Keys[0].KSN[8:], []byte{0, 0, 0, 1}) {
		t.Fatalf("KSN after one sale %X", ks.Keys[0].KSN)
	}
}

func TestSale(t *testing.T) {
	tests := []struct {
		name      string
		ref       string
		amount    uint64
		action    iso93.ActionCode
		outcome   tlink.Outcome
		entry     byte // DE 22 position 7
		pin       bool
		signature bool
	}{
		{"chip_pin_approved", "S1@visa-ok", 1200, iso93.ActionApproved, tlink.OutcomeApproved, '5', true, false},
		{"magstripe_signature", "S2@mc-ok:magstripe", 1200, iso93.ActionApproved, tlink.OutcomeApproved, '2', false, true},
		{"contactless_under_limit", "S3@jcb-ok:contactless", 800, iso93.ActionApproved, tlink.OutcomeApproved, 'A', false, true},
		{"contactless_over_limit", "S4@jcb-ok:contactless", 20000, iso93.ActionApproved, tlink.OutcomeApproved, 'A', true, false},
		{"declined", "S5@low-balance", 1200, iso93.ActionInsufficientFunds, tlink.OutcomeDeclined, '5', true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reports []jets.Report
			var mu sync.Mutex
			r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir()), OnResult: func(rep jets.Report) {
				mu.Lock()
				reports = append(reports, rep)
				mu.Unlock()
			}}, tt.action)
			res := sale(t, r.gw, tt.ref, tt.amount)
			if res.Ref != tt.ref || res.Outcome != tt.outcome || res.ActionCode != string(tt.action) || res.STAN != "000001" || res.Amount != tt.amount {
				t.Fatalf("txn-result %+v", res)
			}
			if tt.outcome == tlink.OutcomeApproved && res.ApprovalCode != "A1B2C3" {
				t.Fatalf("approval code %q", res.ApprovalCode)
			}
			reqs := r.gw.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d financial requests", len(reqs))
			}
			q := reqs[0]
			name := tt.ref[strings.IndexByte(tt.ref, '@')+1:]
			name, _, _ = strings.Cut(name, ":")
			c, _ := deck.Lookup(name)
			if q.PAN != "" || q.MaskedPAN != c.Masked() || len(q.CardData) == 0 || q.POSDataCode[6] != tt.entry {
				t.Fatalf("1200: masked PAN %s, clear PAN present %v, DE 22 %s", q.MaskedPAN, q.PAN != "", q.POSDataCode)
			}
			if got := len(q.PINBlock) > 0; got != tt.pin {
				t.Fatalf("PIN block present %v, want %v", got, tt.pin)
			}
			if tt.pin {
				checkPIN(t, q, c)
			}
			rc := r.fw.Receipts()
			if len(rc) != 1 || !strings.Contains(rc[0], c.Masked()) || strings.Contains(rc[0], c.PAN) {
				t.Fatalf("receipt does not show the masked PAN alone:\n%s", strings.ReplaceAll(strings.Join(rc, "\n"), c.PAN, "[PAN]"))
			}
			if strings.Contains(rc[0], "SIGNATURE") != (tt.signature && tt.outcome == tlink.OutcomeApproved) {
				t.Fatalf("signature line on receipt:\n%s", rc[0])
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reports) != 1 || reports[0].MaskedPAN != c.Masked() || reports[0].Result.Outcome != tt.outcome {
				t.Fatalf("reports %+v", reports)
			}
		})
	}
}

// checkPIN decrypts DE 125 the way the center would and expects the
// default simulated PIN.
func checkPIN(t *testing.T, q iso93.FinancialRequest, c deck.Card) {
	t.Helper()
	ksn, err := dukpt.ParseAESKSN(q.KSN)
	if err != nil {
		t.Fatal(err)
	}
	ik, _ := dukpt.AESInitialKey(testBDK, testIKID)
	pk, err := dukpt.AESWorkingKey(ik, ksn, dukpt.UsagePINEncryption, dukpt.AlgAES128)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := pinblock.DecryptFormat4(pk, q.PINBlock, c.PAN)
	if err != nil {
		t.Fatalf("PIN block does not decrypt: %v", err)
	}
	want, _ := pinblock.ParsePIN(jets.DefaultPIN)
	if pin != want {
		t.Fatal("PIN block holds a different PIN")
	}
}

func TestLastTxnAfterRestart(t *testing.T) {
	dir := t.TempDir()
	r := start(t, jets.Config{Terminal: newTerminal(t, dir)}, iso93.ActionApproved)
	var lt tlink.LastTxn
	request(t, r.gw.ep, tlink.KindLastTxnQuery, tlink.RefOnly{Ref: "q0"}, &lt)
	if lt.Txn != nil {
		t.Fatalf("fresh terminal has a last transaction: %+v", lt)
	}
	first := sale(t, r.gw, "S-100", 1500)
	r.shutdown()

	// Power cycle: a new Terminal and firmware on the same state file.
	r2 := start(t, jets.Config{Terminal: newTerminal(t, dir)}, iso93.ActionApproved)
	request(t, r2.gw.ep, tlink.KindLastTxnQuery, tlink.RefOnly{Ref: "q1"}, &lt)
	if lt.Ref != "q1" || lt.Command != tlink.KindSale || lt.Txn == nil || *lt.Txn != first {
		t.Fatalf("last-txn after restart %+v (txn %+v), want %+v", lt, lt.Txn, first)
	}
	// The STAN continues from the persisted state.
	if next := sale(t, r2.gw, "S-101", 100); next.STAN != "000002" {
		t.Fatalf("STAN after restart %s", next.STAN)
	}
}

func TestCancel(t *testing.T) {
	picking := make(chan struct{})
	picker := jets.PickerFunc(func(ctx context.Context, _ tlink.Kind, _ tlink.TxnCommand) (device.Read, error) {
		close(picking)
		<-ctx.Done() // the cardholder never presents a card
		return device.Read{}, ctx.Err()
	})
	r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir()), Picker: picker}, iso93.ActionApproved)
	c := tlink.TxnCommand{Ref: "S-9", Amount: 100, Currency: "392"}
	p, _ := c.MarshalBinary()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.gw.ep.Send(ctx, tlink.KindSale, p); err != nil {
		t.Fatal(err)
	}
	<-picking
	var st tlink.Status
	request(t, r.gw.ep, tlink.KindStatusRequest, tlink.RefOnly{}, &st)
	if st.State != tlink.StateBusy {
		t.Fatalf("state during a sale %v", st.State)
	}
	// A second sale while busy is refused, not queued.
	c2 := tlink.TxnCommand{Ref: "S-10", Amount: 100, Currency: "392"}
	p2, _ := c2.MarshalBinary()
	if err := r.gw.ep.Send(ctx, tlink.KindSale, p2); err != nil {
		t.Fatal(err)
	}
	if res := <-r.gw.results; res.Ref != "S-10" || res.Outcome != tlink.OutcomeFailed {
		t.Fatalf("sale while busy: %+v", res)
	}
	cp, _ := (&tlink.RefOnly{Ref: "S-9"}).MarshalBinary()
	if err := r.gw.ep.Send(ctx, tlink.KindCancel, cp); err != nil {
		t.Fatal(err)
	}
	if res := <-r.gw.results; res.Ref != "S-9" || res.Outcome != tlink.OutcomeCancelled {
		t.Fatalf("cancelled sale: %+v", res)
	}
	if n := len(r.gw.requests()); n != 0 {
		t.Fatalf("%d financial requests sent for a cancelled sale", n)
	}
	var lt tlink.LastTxn
	request(t, r.gw.ep, tlink.KindLastTxnQuery, tlink.RefOnly{}, &lt)
	if lt.Txn == nil || lt.Txn.Ref != "S-9" || lt.Txn.Outcome != tlink.OutcomeCancelled {
		t.Fatalf("last-txn %+v", lt.Txn)
	}
}

func TestNoHostAnswerReverses(t *testing.T) {
	dir := t.TempDir()
	cfg := jets.Config{HostTimeout: 300 * time.Millisecond, Link: linkCfg}
	cfg.Terminal = newTerminal(t, dir)
	fw, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := attach(t, fw, iso93.ActionApproved)
	r.gw.mu.Lock()
	r.gw.drop, r.gw.dropRev = true, true
	r.gw.mu.Unlock()
	res := sale(t, r.gw, "S-7", 100)
	if res.Outcome != tlink.OutcomeFailed {
		t.Fatalf("unanswered sale: %+v", res)
	}
	var first iso93.Reversal
	select {
	case first = <-r.gw.reversed:
		od, err := iso93.ParseOriginalData(first.OriginalData)
		if err != nil || od.STAN != res.STAN || first.ReasonCode != iso93.ReasonTimeoutReversal || first.Amount != 100 {
			t.Fatalf("1420 original %+v (%v), reason %s, amount %d", od, err, first.ReasonCode, first.Amount)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no 1420 reversal after the host did not answer")
	}
	if !fw.Unreversed() {
		t.Fatal("an unanswered reversal is not kept")
	}
	// A later sale that goes through does not wipe the reversal owed.
	r.gw.mu.Lock()
	r.gw.drop = false
	r.gw.mu.Unlock()
	if next := sale(t, r.gw, "S-8", 200); next.Outcome != tlink.OutcomeApproved {
		t.Fatalf("sale after the lost one: %+v", next)
	}
	if !fw.Unreversed() {
		t.Fatal("the next sale's record dropped the reversal owed")
	}
	r.shutdown()

	// Restart: the reversal is repeated under the same idempotency key and
	// answered this time.
	cfg.Terminal = newTerminal(t, dir)
	fw2, err := jets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r2 := attach(t, fw2, iso93.ActionApproved)
	select {
	case again := <-r2.gw.reversed:
		if again.IdempotencyKey != first.IdempotencyKey || again.OriginalData != first.OriginalData {
			t.Fatalf("repeated reversal differs: key %q vs %q", again.IdempotencyKey, first.IdempotencyKey)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the kept reversal was not sent after a restart")
	}
	poll.Until(t, waitLimit, "the answered reversal to be cleared", func() bool { return !fw2.Unreversed() })
	var lt tlink.LastTxn
	request(t, r2.gw.ep, tlink.KindLastTxnQuery, tlink.RefOnly{}, &lt)
	if lt.Txn == nil || lt.Txn.Ref != "S-8" || lt.Txn.Outcome != tlink.OutcomeApproved {
		t.Fatalf("last-txn after the reversal %+v", lt.Txn)
	}
	r2.shutdown()
	cfg.Terminal = newTerminal(t, dir)
	fw3, err := jets.New(cfg)
	if err != nil || fw3.Unreversed() {
		t.Fatalf("third start: %v, unreversed %v", err, fw3.Unreversed())
	}
}

// waitLimit bounds every wait on a condition in these tests.
const waitLimit = 10 * time.Second

func TestDisplayAndPrint(t *testing.T) {
	r := start(t, jets.Config{Terminal: newTerminal(t, t.TempDir())}, iso93.ActionApproved)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, _ := (&tlink.Display{Text: "WELCOME\nSTORE 12"}).MarshalBinary()
	if err := r.gw.ep.Send(ctx, tlink.KindDisplay, d); err != nil {
		t.Fatal(err)
	}
	p, _ := (&tlink.Print{Ref: "p1", Text: "THANK YOU"}).MarshalBinary()
	m, err := r.gw.ep.Request(ctx, tlink.KindPrint, p)
	if err != nil {
		t.Fatal(err)
	}
	var pr tlink.PrintResult
	if err := pr.UnmarshalBinary(m.Payload); err != nil || pr != (tlink.PrintResult{Ref: "p1", Status: tlink.PrintOK}) {
		t.Fatalf("print result %+v %v", pr, err)
	}
	// The display frame was acknowledged before the print; the firmware
	// handles messages in order, so the text is in place.
	if got := r.fw.Display(); got != "WELCOME\nSTORE 12" {
		t.Fatalf("display %q", got)
	}
}

func pushImage(ctx context.Context, ep *tlink.Endpoint, id string, img []byte, from, upTo int) (tlink.FirmwareAck, error) {
	off := from
	var a tlink.FirmwareAck
	for off < len(img) && (upTo == 0 || off < upTo) {
		end := min(off+1024, len(img))
		p, _ := (&tlink.FirmwareChunk{Ref: fmt.Sprint("c", off), Image: id, Offset: uint32(off), Total: uint32(len(img)), Data: img[off:end]}).MarshalBinary()
		m, err := ep.Request(ctx, tlink.KindFirmwareChunk, p)
		if err != nil {
			return a, err
		}
		if err := a.UnmarshalBinary(m.Payload); err != nil {
			return a, err
		}
		if a.Status != tlink.FirmwareOK {
			return a, nil
		}
		off = int(a.NextOffset)
	}
	return a, nil
}

func TestFirmwareUpdate(t *testing.T) {
	body := bytes.Repeat([]byte("firmware!"), 1000)
	good, _ := fwimage.Sign(vendor, fwimage.Version{Major: 1, Minor: 1}, body)
	old, _ := fwimage.Sign(vendor, fwimage.Version{Major: 0, Minor: 9}, body)
	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 0xFF
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	forged, _ := fwimage.Sign(other, fwimage.Version{Major: 1, Minor: 1}, body)
	tests := []struct {
		name    string
		img     []byte
		status  tlink.FirmwareStatus
		version string
	}{
		{"full", good, tlink.FirmwareInstalled, "1.1.0"},
		{"tampered", tampered, tlink.FirmwareBadImage, "1.0.0"},
		{"wrong_key", forged, tlink.FirmwareBadImage, "1.0.0"},
		{"downgrade", old, tlink.FirmwareBadImage, "1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := start(t, jets.Config{Terminal: newTerminal(t, dir), VendorKey: vendor.Public().(ed25519.PublicKey), FirmwareDir: filepath.Join(dir, "fw")}, iso93.ActionApproved)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			a, err := pushImage(ctx, r.gw.ep, "img", tt.img, 0, 0)
			if err != nil || a.Status != tt.status {
				t.Fatalf("last ack %+v, %v; want status %d", a, err, tt.status)
			}
			var st tlink.Status
			request(t, r.gw.ep, tlink.KindStatusRequest, tlink.RefOnly{}, &st)
			if st.Firmware != tt.version || st.State != tlink.StateIdle {
				t.Fatalf("status after update: firmware %s state %v, want %s idle", st.Firmware, st.State, tt.version)
			}
		})
	}
}

func TestFirmwareResumeAfterCut(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte{0xA5, 0x02, 0x10, 0x03}, 3000) // special link bytes inside
	img, _ := fwimage.Sign(vendor, fwimage.Version{Major: 2}, body)
	cfg := jets.Config{Terminal: newTerminal(t, dir), VendorKey: vendor.Public().(ed25519.PublicKey), FirmwareDir: filepath.Join(dir, "fw")}
	r := start(t, cfg, iso93.ActionApproved)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if a, err := pushImage(ctx, r.gw.ep, "v2", img, 0, 5000); err != nil || a.Status != tlink.FirmwareOK {
		t.Fatalf("first part: %+v %v", a, err)
	}
	var st tlink.Status
	request(t, r.gw.ep, tlink.KindStatusRequest, tlink.RefOnly{}, &st)
	if st.State != tlink.StateUpdating {
		t.Fatalf("state mid-transfer %v", st.State)
	}
	// Cut: the cable is pulled and the terminal restarts.
	r.shutdown()
	cfg.Terminal = newTerminal(t, dir)
	r2 := start(t, cfg, iso93.ActionApproved)
	// The gateway starts over at 0 and is told where to resume.
	a, err := pushImage(ctx, r2.gw.ep, "v2", img, 0, 1)
	if err != nil || a.Status != tlink.FirmwareResend || a.NextOffset != 5120 {
		t.Fatalf("restart at 0: %+v %v; want resend from 5120", a, err)
	}
	if a, err = pushImage(ctx, r2.gw.ep, "v2", img, int(a.NextOffset), 0); err != nil || a.Status != tlink.FirmwareInstalled {
		t.Fatalf("resumed transfer: %+v %v", a, err)
	}
	request(t, r2.gw.ep, tlink.KindStatusRequest, tlink.RefOnly{}, &st)
	if st.Firmware != "2.0.0" {
		t.Fatalf("firmware after resumed update %s", st.Firmware)
	}
}

func TestPushHelper(t *testing.T) {
	dir := t.TempDir()
	img, _ := fwimage.Sign(vendor, fwimage.Version{Major: 1, Patch: 5}, bytes.Repeat([]byte{7}, 9000))
	r := start(t, jets.Config{Terminal: newTerminal(t, dir), VendorKey: vendor.Public().(ed25519.PublicKey), FirmwareDir: filepath.Join(dir, "fw")}, iso93.ActionApproved)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fwimage.Push(ctx, r.gw.ep, "p", img, 0); err != nil {
		t.Fatal(err)
	}
	if err := fwimage.Push(ctx, r.gw.ep, "p", img, 0); !errors.Is(err, fwimage.ErrRefused) {
		t.Fatalf("pushing the installed version again: %v", err)
	}
	if r.fw.Version().String() != "1.0.5" {
		t.Fatalf("version %s", r.fw.Version())
	}
}

func TestServeEndsOnHangup(t *testing.T) {
	fw, err := jets.New(jets.Config{Terminal: newTerminal(t, t.TempDir()), Link: linkCfg})
	if err != nil {
		t.Fatal(err)
	}
	a, b := pipe()
	done := make(chan error, 1)
	go func() { done <- fw.Serve(context.Background(), a) }()
	b.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the peer hung up")
	}
}

type pipeEnd struct {
	io.Reader
	io.Writer
	close func() error
}

func (p pipeEnd) Close() error { return p.close() }

func pipe() (pipeEnd, pipeEnd) {
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	a := pipeEnd{r1, w2, func() error { r1.Close(); return w2.Close() }}
	b := pipeEnd{r2, w1, func() error { r2.Close(); return w1.Close() }}
	return a, b
}

func cmacZero(t *testing.T, k []byte) [3]byte {
	t.Helper()
	c, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 4493 subkey K1 and the MAC of one complete zero block.
	var l [16]byte
	c.Encrypt(l[:], l[:])
	var k1 [16]byte
	for i := 0; i < 16; i++ {
		k1[i] = l[i] << 1
		if i < 15 {
			k1[i] |= l[i+1] >> 7
		}
	}
	if l[0]&0x80 != 0 {
		k1[15] ^= 0x87
	}
	var mac [16]byte
	c.Encrypt(mac[:], k1[:])
	return [3]byte{mac[0], mac[1], mac[2]}
}

// BenchmarkSaleOverPTY measures one sale as the gateway sees it over a
// real pty: command, 1200, 1210, txn-result.
func BenchmarkSaleOverPTY(b *testing.B) {
	term, err := device.New(testKeys(b), device.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fw, err := jets.New(jets.Config{Terminal: term})
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
		for done := false; !done; {
			m, err := ep.Receive(ctx)
			if err != nil {
				b.Fatal(err)
			}
			switch m.Kind {
			case tlink.KindFinancialRequest:
				var req iso93.FinancialRequest
				if err := iso93.UnpackInto(m.Payload, &req); err != nil {
					b.Fatal(err)
				}
				resp := req.Response(iso93.ActionApproved)
				resp.ApprovalCode = "123456"
				raw, _ := iso93.Pack(resp, iso93.MTIFinancialResponse)
				if err := ep.Send(ctx, tlink.KindFinancialResponse, raw); err != nil {
					b.Fatal(err)
				}
			case tlink.KindTxnResult:
				done = true
			}
		}
	}
}
