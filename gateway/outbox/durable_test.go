package outbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	"github.com/posgate/posgate/internal/poll"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/terminal/tlink"
)

// revCenter records the reversals it is sent and answers them with the
// next action of its script (an error: no answer), 400 once it is used up.
type revCenter struct {
	mu     sync.Mutex
	script []any
	mtis   []string
	keys   []string
	stans  []string
}

func (c *revCenter) RoundTrip(_ context.Context, req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mti, msg, err := iso93.Unpack(req)
	if err != nil {
		return nil, err
	}
	var rev iso93.Reversal
	if err := msg.Unmarshal(&rev); err != nil {
		return nil, err
	}
	c.mtis = append(c.mtis, mti)
	c.keys = append(c.keys, rev.IdempotencyKey)
	c.stans = append(c.stans, rev.STAN)
	action := iso93.ActionReversalAccepted
	if len(c.script) > 0 {
		next := c.script[0]
		c.script = c.script[1:]
		switch v := next.(type) {
		case error:
			return nil, v
		case iso93.ActionCode:
			action = v
		}
	}
	return iso93.Pack(rev.Response(action), iso93.MTIReversalResponse)
}

func (c *revCenter) sent() (mtis, keys, stans []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.mtis...), append([]string(nil), c.keys...), append([]string(nil), c.stans...)
}

func openStoreAt(t *testing.T, path string, s offline.Sealer) *offline.Store {
	t.Helper()
	st, err := offline.Open(offline.Config{Path: path, Sealer: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func storedReversals(t *testing.T, st *offline.Store) int {
	t.Helper()
	n := 0
	if err := st.LoadReversals(func(_ uint64, _ string, _ []byte, err error) {
		if err != nil {
			t.Errorf("stored reversal: %v", err)
		}
		n++
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// The reversal and signature tests below run their queues over a real
// bbolt file, which cannot live in a testing/synctest bubble: they wait
// on conditions with the bounded poll.Until.

// runUntil runs fn in a goroutine and returns a stop function that cancels
// it and waits for it to return.
func runUntil(t *testing.T, fn func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// A reversal queued while the uplink fails is durable before the terminal
// is answered 911, survives a restart (a new Reverser on the reopened
// file), is sent as a 1421 under the same key, and is deleted once
// answered; the file holds no masked PAN in clear.
func TestReversalSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offline.db")
	sealer := newSealer(t)
	st := openStoreAt(t, path, sealer)

	down := &revCenter{script: []any{link.ErrLinkDown, link.ErrLinkDown, link.ErrLinkDown, link.ErrLinkDown, link.ErrLinkDown,
		link.ErrLinkDown, link.ErrLinkDown, link.ErrLinkDown, link.ErrLinkDown, link.ErrLinkDown}}
	r1 := &Reverser{Uplink: down, Store: st, Logger: quiet(), RetryMin: 1e6, RetryMax: 1e6}
	f := &forward.Forwarder{Logger: quiet(), Reverser: r1, Uplink: outcomeUnknown}
	resp, err := f.Handle(t.Context(), sale(t, "000042"))
	if err != nil {
		t.Fatal(err)
	}
	if a := actionOf(t, resp); a != "911" {
		t.Fatalf("timed-out sale answered %s, want 911", a)
	}
	// Durable when the terminal got its answer, before Run ever ran.
	if n := storedReversals(t, st); n != 1 {
		t.Fatalf("%d reversals stored when the terminal was answered, want 1", n)
	}
	stop := runUntil(t, r1.Run)
	poll.Until(t, gatewaytest.WaitLimit, "two failed attempts", func() bool { m, _, _ := down.sent(); return len(m) >= 2 })
	stop()
	reg := prometheus.NewRegistry()
	if err := RegisterReversals(reg, r1); err != nil {
		t.Fatal(err)
	}
	// Every unanswered attempt counts but the last, which the stop may
	// have cut short (it is not a failure: it is repeated after the restart).
	if m, _, _ := down.sent(); gathered(t, reg)["posgate_reversal_failures_total"] < float64(len(m)-1) || gathered(t, reg)["posgate_reversal_failures_total"] > float64(len(m)) {
		t.Fatalf("reversal metrics %v after %d unanswered attempts, want %d or %d failures", gathered(t, reg), len(m), len(m)-1, len(m))
	}
	st.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The key is in clear by design (docs/offline.md); the masked PAN, the
	// fingerprint and the merchant are not.
	for _, clear := range []string{"411111******1111", "00112233445566778899aabbccddeeff", "MERCHANT0000001"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Fatalf("%q in clear in the bbolt file", clear)
		}
	}

	// Restart: a new store handle and a new Reverser.
	st2 := openStoreAt(t, path, sealer)
	up := &revCenter{}
	r2 := &Reverser{Uplink: up, Store: st2, Logger: quiet(), RetryMin: 1e6, RetryMax: 1e6}
	stop2 := runUntil(t, r2.Run)
	poll.Until(t, gatewaytest.WaitLimit, "the reversal answered and deleted", func() bool {
		m, _, _ := up.sent()
		return len(m) == 1 && r2.Pending() == 0 && storedReversals(t, st2) == 0
	})
	stop2()
	mtis, keys, stans := up.sent()
	if mtis[0] != iso93.MTIReversalRepeat || keys[0] != "T0000001-000042-R" || stans[0] != "000042" {
		t.Fatalf("after the restart sent %v %v %v, want one 1421 under T0000001-000042-R for STAN 000042", mtis, keys, stans)
	}

	// A third run finds nothing to send.
	up3 := &revCenter{}
	r3 := &Reverser{Uplink: up3, Store: st2, Logger: quiet()}
	r3.load()
	if r3.Pending() != 0 {
		t.Fatalf("%d reversals queued after they were answered", r3.Pending())
	}
}

// A 1430 meaning "try later" keeps the reversal queued and stored; the
// final answer deletes it. A reversal enqueued before Run is not queued
// twice by Run's reload.
func TestReversalRepeatsUntilFinal(t *testing.T) {
	st := openStoreAt(t, filepath.Join(t.TempDir(), "offline.db"), newSealer(t))
	c := &revCenter{script: []any{iso93.ActionSystemMalfunction, iso93.ActionRequestInProgress}}
	r := &Reverser{Uplink: c, Store: st, Logger: quiet(), RetryMin: 1e6, RetryMax: 1e6}
	r.Enqueue(sale(t, "000043"))
	stop := runUntil(t, r.Run)
	poll.Until(t, gatewaytest.WaitLimit, "the final answer", func() bool {
		m, _, _ := c.sent()
		return len(m) == 3 && r.Pending() == 0 && storedReversals(t, st) == 0
	})
	stop()
	mtis, keys, _ := c.sent()
	if mtis[0] != "1420" || mtis[1] != "1421" || mtis[2] != "1421" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("sent %v under %v, want 1420 then 1421 repeats under one key", mtis, keys)
	}
}

// A reversal that cannot be stored is still sent from memory.
func TestReversalStoreFailure(t *testing.T) {
	st := openStoreAt(t, filepath.Join(t.TempDir(), "offline.db"), newSealer(t))
	st.Close()
	c := &revCenter{}
	r := &Reverser{Uplink: c, Store: st, Logger: quiet(), RetryMin: 1e6, RetryMax: 1e6}
	r.Enqueue(sale(t, "000044"))
	stop := runUntil(t, r.Run)
	poll.Until(t, gatewaytest.WaitLimit, "the reversal sent", func() bool { m, _, _ := c.sent(); return len(m) == 1 && r.Pending() == 0 })
	stop()
}

func storedSignatures(t *testing.T, st *offline.Store) int {
	t.Helper()
	n := 0
	if err := st.LoadSignatures(func(_ uint64, _ string, _ []byte, err error) {
		if err != nil {
			t.Errorf("stored signature: %v", err)
		}
		n++
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A signature accepted while the center is unreachable is durable when
// Accept returns, survives a restart and is delivered once, every chunk
// once, by the new queue; the file holds none of it in clear.
func TestSignatureSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offline.db")
	sealer := newSealer(t)
	st := openStoreAt(t, path, sealer)
	data := bytes.Repeat([]byte("SG\x01xyz"), 300) // 1800 bytes: 3 records
	sig := device.Signature{DeviceID: "T1", Ref: "S1", MTI: "1200", TerminalID: "T0000042", STAN: "000007",
		LocalTime: "260101120000", IdempotencyKey: "T0000042-abc-0001", Format: tlink.SignatureSignpadV1, Data: data}

	down := &sigCenter{script: []any{iso93.ActionApproved, errors.New("link down"), errors.New("link down"), errors.New("link down"),
		errors.New("link down"), errors.New("link down"), errors.New("link down"), errors.New("link down")}}
	q1 := &SignatureQueue{Uplink: down, GatewayID: "GW1", Store: st, Retry: 1e6, RetryMax: 1e6}
	if err := q1.Accept(t.Context(), sig); err != nil {
		t.Fatal(err)
	}
	if n := storedSignatures(t, st); n != 1 {
		t.Fatalf("%d signatures stored when Accept returned, want 1", n)
	}
	stop := runUntil(t, q1.Run)
	// The first chunk went; the second keeps failing.
	poll.Until(t, gatewaytest.WaitLimit, "a failed second chunk", func() bool { down.mu.Lock(); defer down.mu.Unlock(); return down.calls >= 3 })
	stop()
	if q1.Delivered() != 0 {
		t.Fatal("delivered with the link down")
	}
	st.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("SG\x01xyz")) || bytes.Contains(raw, []byte("260101120000")) {
		t.Fatal("the signature is in clear in the bbolt file")
	}

	st2 := openStoreAt(t, path, sealer)
	up := &sigCenter{}
	q2 := &SignatureQueue{Uplink: up, GatewayID: "GW1", Store: st2, Retry: 1e6, RetryMax: 1e6}
	stop2 := runUntil(t, q2.Run)
	poll.Until(t, gatewaytest.WaitLimit, "the signature delivered and deleted", func() bool {
		return q2.Delivered() == 1 && q2.Len() == 0 && storedSignatures(t, st2) == 0
	})
	stop2()
	up.mu.Lock()
	var back []byte
	for _, r := range up.records {
		if r.IdempotencyKey != sig.IdempotencyKey || r.STAN != sig.STAN || r.TerminalID != sig.TerminalID || r.LocalTime != sig.LocalTime {
			t.Fatalf("record identifies %+v", r)
		}
		back = append(back, r.Data...)
	}
	n := len(up.records)
	up.mu.Unlock()
	if n != 3 || !bytes.Equal(back, data) {
		t.Fatalf("the new queue sent %d records (want 3, from offset 0) rebuilding the signature: %v", n, bytes.Equal(back, data))
	}

	// A third run sends nothing.
	q3 := &SignatureQueue{Uplink: &sigCenter{}, GatewayID: "GW1", Store: st2}
	q3.load()
	if q3.Len() != 0 {
		t.Fatalf("%d signatures queued after delivery", q3.Len())
	}
}

// A signature the store cannot keep is refused (the terminal is not told
// complete) and not queued.
func TestSignatureStoreFailureRefuses(t *testing.T) {
	st := openStoreAt(t, filepath.Join(t.TempDir(), "offline.db"), newSealer(t))
	st.Close()
	q := &SignatureQueue{Uplink: &sigCenter{}, GatewayID: "GW1", Store: st}
	sig := device.Signature{TerminalID: "T0000042", STAN: "000008", LocalTime: "260101120000",
		IdempotencyKey: "T0000042-abc-0002", Format: tlink.SignatureSignpadV1, Data: []byte("SG\x01abc")}
	if err := q.Accept(t.Context(), sig); !errors.Is(err, offline.ErrClosed) {
		t.Fatalf("Accept with a closed store: %v, want ErrClosed", err)
	}
	if q.Len() != 0 {
		t.Fatal("refused signature queued")
	}
}
