package forward

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posgate/posgate/gateway/outbox"
	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

func TestForwarderAnswers(t *testing.T) {
	tests := []struct {
		name   string
		uplink uplinkFunc
		want   string
	}{
		{"approved_by_center", approve, "000"},
		{"link_down_not_sent", func(context.Context, []byte) ([]byte, error) { return nil, link.ErrLinkDown }, "907"},
		{"not_enrolled", func(context.Context, []byte) ([]byte, error) { return nil, ErrNotEnrolled }, "907"},
		{"outcome_unknown", func(context.Context, []byte) ([]byte, error) {
			return nil, errors.Join(link.ErrStream, link.ErrOutcomeUnknown)
		}, "911"},
		{"center_answers_garbage", func(context.Context, []byte) ([]byte, error) { return []byte("nonsense"), nil }, "909"},
		{"center_answers_other_stan", func(ctx context.Context, req []byte) ([]byte, error) {
			return approve(ctx, sale(t, "999999"))
		}, "909"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Forwarder{Uplink: tt.uplink, Logger: quiet(), Metrics: NewMetrics()}
			resp, err := f.Handle(t.Context(), sale(t, "000042"))
			if err != nil {
				t.Fatal(err)
			}
			if got := actionOf(t, resp); got != tt.want {
				t.Fatalf("action %s, want %s", got, tt.want)
			}
		})
	}
}

func TestForwarderMalformed(t *testing.T) {
	f := &Forwarder{Uplink: uplinkFunc(approve), Logger: quiet()}
	// Not a message at all: no answer can be built; the caller closes.
	if _, err := f.Handle(t.Context(), []byte("garbage!")); err == nil {
		t.Fatal("garbage was answered")
	}
	// A 1200 without its mandatory fields is the center's to refuse (904):
	// the gateway forwards it byte for byte, without repacking.
	var forwarded []byte
	f.Uplink = uplinkFunc(func(ctx context.Context, req []byte) ([]byte, error) {
		forwarded = bytes.Clone(req)
		return approve(ctx, req)
	})
	msg := iso93.NewMessage(iso93.MTIFinancialRequest)
	if err := msg.Field(iso93.FieldSTAN, "000001"); err != nil {
		t.Fatal(err)
	}
	if err := msg.Field(iso93.FieldTerminalID, "T0000001"); err != nil {
		t.Fatal(err)
	}
	raw, err := iso93.PackMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.Handle(t.Context(), raw)
	if err != nil {
		t.Fatalf("incomplete 1200 not answered: %v", err)
	}
	if !bytes.Equal(forwarded, raw) {
		t.Fatal("the gateway changed the message it forwarded")
	}
	if got := actionOf(t, resp); got != "000" {
		t.Fatalf("action %s, want the center's answer", got)
	}
}

// TestForwarderDuplicateInFlight holds one request at the uplink and sends
// the same class, terminal and STAN again: the second gets 913 at once.
func TestForwarderDuplicateInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	f := &Forwarder{Logger: quiet(), Uplink: uplinkFunc(func(ctx context.Context, req []byte) ([]byte, error) {
		close(entered)
		<-release
		return approve(ctx, req)
	})}
	raw := sale(t, "000007")
	var wg sync.WaitGroup
	var first []byte
	wg.Go(func() {
		var err error
		first, err = f.Handle(t.Context(), raw)
		if err != nil {
			t.Error(err)
		}
	})
	<-entered
	second, err := f.Handle(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := actionOf(t, second); got != "913" {
		t.Fatalf("duplicate answered %s, want 913", got)
	}
	close(release)
	wg.Wait()
	if got := actionOf(t, first); got != "000" {
		t.Fatalf("original answered %s, want 000", got)
	}
	// The key is free again once the first completed.
	f.Uplink = uplinkFunc(approve)
	again, err := f.Handle(t.Context(), raw)
	if err != nil || actionOf(t, again) != "000" {
		t.Fatalf("after completion: %v", err)
	}
}

// TestReverserSendsTimeoutReversal checks that an unknown outcome queues a
// 1420 naming the original, repeated as 1421 until answered.
func TestReverserSendsTimeoutReversal(t *testing.T) {
	// In a synctest bubble the 1ms retry wait passes on the fake clock.
	synctest.Test(t, func(t *testing.T) {
		got := make(chan string, 4)
		calls := 0
		up := uplinkFunc(func(ctx context.Context, req []byte) ([]byte, error) {
			h, err := iso93.Peek(req)
			if err != nil {
				t.Errorf("reversal unreadable: %v", err)
				return nil, err
			}
			got <- h.MTI
			calls++
			if calls == 1 {
				return nil, link.ErrLinkDown
			}
			var rev iso93.Reversal
			if err := iso93.UnpackInto(req, &rev); err != nil {
				t.Errorf("reversal: %v", err)
				return nil, err
			}
			od, err := iso93.ParseOriginalData(rev.OriginalData)
			if err != nil || od.MTI != "1200" || od.STAN != "000042" {
				t.Errorf("reversal names %+v (%v), want the 1200 with STAN 000042", od, err)
			}
			if rev.IdempotencyKey != "T0000001-000042-R" {
				t.Errorf("reversal idempotency key %q", rev.IdempotencyKey)
			}
			return iso93.Pack(rev.Response(iso93.ActionReversalAccepted), iso93.MTIReversalResponse)
		})
		r := &outbox.Reverser{Uplink: up, Logger: quiet(), RetryMin: time.Millisecond, RetryMax: time.Millisecond}
		f := &Forwarder{Logger: quiet(), Reverser: r, Uplink: uplinkFunc(func(context.Context, []byte) ([]byte, error) {
			return nil, errors.Join(context.DeadlineExceeded, link.ErrOutcomeUnknown)
		})}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		resp, err := f.Handle(ctx, sale(t, "000042"))
		if err != nil {
			t.Fatal(err)
		}
		if a := actionOf(t, resp); a != "911" {
			t.Fatalf("timed-out sale answered %s, want 911", a)
		}
		if m := <-got; m != "1420" {
			t.Fatalf("first reversal is %s, want 1420", m)
		}
		if m := <-got; m != "1421" {
			t.Fatalf("repeat is %s, want 1421", m)
		}
		cancel()
		<-done
	})
}

// TestTerminalServerKeepsServing sends garbage on one connection and a sale
// on another: the first is closed, the second answered.
func TestTerminalServerKeepsServing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &TerminalServer{Forwarder: &Forwarder{Uplink: uplinkFunc(approve), Logger: quiet()}, Logger: quiet()}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, l) }()

	bad, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := frame.Write(bad, []byte("this is not ISO 8583")); err != nil {
		t.Fatal(err)
	}
	bad.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := frame.Read(bad, 0); err == nil {
		t.Fatal("garbage got an answer instead of a closed connection")
	}

	good, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := frame.Write(good, sale(t, "000100")); err != nil {
		t.Fatal(err)
	}
	good.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := frame.Read(good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a := actionOf(t, resp); a != "000" {
		t.Fatalf("sale answered %s", a)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve returned %v", err)
	}
}
