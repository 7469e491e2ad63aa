package outbox

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/protocol/iso93"
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
			synctest.Test(t, func(t *testing.T) {
				c := &sigCenter{script: tt.script}
				q := &SignatureQueue{Uplink: c, GatewayID: "GW1", Retry: time.Millisecond, RetryMax: time.Millisecond}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { q.Run(ctx); close(done) }()
				defer func() { cancel(); <-done }()
				if err := q.Accept(ctx, sig); err != nil {
					t.Fatal(err)
				}
				// The bubble's clock moves only while every goroutine waits: a
				// fake minute covers every retry wait of the script.
				time.Sleep(time.Minute)
				synctest.Wait()
				if q.Len() > 0 {
					t.Fatal("queue never emptied")
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
				reg := prometheus.NewRegistry()
				if err := RegisterSignatures(reg, q); err != nil {
					t.Fatal(err)
				}
				want := map[string]float64{"posgate_signatures_queued": 0, "posgate_signatures_accepted_total": 1,
					"posgate_signatures_delivered_total": float64(tt.delivered)}
				if got := gathered(t, reg); !maps.Equal(got, want) {
					t.Fatalf("metrics %v, want %v", got, want)
				}
			})
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

// gathered returns the value of every unlabelled gauge and counter in reg.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}
