package gateway

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/sigcap"
	"github.com/posgate/posgate/terminal/tlink"
)

// sigCenter answers 1304 SIGCAP with the next action of its script (000
// once the script is used up) and records the records it took.
type sigCenter struct {
	mu      sync.Mutex
	script  []any // iso93.ActionCode or error
	records []sigcap.Chunk
	keys    []string
	calls   int
}

func (c *sigCenter) RoundTrip(_ context.Context, req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	var fa iso93.FileAction
	mti, msg, err := iso93.Unpack(req)
	if err != nil || mti != iso93.MTIFileAction || msg.Unmarshal(&fa) != nil || fa.FileName != sigcap.FileName || fa.FunctionCode != iso93.FunctionAddRecord {
		return nil, errors.New("not a SIGCAP 1304")
	}
	if err := iso93.Validate(msg); err != nil {
		return nil, err
	}
	action := iso93.ActionApproved
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
	if action == iso93.ActionApproved {
		rec, err := sigcap.Parse(fa.DataRecord)
		if err != nil {
			return nil, err
		}
		c.records = append(c.records, rec)
		c.keys = append(c.keys, fa.IdempotencyKey)
	}
	resp, err := iso93.NewResponse(msg, action)
	if err != nil {
		return nil, err
	}
	resp.Field(iso93.FieldFileName, sigcap.FileName)
	return iso93.PackMessage(resp)
}

func TestSignatureQueue(t *testing.T) {
	data := bytes.Repeat([]byte("SG\x01abc"), 300) // 1800 bytes: 3 records
	sig := device.Signature{DeviceID: "T1", Ref: "S1", MTI: "1200", TerminalID: "T0000042", STAN: "000007",
		LocalTime: "260101120000", IdempotencyKey: "T0000042-abc-0001", Format: tlink.SignatureSignpadV1, Data: data}
	tests := []struct {
		name      string
		script    []any
		delivered uint64
		records   int
	}{
		{"delivered_in_three_records", nil, 1, 3},
		{"link_error_retried", []any{errors.New("link down"), iso93.ActionApproved, errors.New("link down")}, 1, 3},
		{"unknown_sale_retried", []any{iso93.ActionOriginalNotFound}, 1, 3},
		{"malformed_dropped", []any{iso93.ActionFormatError}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &sigCenter{script: tt.script}
			q := &SignatureQueue{Uplink: c, GatewayID: "GW1", Retry: time.Millisecond, RetryMax: time.Millisecond}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { q.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			if err := q.Accept(ctx, sig); err != nil {
				t.Fatal(err)
			}
			deadline := time.After(10 * time.Second)
			for q.Len() > 0 {
				select {
				case <-deadline:
					t.Fatal("queue never emptied")
				case <-time.After(time.Millisecond):
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if q.Delivered() != tt.delivered || len(c.records) != tt.records {
				t.Fatalf("delivered %d with %d records, want %d with %d", q.Delivered(), len(c.records), tt.delivered, tt.records)
			}
			var back []byte
			for i, r := range c.records {
				if r.TerminalID != sig.TerminalID || r.STAN != sig.STAN || r.LocalTime != sig.LocalTime || r.IdempotencyKey != sig.IdempotencyKey || int(r.Total) != len(data) {
					t.Fatalf("record %d identifies %+v", i, r)
				}
				back = append(back, r.Data...)
			}
			if tt.records > 0 && !bytes.Equal(back, data) {
				t.Fatal("records do not rebuild the signature")
			}
			if len(c.keys) > 1 && c.keys[0] == c.keys[1] {
				t.Fatal("two chunks share a DE 123")
			}
		})
	}
}

func TestSignatureQueueRefuses(t *testing.T) {
	tests := []struct {
		name string
		max  int
		sig  device.Signature
		want error
	}{
		{"no_idempotency_key", 0, device.Signature{TerminalID: "T1", STAN: "000001", LocalTime: "260101120000", Format: 1, Data: []byte{1}}, sigcap.ErrRecord},
		{"too_big", 0, device.Signature{TerminalID: "T1", STAN: "000001", LocalTime: "260101120000", IdempotencyKey: "k", Format: 1, Data: make([]byte, sigcap.MaxTotal+1)}, sigcap.ErrRecord},
		{"full", 1, device.Signature{TerminalID: "T1", STAN: "000001", LocalTime: "260101120000", IdempotencyKey: "k", Format: 1, Data: []byte{1}}, ErrSignatureQueueFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &SignatureQueue{MaxQueued: tt.max}
			if tt.max > 0 {
				for range tt.max {
					if err := q.Accept(context.Background(), tt.sig); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := q.Accept(context.Background(), tt.sig); !errors.Is(err, tt.want) {
				t.Fatalf("Accept = %v, want %v", err, tt.want)
			}
		})
	}
}

// adviceSigCenter is a center for an offline chip sale: it takes 1220/1221
// advices (recording their keys) and 1304 SIGCAP records, which it answers
// 914 until the advice of the record's sale has arrived, as
// cloud/center's SignatureServer does. While down, every request fails
// with link.ErrLinkDown.
type adviceSigCenter struct {
	mu       sync.Mutex
	down     bool
	advices  map[string]bool
	sigCalls int // 1304s answered
	sigDown  int // 1304s refused while down
	records  []sigcap.Chunk
}

func (c *adviceSigCenter) RoundTrip(_ context.Context, req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		if string(req[:4]) == iso93.MTIFileAction {
			c.sigDown++
		}
		return nil, link.ErrLinkDown
	}
	mti, msg, err := iso93.Unpack(req)
	if err != nil {
		return nil, err
	}
	action := iso93.ActionApproved
	switch mti {
	case iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		var a iso93.Advice
		if err := msg.Unmarshal(&a); err != nil {
			return nil, err
		}
		c.advices[a.IdempotencyKey] = true
	case iso93.MTIFileAction:
		c.sigCalls++
		var fa iso93.FileAction
		if err := msg.Unmarshal(&fa); err != nil {
			return nil, err
		}
		rec, err := sigcap.Parse(fa.DataRecord)
		if err != nil {
			return nil, err
		}
		if !c.advices[rec.IdempotencyKey] {
			action = iso93.ActionOriginalNotFound
		} else {
			c.records = append(c.records, rec)
		}
	default:
		return nil, errors.New("unexpected " + mti)
	}
	resp, err := iso93.NewResponse(msg, action)
	if err != nil {
		return nil, err
	}
	if mti == iso93.MTIFileAction {
		resp.Field(iso93.FieldFileName, sigcap.FileName)
	}
	return iso93.PackMessage(resp)
}

func (c *adviceSigCenter) set(down bool) {
	c.mu.Lock()
	c.down = down
	c.mu.Unlock()
}

// TestOfflineSaleSignatureDeliveredAfterAdvice takes an offline chip
// sale's advice and its signature while the center is down: the advice is
// stored and answered 000, the signature queued. When the center comes
// back the advice goes up first; the signature, refused 914 until then
// and waiting out a retry interval far longer than the test, is retried at
// once because the advice pass wakes the signature queue
// (retrySignaturesAfterAdvices), and is delivered linked to the advice's
// key, terminal, STAN and local time.
func TestOfflineSaleSignatureDeliveredAfterAdvice(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	center := &adviceSigCenter{down: true, advices: map[string]bool{}}
	f := &Forwarder{Uplink: center, Logger: quiet(), Advices: st}
	raw := terminalAdvice(t, "000077", nil)
	resp, err := f.Handle(t.Context(), raw)
	if err != nil || actionOf(t, resp) != "000" {
		t.Fatalf("advice answered %v", err)
	}

	sigq := &SignatureQueue{Uplink: center, GatewayID: "GW1", Retry: time.Hour, RetryMax: time.Hour}
	adv := &AdviceForwarder{Queue: st.Queue(), Uplink: center, Window: 4, Rate: 10_000, Poll: 5 * time.Millisecond, Logger: quiet()}
	retrySignaturesAfterAdvices(adv, sigq)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sigq.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	data := bytes.Repeat([]byte("SG\x01offline"), 100)
	sig := device.Signature{DeviceID: "T1", Ref: "S1", MTI: "1220", TerminalID: "T0000001", STAN: "000077",
		LocalTime: "261124120000", IdempotencyKey: "T0000001-000077", Format: tlink.SignatureSignpadV1, Data: data}
	if err := sigq.Accept(ctx, sig); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the signature's first try", func() bool {
		center.mu.Lock()
		defer center.mu.Unlock()
		return center.sigDown == 1 // tried while the link was down; the next try is an hour away
	})
	center.set(false)
	wg.Go(func() { adv.Run(ctx, nil) })
	waitUntil(t, "the signature delivered", func() bool { return sigq.Delivered() == 1 })

	center.mu.Lock()
	defer center.mu.Unlock()
	var back []byte
	for _, r := range center.records {
		if r.TerminalID != "T0000001" || r.STAN != "000077" || r.LocalTime != "261124120000" || r.IdempotencyKey != "T0000001-000077" {
			t.Fatalf("signature record names %+v", r)
		}
		back = append(back, r.Data...)
	}
	if !bytes.Equal(back, data) || !center.advices["T0000001-000077"] {
		t.Fatalf("center holds %d signature bytes and advice %v", len(back), center.advices)
	}
	if s, _ := st.Queue().Stats(); s.Accepted.Count != 1 {
		t.Fatalf("queue %+v: the advice was not accepted", s)
	}
}

// waitUntil polls cond every millisecond, failing after 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}
