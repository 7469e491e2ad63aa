package match_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/match"
)

func TestKeyOf(t *testing.T) {
	tests := []struct {
		name string
		req  string
		resp string
	}{
		{"authorization", "1100", "1110"},
		{"financial", "1200", "1210"},
		{"advice", "1220", "1230"},
		{"advice_repeat", "1221", "1230"},
		{"reversal", "1420", "1430"},
		{"reversal_repeat", "1421", "1430"},
		{"file_action", "1304", "1314"},
		{"reconciliation", "1520", "1530"},
		{"network", "1804", "1814"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := match.KeyOf(iso93.Header{MTI: tt.req, TerminalID: "TERM0001", STAN: "000123"})
			rs := match.KeyOf(iso93.Header{MTI: tt.resp, TerminalID: "TERM0001", STAN: "000123"})
			if rq != rs {
				t.Fatalf("request key %+v != response key %+v", rq, rs)
			}
			if rq.Class != tt.req[:2] {
				t.Fatalf("class %q, want %q", rq.Class, tt.req[:2])
			}
		})
	}
	t.Run("different_terminal", func(t *testing.T) {
		a := match.KeyOf(iso93.Header{MTI: "1100", TerminalID: "A", STAN: "000001"})
		b := match.KeyOf(iso93.Header{MTI: "1110", TerminalID: "B", STAN: "000001"})
		if a == b {
			t.Fatal("keys of different terminals are equal")
		}
	})
}

func TestTable(t *testing.T) {
	key := match.Key{Class: "11", TerminalID: "TERM0001", STAN: "000001"}
	tests := []struct {
		name string
		run  func(t *testing.T, tb *match.Table)
	}{
		{"complete_then_wait", func(t *testing.T, tb *match.Table) {
			p := mustBegin(t, tb, key)
			if !tb.Complete(key, []byte("resp")) {
				t.Fatal("Complete = false for a pending key")
			}
			got, err := p.Wait(context.Background())
			if err != nil || string(got) != "resp" {
				t.Fatalf("Wait = %q, %v", got, err)
			}
			got, err = p.Wait(context.Background())
			if err != nil || string(got) != "resp" {
				t.Fatalf("second Wait = %q, %v", got, err)
			}
			p.Cancel() // no-op after completion
			if got, _ := p.Wait(context.Background()); string(got) != "resp" {
				t.Fatal("Cancel after completion changed the result")
			}
		}},
		{"second_begin_in_flight", func(t *testing.T, tb *match.Table) {
			p := mustBegin(t, tb, key)
			if _, err := tb.Begin(key); !errors.Is(err, match.ErrInFlight) {
				t.Fatalf("second Begin error = %v, want ErrInFlight", err)
			}
			if !tb.Complete(key, []byte("first")) {
				t.Fatal("first request was overwritten")
			}
			if got, _ := p.Wait(context.Background()); string(got) != "first" {
				t.Fatalf("Wait = %q", got)
			}
		}},
		{"cancel_frees_key", func(t *testing.T, tb *match.Table) {
			p := mustBegin(t, tb, key)
			p.Cancel()
			p.Cancel()
			if _, err := p.Wait(context.Background()); !errors.Is(err, match.ErrCanceled) {
				t.Fatalf("Wait after Cancel = %v, want ErrCanceled", err)
			}
			if tb.Complete(key, []byte("late")) {
				t.Fatal("Complete matched a canceled request")
			}
			p2 := mustBegin(t, tb, key)
			p.Cancel() // must not free p2's key
			if tb.Len() != 1 {
				t.Fatalf("Len = %d after old Pending's Cancel, want 1", tb.Len())
			}
			p2.Cancel()
		}},
		{"unsolicited_complete", func(t *testing.T, tb *match.Table) {
			if tb.Complete(key, []byte("x")) {
				t.Fatal("Complete = true with nothing pending")
			}
		}},
		{"context_done", func(t *testing.T, tb *match.Table) {
			p := mustBegin(t, tb, key)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait = %v, want context.Canceled", err)
			}
			if !tb.Complete(key, []byte("after")) {
				t.Fatal("key freed by a done context; want it kept until Cancel")
			}
			if got, err := p.Wait(context.Background()); err != nil || string(got) != "after" {
				t.Fatalf("Wait = %q, %v", got, err)
			}
		}},
		{"cancel_all", func(t *testing.T, tb *match.Table) {
			var ps []*match.Pending
			for i := range 5 {
				ps = append(ps, mustBegin(t, tb, match.Key{Class: "11", TerminalID: "T", STAN: fmt.Sprintf("%06d", i)}))
			}
			if n := tb.CancelAll(); n != 5 {
				t.Fatalf("CancelAll = %d, want 5", n)
			}
			for _, p := range ps {
				if _, err := p.Wait(context.Background()); !errors.Is(err, match.ErrCanceled) {
					t.Fatalf("Wait = %v, want ErrCanceled", err)
				}
				p.Cancel()
			}
			if tb.Len() != 0 {
				t.Fatalf("Len = %d", tb.Len())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, &match.Table{})
		})
	}
}

func mustBegin(t *testing.T, tb *match.Table, k match.Key) *match.Pending {
	t.Helper()
	p, err := tb.Begin(k)
	if err != nil {
		t.Fatalf("Begin(%+v): %v", k, err)
	}
	return p
}

// TestTableConcurrent runs many requesters and a responder that answers
// each request with its own STAN, checking every requester gets exactly its
// own answer and the table ends empty.
func TestTableConcurrent(t *testing.T) {
	const terminals, perTerminal = 16, 200
	var tb match.Table
	begun := make(chan match.Key, terminals*perTerminal)
	var wg sync.WaitGroup
	errs := make(chan error, terminals)
	for term := range terminals {
		wg.Go(func() {
			tid := fmt.Sprintf("TERM%04d", term)
			for i := range perTerminal {
				k := match.Key{Class: "11", TerminalID: tid, STAN: fmt.Sprintf("%06d", i)}
				p, err := tb.Begin(k)
				if err != nil {
					errs <- fmt.Errorf("Begin %+v: %w", k, err)
					return
				}
				begun <- k
				got, err := p.Wait(context.Background())
				p.Cancel()
				if err != nil || string(got) != tid+k.STAN {
					errs <- fmt.Errorf("key %+v got %q, %v", k, got, err)
					return
				}
			}
		})
	}
	// Responder plus a competitor trying to steal in-flight keys.
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for k := range begun {
			if _, err := tb.Begin(k); err == nil {
				errs <- fmt.Errorf("Begin succeeded for in-flight key %+v", k)
			}
			if !tb.Complete(k, []byte(k.TerminalID+k.STAN)) {
				errs <- fmt.Errorf("Complete(%+v) = false", k)
			}
		}
	})
	wg.Wait()
	close(begun)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := tb.Len(); n != 0 {
		t.Fatalf("Len = %d after all requests, want 0", n)
	}
}

// TestBeginRace has many goroutines Begin the same key at once: exactly one
// wins.
func TestBeginRace(t *testing.T) {
	var tb match.Table
	key := match.Key{Class: "12", TerminalID: "T", STAN: "000001"}
	const n = 64
	var wg sync.WaitGroup
	wins := make(chan *match.Pending, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			p, err := tb.Begin(key)
			if err == nil {
				wins <- p
			} else if !errors.Is(err, match.ErrInFlight) {
				t.Errorf("Begin: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(wins)
	if len(wins) != 1 {
		t.Fatalf("%d winners, want 1", len(wins))
	}
	(<-wins).Cancel()
}

func BenchmarkBeginComplete(b *testing.B) {
	b.ReportAllocs()
	var tb match.Table
	key := match.Key{Class: "11", TerminalID: "TERM0001", STAN: "000001"}
	ctx := context.Background()
	for b.Loop() {
		p, err := tb.Begin(key)
		if err != nil {
			b.Fatal(err)
		}
		tb.Complete(key, nil)
		if _, err := p.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
