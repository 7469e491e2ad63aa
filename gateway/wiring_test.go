package gateway

import (
	"bytes"
	"context"
	"errors"
	"github.com/posgate/posgate/internal/poll"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/gateway/advice"
	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	"github.com/posgate/posgate/gateway/outbox"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/sigcap"
	"github.com/posgate/posgate/terminal/tlink"
)

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
	st := gatewaytest.OpenStore(t, true, standin.Policy{})
	center := &adviceSigCenter{down: true, advices: map[string]bool{}}
	f := &forward.Forwarder{Uplink: center, Logger: gatewaytest.Quiet(), Advices: st}
	raw := gatewaytest.TerminalAdvice(t, "000077", nil)
	resp, err := f.Handle(t.Context(), raw)
	if err != nil || gatewaytest.ActionOf(t, resp) != "000" {
		t.Fatalf("advice answered %v", err)
	}

	sigq := &outbox.SignatureQueue{Uplink: center, GatewayID: "GW1", Retry: time.Hour, RetryMax: time.Hour}
	adv := &advice.Forwarder{Queue: st.Queue(), Uplink: center, Window: 4, Rate: 10_000, Poll: 5 * time.Millisecond, Logger: gatewaytest.Quiet()}
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
	// The store is a real bbolt file, which cannot live in a
	// testing/synctest bubble: bounded waits on conditions.
	poll.Until(t, gatewaytest.WaitLimit, "the signature's first try", func() bool {
		center.mu.Lock()
		defer center.mu.Unlock()
		return center.sigDown == 1 // tried while the link was down; the next try is an hour away
	})
	center.set(false)
	wg.Go(func() { adv.Run(ctx, nil) })
	poll.Until(t, gatewaytest.WaitLimit, "the signature delivered", func() bool { return sigq.Delivered() == 1 })

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
