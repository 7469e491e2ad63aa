package tlink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/terminal/tlink"
)

func TestSendReceive(t *testing.T) {
	tests := []struct {
		name    string
		kind    tlink.Kind
		payload []byte
	}{
		{"financial_request", tlink.KindFinancialRequest, []byte("\x11\x00ISO8583:1993 bytes \x02\x03\x06\x10\x15")},
		{"empty_payload", tlink.KindStatusRequest, nil},
		{"display", tlink.KindDisplay, mustMarshal(t, &tlink.Display{Text: "Thank you"})},
		{"large_payload", tlink.KindPrint, bytes.Repeat([]byte{0x10, 0x02, 'x'}, 2700)},
		{"unknown_kind", tlink.Kind(0x7E), []byte("future")},
	}
	a, b, _, _ := pipePair(t, tlink.Config{}, tlink.Config{}, nil, nil)
	ctx := testCtx(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dir := range []struct{ from, to *tlink.Endpoint }{{a, b}, {b, a}} {
				if err := dir.from.Send(ctx, tt.kind, tt.payload); err != nil {
					t.Fatalf("Send: %v", err)
				}
				m, err := dir.to.Receive(ctx)
				if err != nil {
					t.Fatalf("Receive: %v", err)
				}
				if m.Kind != tt.kind || !bytes.Equal(m.Payload, tt.payload) {
					t.Fatalf("got kind %v, %d bytes; want %v, %d bytes", m.Kind, len(m.Payload), tt.kind, len(tt.payload))
				}
			}
		})
	}
}

func TestSequenceWraps(t *testing.T) {
	a, b, _, _ := pipePair(t, tlink.Config{}, tlink.Config{}, nil, nil)
	ctx := testCtx(t)
	for i := range 300 {
		p := []byte(fmt.Sprint(i))
		if err := a.Send(ctx, tlink.KindFinancialRequest, p); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		m, err := b.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive %d: %v", i, err)
		}
		if m.Seq != uint8(i) || !bytes.Equal(m.Payload, p) {
			t.Fatalf("message %d arrived with seq %d", i, m.Seq)
		}
	}
	if s := b.Stats(); s.FramesReceived != 300 || s.Duplicates != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConcurrentSendersAllDelivered(t *testing.T) {
	a, b, _, _ := pipePair(t, tlink.Config{}, tlink.Config{}, nil, nil)
	ctx := testCtx(t)
	const senders, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				if err := a.Send(ctx, tlink.KindFinancialRequest, []byte(fmt.Sprintf("%d-%d", s, i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var got []string
	for range senders * each {
		m, err := b.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		got = append(got, string(m.Payload))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Send: %v", err)
	}
	slices.Sort(got)
	if len(slices.Compact(got)) != senders*each {
		t.Fatalf("got %d distinct messages, want %d", len(slices.Compact(got)), senders*each)
	}
}

// terminalLoop answers requests on e like a terminal would, until ctx ends.
// answer returns the response payload for a request, or nil to stay silent.
func terminalLoop(t *testing.T, e *tlink.Endpoint, answer func(tlink.Message) (tlink.Kind, []byte)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			m, err := e.Receive(ctx)
			if err != nil {
				return
			}
			if k, p := answer(m); p != nil {
				if err := e.Send(ctx, k, p); err != nil {
					return
				}
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func TestRequestMatchesResponseByRef(t *testing.T) {
	gw, term, _, _ := pipePair(t, tlink.Config{}, tlink.Config{}, nil, nil)
	ctx := testCtx(t)
	terminalLoop(t, term, func(m tlink.Message) (tlink.Kind, []byte) {
		var q tlink.RefOnly
		if m.Kind != tlink.KindStatusRequest || q.UnmarshalBinary(m.Payload) != nil {
			return 0, nil
		}
		// First a stale response with another ref, then the right one.
		stale := sampleStatus
		stale.Ref = "stale"
		_ = term.Send(ctx, tlink.KindStatusResponse, mustMarshal(t, &stale))
		st := sampleStatus
		st.Ref = q.Ref
		return tlink.KindStatusResponse, mustMarshal(t, &st)
	})
	resp, err := gw.Request(ctx, tlink.KindStatusRequest, mustMarshal(t, &tlink.RefOnly{Ref: "q-7"}))
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	var st tlink.Status
	if err := st.UnmarshalBinary(resp.Payload); err != nil || st.Ref != "q-7" || st.Model != sampleStatus.Model {
		t.Fatalf("response %+v, %v; want ref q-7", st, err)
	}
	// The stale response was not dropped: it waits in Receive.
	m, err := gw.Receive(ctx)
	if err != nil || m.Kind != tlink.KindStatusResponse {
		t.Fatalf("Receive = %v, %v; want the stale status response", m.Kind, err)
	}
	if _, err := gw.Request(ctx, tlink.KindDisplay, nil); !errors.Is(err, tlink.ErrNotRequest) {
		t.Fatalf("Request(display) = %v, want ErrNotRequest", err)
	}
}

func TestCorruptedFrameIsNakedAndRetransmitted(t *testing.T) {
	// The first data frame a writes has one payload byte changed on the
	// line; b must NAK it and a must retransmit at once (the ack timeout
	// is far longer than the test).
	corrupt := onFirst(isData, func(b []byte) []byte {
		i := bytes.IndexByte(b, 'h')
		b[i] = 'j'
		return b
	})
	cfg := tlink.Config{AckTimeout: 30 * time.Second, DuplicateWindow: 5 * time.Minute}
	a, b, _, fb := pipePair(t, cfg, cfg, corrupt, nil)
	ctx := testCtx(t)
	if err := a.Send(ctx, tlink.KindFinancialRequest, []byte("hello")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m, err := b.Receive(ctx)
	if err != nil || string(m.Payload) != "hello" {
		t.Fatalf("Receive = %q, %v", m.Payload, err)
	}
	if !slices.ContainsFunc(fb.wrote(), func(w []byte) bool { return bytes.Equal(w, []byte{tlink.NAK, 0}) }) {
		t.Fatal("receiver wrote no NAK for seq 0")
	}
	if s := a.Stats(); s.Retransmits != 1 || s.FramesSent != 2 {
		t.Fatalf("sender stats %+v, want 1 retransmission", s)
	}
	if s := b.Stats(); s.Dropped != 1 || s.FramesReceived != 1 {
		t.Fatalf("receiver stats %+v, want 1 dropped, 1 received", s)
	}
}

func TestLostAckRetransmitsAndDuplicateIsSuppressed(t *testing.T) {
	dropAck := onFirst(isAck, func([]byte) []byte { return nil })
	a, b, _, fb := pipePair(t, fastConfig(), fastConfig(), nil, dropAck)
	ctx := testCtx(t)
	if err := a.Send(ctx, tlink.KindFinancialRequest, []byte("once")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := a.Send(ctx, tlink.KindFinancialRequest, []byte("twice")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for _, want := range []string{"once", "twice"} {
		m, err := b.Receive(ctx)
		if err != nil || string(m.Payload) != want {
			t.Fatalf("Receive = %q, %v; want %q", m.Payload, err, want)
		}
	}
	if s := a.Stats(); s.Retransmits < 1 {
		t.Fatalf("sender stats %+v, want a retransmission", s)
	}
	if s := b.Stats(); s.Duplicates < 1 || s.FramesReceived != 2 {
		t.Fatalf("receiver stats %+v, want a duplicate and 2 deliveries", s)
	}
	acks := 0
	for _, w := range fb.wrote() {
		if bytes.Equal(w, []byte{tlink.ACK, 0}) {
			acks++
		}
	}
	if acks < 1 {
		t.Fatal("duplicate was not ACKed again")
	}
}

func TestRetryLimitGivesErrNoAck(t *testing.T) {
	ca, cb := net.Pipe()
	cfg := fastConfig()
	cfg.AckTimeout = 20 * time.Millisecond
	cfg.InterByteTimeout = 10 * time.Millisecond
	cfg.MaxRetries = 3
	e := tlink.New(ca, cfg)
	running(t, e)
	peer := newRawPeer(t, cb)
	err := e.Send(testCtx(t), tlink.KindFinancialRequest, []byte("anyone?"))
	if !errors.Is(err, tlink.ErrNoAck) {
		t.Fatalf("Send = %v, want ErrNoAck", err)
	}
	for i := range 4 {
		if f := peer.next(t, tlink.FrameData); f.Seq != 0 || string(f.Payload) != "anyone?" {
			t.Fatalf("transmission %d: seq %d", i, f.Seq)
		}
	}
	if s := e.Stats(); s.FramesSent != 4 || s.Retransmits != 3 {
		t.Fatalf("stats %+v, want 4 transmissions", s)
	}
}

func TestInterByteTimeoutDropsHalfFrame(t *testing.T) {
	ca, cb := net.Pipe()
	e := tlink.New(ca, fastConfig())
	running(t, e)
	peer := newRawPeer(t, cb)
	half := mustFrame(t, tlink.Frame{Type: tlink.FrameData, Seq: 9, Kind: tlink.KindFinancialRequest, Payload: []byte("truncated")})
	peer.write(t, half[:8])
	// Nothing else arrives: only the inter-byte timeout can end the frame,
	// and the endpoint NAKs it.
	if f := peer.next(t, tlink.FrameNak); f.Seq != 9 {
		t.Fatalf("NAK seq %d, want 9", f.Seq)
	}
	peer.write(t, mustFrame(t, tlink.Frame{Type: tlink.FrameData, Seq: 10, Kind: tlink.KindFinancialRequest, Payload: []byte("whole")}))
	if f := peer.next(t, tlink.FrameAck); f.Seq != 10 {
		t.Fatalf("ACK seq %d, want 10", f.Seq)
	}
	m, err := e.Receive(testCtx(t))
	if err != nil || string(m.Payload) != "whole" {
		t.Fatalf("Receive = %q, %v", m.Payload, err)
	}
	if s := e.Stats(); s.Dropped != 1 || s.FramesReceived != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFullReceiveQueueHoldsAckUntilDrained(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxRetries = 10
	cfgB := cfg
	cfgB.ReceiveQueue = 1
	a, b, _, _ := pipePair(t, cfg, cfgB, nil, nil)
	ctx := testCtx(t)
	if err := a.Send(ctx, tlink.KindFinancialRequest, []byte("1")); err != nil {
		t.Fatalf("Send 1: %v", err)
	}
	second := make(chan error, 1)
	go func() { second <- a.Send(ctx, tlink.KindFinancialRequest, []byte("2")) }()
	poll.Until(t, waitLimit, "receive queue overflow", func() bool { return b.Stats().Overflows > 0 })
	for _, want := range []string{"1", "2"} {
		m, err := b.Receive(ctx)
		if err != nil || string(m.Payload) != want {
			t.Fatalf("Receive = %q, %v; want %q", m.Payload, err, want)
		}
	}
	if err := <-second; err != nil {
		t.Fatalf("Send 2: %v", err)
	}
}

func TestLostResultRequiresLastTransaction(t *testing.T) {
	cfg := fastConfig()
	cfg.ResponseTimeout = 50 * time.Millisecond
	gw, term, _, _ := pipePair(t, cfg, tlink.Config{}, nil, nil)
	ctx := testCtx(t)

	var mu sync.Mutex
	var last *tlink.LastTxn // what the terminal reports
	sales := 0
	terminalLoop(t, term, func(m tlink.Message) (tlink.Kind, []byte) {
		mu.Lock()
		defer mu.Unlock()
		switch m.Kind {
		case tlink.KindSale:
			sales++
			var c tlink.TxnCommand
			if c.UnmarshalBinary(m.Payload) != nil {
				return 0, nil
			}
			r := tlink.TxnResult{Ref: c.Ref, Amount: c.Amount, Currency: c.Currency, Outcome: tlink.OutcomeApproved, ActionCode: "000"}
			last = &tlink.LastTxn{Command: tlink.KindSale, Txn: &r}
			if c.Ref == "S1" {
				return 0, nil // the result of the first sale is "lost"
			}
			return tlink.KindTxnResult, mustMarshal(t, &r)
		case tlink.KindLastTxnQuery:
			var q tlink.RefOnly
			_ = q.UnmarshalBinary(m.Payload)
			resp := tlink.LastTxn{Ref: q.Ref}
			if last != nil {
				resp.Command, resp.Txn = last.Command, last.Txn
			}
			return tlink.KindLastTxnResponse, mustMarshal(t, &resp)
		}
		return 0, nil
	})

	sale := func(ref string) []byte {
		return mustMarshal(t, &tlink.TxnCommand{Ref: ref, Amount: 1200, Currency: "392"})
	}
	if _, err := gw.Request(ctx, tlink.KindSale, sale("S1")); !errors.Is(err, tlink.ErrNoResponse) {
		t.Fatalf("Request S1 = %v, want ErrNoResponse", err)
	}
	if ref, ok := gw.Unresolved(); !ok || ref != "S1" {
		t.Fatalf("Unresolved = %q, %v; want S1", ref, ok)
	}
	// Neither resending S1 nor starting S2 is allowed before the query.
	for _, ref := range []string{"S1", "S2"} {
		if _, err := gw.Request(ctx, tlink.KindSale, sale(ref)); !errors.Is(err, tlink.ErrUnresolved) {
			t.Fatalf("Request %s = %v, want ErrUnresolved", ref, err)
		}
		if err := gw.Send(ctx, tlink.KindSale, sale(ref)); !errors.Is(err, tlink.ErrUnresolved) {
			t.Fatalf("Send %s = %v, want ErrUnresolved", ref, err)
		}
	}
	lt, err := gw.LastTransaction(ctx)
	if err != nil {
		t.Fatalf("LastTransaction: %v", err)
	}
	if lt.Txn == nil || lt.Txn.Ref != "S1" || lt.Txn.Outcome != tlink.OutcomeApproved || lt.Command != tlink.KindSale {
		t.Fatalf("LastTransaction = %+v, want approved sale S1", lt)
	}
	if _, ok := gw.Unresolved(); ok {
		t.Fatal("still unresolved after LastTransaction")
	}
	resp, err := gw.Request(ctx, tlink.KindSale, sale("S2"))
	if err != nil {
		t.Fatalf("Request S2: %v", err)
	}
	var r tlink.TxnResult
	if err := r.UnmarshalBinary(resp.Payload); err != nil || r.Ref != "S2" {
		t.Fatalf("S2 result %+v, %v", r, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sales != 2 {
		t.Fatalf("terminal saw %d sales, want 2 (S1 never resent)", sales)
	}
}

func TestPendingLastTransactionStaysUnresolved(t *testing.T) {
	cfg := fastConfig()
	cfg.ResponseTimeout = 50 * time.Millisecond
	gw, term, _, _ := pipePair(t, cfg, tlink.Config{}, nil, nil)
	ctx := testCtx(t)
	terminalLoop(t, term, func(m tlink.Message) (tlink.Kind, []byte) {
		if m.Kind != tlink.KindLastTxnQuery {
			return 0, nil // the sale is "in progress": no result
		}
		var q tlink.RefOnly
		_ = q.UnmarshalBinary(m.Payload)
		return tlink.KindLastTxnResponse, mustMarshal(t, &tlink.LastTxn{Ref: q.Ref, Command: tlink.KindSale,
			Txn: &tlink.TxnResult{Ref: "S1", Outcome: tlink.OutcomePending}})
	})
	if _, err := gw.Request(ctx, tlink.KindSale, mustMarshal(t, &tlink.TxnCommand{Ref: "S1", Amount: 1, Currency: "392"})); !errors.Is(err, tlink.ErrNoResponse) {
		t.Fatalf("Request = %v, want ErrNoResponse", err)
	}
	lt, err := gw.LastTransaction(ctx)
	if err != nil || lt.Txn == nil || lt.Txn.Outcome != tlink.OutcomePending {
		t.Fatalf("LastTransaction = %+v, %v", lt, err)
	}
	if ref, ok := gw.Unresolved(); !ok || ref != "S1" {
		t.Fatalf("Unresolved = %q, %v; want S1 while pending", ref, ok)
	}
}

func TestEndpointLifecycle(t *testing.T) {
	t.Run("run_twice", func(t *testing.T) {
		ca, _ := net.Pipe()
		e := tlink.New(ca, tlink.Config{})
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- e.Run(t.Context()) }()
		}
		if err := <-errs; !errors.Is(err, tlink.ErrRunning) {
			t.Fatalf("one Run = %v, want ErrRunning", err)
		}
		_ = e.Close()
		if err := <-errs; !errors.Is(err, tlink.ErrClosed) {
			t.Fatalf("other Run = %v, want ErrClosed", err)
		}
	})
	t.Run("close_before_run", func(t *testing.T) {
		ca, cb := net.Pipe()
		e := tlink.New(ca, tlink.Config{})
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.Run(t.Context()); !errors.Is(err, tlink.ErrClosed) {
			t.Fatalf("Run = %v, want ErrClosed", err)
		}
		if err := e.Send(t.Context(), tlink.KindStatusRequest, nil); !isClosed(err) {
			t.Fatalf("Send = %v, want ErrClosed", err)
		}
		if _, err := cb.Write([]byte{1}); err == nil {
			t.Fatal("transport still open after Close")
		}
	})
	t.Run("bad_config", func(t *testing.T) {
		ca, _ := net.Pipe()
		e := tlink.New(ca, tlink.Config{MaxRetries: 99})
		if err := e.Run(t.Context()); !errors.Is(err, tlink.ErrConfig) {
			t.Fatalf("Run = %v, want ErrConfig", err)
		}
		if _, err := e.Receive(t.Context()); !isClosed(err) || !errors.Is(err, tlink.ErrConfig) {
			t.Fatalf("Receive = %v, want ErrClosed wrapping ErrConfig", err)
		}
	})
	t.Run("context_cancel_stops_run", func(t *testing.T) {
		ca, _ := net.Pipe()
		e := tlink.New(ca, tlink.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		if err := e.Send(t.Context(), tlink.KindStatusRequest, nil); !isClosed(err) {
			t.Fatalf("Send = %v", err)
		}
	})
	t.Run("payload_over_limit", func(t *testing.T) {
		ca, _ := net.Pipe()
		e := tlink.New(ca, tlink.Config{MaxPayload: 4})
		running(t, e)
		if err := e.Send(t.Context(), tlink.KindFinancialRequest, []byte("12345")); !errors.Is(err, tlink.ErrTooLong) {
			t.Fatalf("Send = %v, want ErrTooLong", err)
		}
	})
	t.Run("peer_disconnect_fails_pending_calls", func(t *testing.T) {
		ca, cb := net.Pipe()
		e := tlink.New(ca, tlink.Config{AckTimeout: 30 * time.Second, DuplicateWindow: 5 * time.Minute})
		done := running(t, e)
		peer := newRawPeer(t, cb)
		sendErr := make(chan error, 1)
		go func() { sendErr <- e.Send(t.Context(), tlink.KindFinancialRequest, []byte("x")) }()
		peer.next(t, tlink.FrameData)
		_ = cb.Close()
		if err := <-sendErr; !isClosed(err) {
			t.Fatalf("Send = %v, want ErrClosed", err)
		}
		if err := done(); err == nil || isClosed(err) {
			t.Fatalf("Run = %v, want the transport error", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  tlink.Config
		keys []string
	}{
		{"defaults", tlink.Config{}, nil},
		{"ack_too_short", tlink.Config{AckTimeout: time.Millisecond}, []string{"ack_timeout"}},
		{"inter_byte_not_below_ack", tlink.Config{AckTimeout: 50 * time.Millisecond, InterByteTimeout: 50 * time.Millisecond}, []string{"inter_byte_timeout"}},
		{"negative_response", tlink.Config{ResponseTimeout: -1}, []string{"response_timeout"}},
		{"retries_too_many", tlink.Config{MaxRetries: 11}, []string{"max_retries"}},
		{"payload_too_big", tlink.Config{MaxPayload: 70000}, []string{"max_payload"}},
		{"negative_bit_rate", tlink.Config{BitRate: -9600}, []string{"bit_rate"}},
		{"window_too_short", tlink.Config{DuplicateWindow: time.Second}, []string{"duplicate_window"}},
		{"queue_too_long", tlink.Config{ReceiveQueue: 5000}, []string{"receive_queue"}},
		{"several", tlink.Config{MaxRetries: -1, ReceiveQueue: -1}, []string{"max_retries = -1", "receive_queue = -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (len(tt.keys) == 0) {
				t.Fatalf("Validate = %v, want errors for %v", err, tt.keys)
			}
			if err != nil && !errors.Is(err, tlink.ErrConfig) {
				t.Fatalf("Validate = %v, does not wrap ErrConfig", err)
			}
			for _, k := range tt.keys {
				if !bytes.Contains([]byte(err.Error()), []byte(k)) {
					t.Fatalf("Validate = %v, does not name %q", err, k)
				}
			}
		})
	}
}
