package device_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/posgate/posgate/internal/poll"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/ptytest"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// sink collects the signatures the manager hands over.
type sink struct {
	mu   sync.Mutex
	got  []device.Signature
	fail error
}

func (s *sink) Accept(_ context.Context, sig device.Signature) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, sig)
	return nil
}

func (s *sink) all() []device.Signature {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]device.Signature(nil), s.got...)
}

// rawTerminal is the terminal side of the link, driven step by step by the
// test: it answers status polls and hands financial responses to fin.
type rawTerminal struct {
	ep  *tlink.Endpoint
	fin chan []byte
}

func (r *rawTerminal) serve(ctx context.Context) {
	for {
		m, err := r.ep.Receive(ctx)
		if err != nil {
			return
		}
		switch m.Kind {
		case tlink.KindStatusRequest:
			var q tlink.RefOnly
			q.UnmarshalBinary(m.Payload)
			p, _ := (&tlink.Status{Ref: q.Ref, DeviceKind: 1, State: tlink.StateIdle, Serial: "SIG0001", Protocol: tlink.ProtocolVersion}).MarshalBinary()
			r.ep.Send(ctx, tlink.KindStatusResponse, p)
		case tlink.KindFinancialResponse:
			r.fin <- m.Payload
		}
	}
}

// sale sends a 1200 with this STAN and waits for its answer.
func (r *rawTerminal) sale(t *testing.T, stan string) {
	t.Helper()
	req := iso93.FinancialRequest{
		Trace: iso93.Trace{TransmissionTime: "0101120000", STAN: stan, LocalTime: "260101120000",
			FunctionCode: iso93.FunctionOriginalFinancial, AcquirerID: "99000001", TerminalID: "T0000009",
			MerchantID: "MERCHANT0000001", IdempotencyKey: "T0000009-key-" + stan},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 500, POSDataCode: "510101213001", Currency: "392"},
		Card: iso93.Card{CardData: bytes.Repeat([]byte{0xAA}, 48), KSN: bytes.Repeat([]byte{0x01}, 12),
			Fingerprint: "00112233445566778899aabbccddeeff", MaskedPAN: "411111******1111"},
	}
	raw, err := iso93.Pack(&req, iso93.MTIFinancialRequest)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.ep.Send(ctx, tlink.KindFinancialRequest, raw); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.fin:
	case <-ctx.Done():
		t.Fatal("no financial response")
	}
}

// advice sends a 1220 with function code 201 and this STAN, as a terminal
// does after a chip card approved a sale offline (DE 38 the offline
// approval code); with original set it is a completion advice instead
// (DE 56 names a pre-authorization). It waits for the 1230.
func (r *rawTerminal) advice(t *testing.T, stan string, original bool) {
	t.Helper()
	adv := iso93.Advice{
		Trace: iso93.Trace{TransmissionTime: "0101120000", STAN: stan, LocalTime: "260101120000",
			FunctionCode: iso93.FunctionPreviousApproval, ReasonCode: "1005", AcquirerID: "99000001", TerminalID: "T0000009",
			MerchantID: "MERCHANT0000001", IdempotencyKey: "T0000009-key-" + stan},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 500, POSDataCode: "510101213001", Currency: "392"},
		Card: iso93.Card{CardData: bytes.Repeat([]byte{0xAA}, 48), KSN: bytes.Repeat([]byte{0x01}, 12),
			Fingerprint: "00112233445566778899aabbccddeeff", MaskedPAN: "411111******1111"},
		ApprovalCode: "Y1" + stan[2:],
	}
	msg := iso93.NewMessage(iso93.MTIAdvice)
	if err := msg.Marshal(&adv); err != nil {
		t.Fatal(err)
	}
	if original {
		od, err := iso93.OriginalData{MTI: iso93.MTIAuthorizationRequest, STAN: "000001", LocalTime: "260101115900", AcquirerID: "99000001"}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := msg.Field(iso93.FieldOriginalData, od); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := iso93.PackMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.ep.Send(ctx, tlink.KindFinancialRequest, raw); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.fin:
	case <-ctx.Done():
		t.Fatal("no advice response")
	}
}

// chunk sends one signature chunk and returns the gateway's ack.
func (r *rawTerminal) chunk(t *testing.T, stan string, off, total uint32, data []byte) tlink.SignatureAck {
	t.Helper()
	p, err := (&tlink.Signature{Ref: "S1", STAN: stan, Format: tlink.SignatureSignpadV1, Offset: off, Total: total, Data: data}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := r.ep.Request(ctx, tlink.KindSignature, p)
	if err != nil {
		t.Fatalf("signature chunk at %d: %v", off, err)
	}
	var a tlink.SignatureAck
	if err := a.UnmarshalBinary(m.Payload); err != nil {
		t.Fatal(err)
	}
	return a
}

// sigRig is a manager with one device on a pty, the raw terminal on the
// other side, a sink and a clock the test moves.
func sigRig(t *testing.T, s *sink) (*rawTerminal, *atomic.Int64) {
	t.Helper()
	master, slave := ptytest.Open(t)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	m, err := device.New(device.Config{
		Devices:    []device.DeviceConfig{{ID: "T9", DeviceConfig: transport.DeviceConfig{Medium: transport.Serial, Path: slave}}},
		Handler:    forwarder(),
		Signatures: s,
		Logger:     quiet(),
		Now:        func() time.Time { return time.Unix(0, clock.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rawTerminal{ep: tlink.New(master, tlink.Config{}), fin: make(chan []byte, 1)}
	var wg sync.WaitGroup
	wg.Go(func() { r.ep.Run(ctx) })
	wg.Go(func() { r.serve(ctx) })
	t.Cleanup(func() {
		cancel()
		r.ep.Close()
		wg.Wait()
	})
	start(t, m)
	poll.Until(t, waitLimit, "T9 up", connected(m, "T9"))
	return r, &clock
}

func TestSignatureReassembly(t *testing.T) {
	sig := bytes.Repeat([]byte("SG\x01signature-bytes-"), 70) // 1330 bytes
	total := uint32(len(sig))
	type step struct {
		stan      string
		off, end  uint32
		advance   time.Duration // clock moved before the chunk
		status    tlink.SignatureStatus
		next      uint32
		wantSaved bool
	}
	tests := []struct {
		name  string
		steps []step
		fail  error
		saved int
	}{
		{"in_order", []step{
			{"000007", 0, 512, 0, tlink.SignatureOK, 512, false},
			{"000007", 512, 1024, 0, tlink.SignatureOK, 1024, false},
			{"000007", 1024, total, 0, tlink.SignatureComplete, total, true},
		}, nil, 1},
		{"repeat_after_lost_ack", []step{
			{"000007", 0, 512, 0, tlink.SignatureOK, 512, false},
			{"000007", 0, 512, 0, tlink.SignatureOK, 512, false},
			{"000007", 512, total, 0, tlink.SignatureComplete, total, true},
			{"000007", 512, total, 0, tlink.SignatureComplete, total, true},
		}, nil, 1},
		{"gap_asks_resend", []step{
			{"000007", 0, 512, 0, tlink.SignatureOK, 512, false},
			{"000007", 1024, total, 0, tlink.SignatureResend, 512, false},
			{"000007", 512, total, 0, tlink.SignatureComplete, total, true},
		}, nil, 1},
		{"no_start_asks_from_zero", []step{
			{"000007", 512, 1024, 0, tlink.SignatureResend, 0, false},
		}, nil, 0},
		{"unknown_stan_taken_unlinked", []step{
			{"000099", 0, 512, 0, tlink.SignatureOK, 512, false},
		}, nil, 0},
		{"expired_partial_restarts", []step{
			{"000007", 0, 512, 0, tlink.SignatureOK, 512, false},
			{"000007", 512, 1024, device.SignatureTimeout + time.Second, tlink.SignatureResend, 0, false},
			{"000007", 0, total, 0, tlink.SignatureComplete, total, true},
		}, nil, 1},
		{"sink_refuses", []step{
			{"000007", 0, total, 0, tlink.SignatureRefused, total, false},
		}, errors.New("queue full"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{fail: tt.fail}
			r, clock := sigRig(t, s)
			r.sale(t, "000007")
			for i, st := range tt.steps {
				clock.Add(int64(st.advance))
				a := r.chunk(t, st.stan, st.off, total, sig[st.off:st.end])
				if a.Ref != "S1" || a.Status != st.status || a.NextOffset != st.next {
					t.Fatalf("step %d: ack %+v, want status %d next %d", i, a, st.status, st.next)
				}
			}
			got := s.all()
			if len(got) != tt.saved {
				t.Fatalf("sink got %d signatures, want %d", len(got), tt.saved)
			}
			if tt.saved == 0 {
				return
			}
			g := got[0]
			want := device.Signature{DeviceID: "T9", Ref: "S1", MTI: "1200", TerminalID: "T0000009", STAN: "000007",
				LocalTime: "260101120000", IdempotencyKey: "T0000009-key-000007", Format: tlink.SignatureSignpadV1}
			data := g.Data
			g.Data = nil
			if !equalSig(g, want) || !bytes.Equal(data, sig) {
				t.Fatalf("sink got %+v (%d bytes), want %+v (%d bytes)", g, len(data), want, len(sig))
			}
		})
	}
}

func equalSig(a, b device.Signature) bool {
	a.Data, b.Data = nil, nil
	return a.DeviceID == b.DeviceID && a.Ref == b.Ref && a.MTI == b.MTI && a.TerminalID == b.TerminalID &&
		a.STAN == b.STAN && a.LocalTime == b.LocalTime && a.IdempotencyKey == b.IdempotencyKey && a.Format == b.Format
}

// TestSignatureOfOfflineAdvice links a signature to the 1220 a terminal
// sent for a sale its chip card approved offline (function code 201, no
// DE 56): the sink gets it with the advice's MTI and identifiers. A
// completion advice (DE 56) is no sale of its own: a signature naming its
// STAN is refused.
func TestSignatureOfOfflineAdvice(t *testing.T) {
	sig := append([]byte("SG\x01"), bytes.Repeat([]byte("offline-sale-signature-"), 20)...)
	total := uint32(len(sig))
	t.Run("offline_approval_advice_accepted", func(t *testing.T) {
		s := &sink{}
		r, _ := sigRig(t, s)
		r.advice(t, "000031", false)
		if a := r.chunk(t, "000031", 0, total, sig); a.Status != tlink.SignatureComplete || a.NextOffset != total {
			t.Fatalf("ack %+v, want complete", a)
		}
		got := s.all()
		want := device.Signature{DeviceID: "T9", Ref: "S1", MTI: "1220", TerminalID: "T0000009", STAN: "000031",
			LocalTime: "260101120000", IdempotencyKey: "T0000009-key-000031", Format: tlink.SignatureSignpadV1}
		if len(got) != 1 || !equalSig(got[0], want) || !bytes.Equal(got[0].Data, sig) {
			t.Fatalf("sink got %+v, want %+v", got, want)
		}
	})
	t.Run("completion_advice_not_linked", func(t *testing.T) {
		s := &sink{}
		r, _ := sigRig(t, s)
		r.advice(t, "000032", true)
		// Held for a sale with that STAN, which the completion is not.
		if a := r.chunk(t, "000032", 0, total, sig); a.Status != tlink.SignatureComplete {
			t.Fatalf("ack %+v, want complete (held)", a)
		}
		r.advice(t, "000032", true) // the completion again: still not a sale
		if got := s.all(); len(got) != 0 {
			t.Fatalf("sink got %d signatures, want none", len(got))
		}
	})
}

// TestSignatureHeldUntilItsSale sends a whole signature before its sale's
// message, as a terminal whose advice queue sends the 1220 after the
// signature does: it is answered complete and held; the advice with its
// STAN then links it and the sink gets it. A held signature whose sale
// does not come within SignatureHold is dropped, and at most 8 wait per
// device.
func TestSignatureHeldUntilItsSale(t *testing.T) {
	sig := append([]byte("SG\x01"), bytes.Repeat([]byte("held-signature-"), 60)...)
	total := uint32(len(sig))
	send := func(t *testing.T, r *rawTerminal, stan string) tlink.SignatureAck {
		t.Helper()
		var a tlink.SignatureAck
		for off := uint32(0); off < total; off = a.NextOffset {
			a = r.chunk(t, stan, off, total, sig[off:min(off+512, total)])
			if a.Status != tlink.SignatureOK {
				return a
			}
		}
		return a
	}
	t.Run("linked_when_the_advice_arrives", func(t *testing.T) {
		s := &sink{}
		r, _ := sigRig(t, s)
		if a := send(t, r, "000041"); a.Status != tlink.SignatureComplete || a.NextOffset != total {
			t.Fatalf("ack %+v, want complete", a)
		}
		if got := s.all(); len(got) != 0 {
			t.Fatalf("sink got %d signatures before their sale", len(got))
		}
		r.advice(t, "000041", false)
		poll.Until(t, waitLimit, "the held signature delivered", func() bool { return len(s.all()) == 1 })
		want := device.Signature{DeviceID: "T9", Ref: "S1", MTI: "1220", TerminalID: "T0000009", STAN: "000041",
			LocalTime: "260101120000", IdempotencyKey: "T0000009-key-000041", Format: tlink.SignatureSignpadV1}
		if got := s.all()[0]; !equalSig(got, want) || !bytes.Equal(got.Data, sig) {
			t.Fatalf("sink got %+v, want %+v", got, want)
		}
	})
	t.Run("dropped_after_the_hold", func(t *testing.T) {
		s := &sink{}
		r, clock := sigRig(t, s)
		if a := send(t, r, "000042"); a.Status != tlink.SignatureComplete {
			t.Fatalf("ack %+v, want complete", a)
		}
		clock.Add(int64(device.SignatureHold + time.Second))
		r.advice(t, "000042", false)
		r.sale(t, "000043") // a later message: nothing released
		if got := s.all(); len(got) != 0 {
			t.Fatalf("sink got %d signatures after the hold ran out", len(got))
		}
	})
	t.Run("at_most_eight_wait", func(t *testing.T) {
		s := &sink{}
		r, _ := sigRig(t, s)
		for i := range 8 {
			if a := send(t, r, fmt.Sprintf("%06d", 100+i)); a.Status != tlink.SignatureComplete {
				t.Fatalf("signature %d: ack %+v, want complete", i, a)
			}
		}
		if a := send(t, r, "000200"); a.Status != tlink.SignatureRefused {
			t.Fatalf("ninth waiting signature: ack %+v, want refused", a)
		}
		r.sale(t, "000103")
		poll.Until(t, waitLimit, "the held signature of STAN 000103", func() bool { return len(s.all()) == 1 })
		if got := s.all()[0]; got.STAN != "000103" || got.MTI != "1200" {
			t.Fatalf("sink got %+v", got)
		}
	})
}
