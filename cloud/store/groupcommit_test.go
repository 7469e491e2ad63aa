package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/internal/poll"
)

var errBoom = errors.New("boom")

// gated opens a SQLite store whose first COMMIT after the call waits until
// the returned release is called; entered is closed when the writer
// reaches it. sizes records every batch size committed.
type gated struct {
	st       *store.Store
	entered  chan struct{}
	gate     chan struct{}
	opened   sync.Once
	returned atomic.Int64 // Update calls that returned, counted by callers
	mu       sync.Mutex
	sizes    []int
	atCommit []int64 // returned, as seen at each COMMIT
}

func openGated(t *testing.T, c store.Config) *gated {
	t.Helper()
	if c.Path == "" {
		c.Path = filepath.Join(t.TempDir(), "center.db")
	}
	g := &gated{st: storetest.OpenConfig(t, c), entered: make(chan struct{}), gate: make(chan struct{})}
	// Runs before the store's Close (cleanups run last first), so a
	// failing test never leaves the writer parked at the gate.
	t.Cleanup(g.release)
	store.SetMaxBatchSpan(g.st, time.Hour)
	var first sync.Once
	store.SetBeforeCommit(g.st, func(n int) {
		g.mu.Lock()
		g.sizes = append(g.sizes, n)
		g.atCommit = append(g.atCommit, g.returned.Load())
		g.mu.Unlock()
		first.Do(func() {
			close(g.entered)
			<-g.gate
		})
	})
	return g
}

// release lets the gated COMMIT go ahead.
func (g *gated) release() { g.opened.Do(func() { close(g.gate) }) }

// update runs an Update in a goroutine and delivers its error.
func (g *gated) update(ctx context.Context, fn func(tx *store.Tx) error) <-chan error {
	out := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				g.returned.Add(1)
				out <- fmt.Errorf("panic: %v", v)
			}
		}()
		err := g.st.Update(ctx, fn)
		g.returned.Add(1)
		out <- err
	}()
	return out
}

// waitQueued polls (bounded) until n Update calls wait for the writer.
func (g *gated) waitQueued(t *testing.T, n int) {
	t.Helper()
	if !poll.Wait(10*time.Second, func() bool { return store.QueuedWrites(g.st) >= n }) {
		t.Fatalf("%d Update calls queued after 10s, want %d", store.QueuedWrites(g.st), n)
	}
}

func insertGateway(id string) func(tx *store.Tx) error {
	return func(tx *store.Tx) error {
		return tx.InsertGateway(context.Background(), store.Gateway{ID: id})
	}
}

func gatewayExists(t *testing.T, st *store.Store, id string) bool {
	t.Helper()
	err := st.View(context.Background(), func(tx *store.Tx) error {
		_, err := tx.Gateway(context.Background(), id)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read gateway %s: %v", id, err)
	}
	return err == nil
}

// TestGroupCommit proves the group writer's contract (docs/storage.md,
// "SQLite: one writer, group commit"). It is long because each subtest is
// one rule of that contract, written out step by step against its own
// gated store; they stay together so the contract reads in one place.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	t.Run("failing_member_does_not_affect_others", func(t *testing.T) {
		g := openGated(t, store.Config{})
		head := g.update(ctx, insertGateway("head"))
		<-g.entered // batch 1 (head alone) is at its COMMIT
		type call struct {
			name string
			want error // nil, errBoom, store.ErrDuplicate, or errPanic
			done <-chan error
		}
		errPanic := errors.New("panic")
		var calls []call
		for i := range 6 {
			id := fmt.Sprintf("good-%d", i)
			calls = append(calls, call{id, nil, g.update(ctx, insertGateway(id))})
		}
		calls = append(calls,
			call{"fails", errBoom, g.update(ctx, func(tx *store.Tx) error {
				if err := insertGateway("fails")(tx); err != nil {
					return err
				}
				return errBoom
			})},
			call{"panics", errPanic, g.update(ctx, func(tx *store.Tx) error {
				if err := insertGateway("panics")(tx); err != nil {
					return err
				}
				panic("member panics")
			})},
			call{"duplicate", store.ErrDuplicate, g.update(ctx, insertGateway("head"))},
		)
		for i := range 3 {
			id := fmt.Sprintf("late-%d", i)
			calls = append(calls, call{id, nil, g.update(ctx, insertGateway(id))})
		}
		g.waitQueued(t, len(calls))
		if g.returned.Load() != 0 || gatewayExists(t, g.st, "head") {
			t.Fatalf("before COMMIT: %d callers returned, head visible %v", g.returned.Load(), gatewayExists(t, g.st, "head"))
		}
		g.release()
		if err := <-head; err != nil {
			t.Fatalf("head: %v", err)
		}
		for _, c := range calls {
			err := <-c.done
			switch {
			case c.want == errPanic:
				if err == nil || err.Error() != "panic: member panics" {
					t.Errorf("%s: %v, want the member's panic in its own goroutine", c.name, err)
				}
			case !errors.Is(err, c.want) || (c.want == nil && err != nil):
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
			stored := c.want == nil
			if c.name == "duplicate" {
				continue // head exists through its own call
			}
			if got := gatewayExists(t, g.st, c.name); got != stored {
				t.Errorf("%s stored = %v, want %v", c.name, got, stored)
			}
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.sizes) != 2 || g.sizes[0] != 1 || g.sizes[1] != len(calls) {
			t.Fatalf("batch sizes %v, want [1 %d]: the queued calls share one COMMIT", g.sizes, len(calls))
		}
		committed := 0
		for i, n := range g.atCommit {
			// Only callers of earlier batches may have returned.
			if n > int64(committed) {
				t.Fatalf("at COMMIT %d, %d callers had returned, at most %d may", i, n, committed)
			}
			committed += g.sizes[i]
		}
	})

	t.Run("lost_batch_reruns_innocent_members", func(t *testing.T) {
		g := openGated(t, store.Config{})
		head := g.update(ctx, insertGateway("head"))
		<-g.entered
		var broke atomic.Bool
		before := g.update(ctx, insertGateway("before"))
		g.waitQueued(t, 1)
		breaker := g.update(ctx, func(tx *store.Tx) error {
			if err := insertGateway("breaker")(tx); err != nil {
				return err
			}
			if !broke.Swap(true) {
				// Ends the shared transaction under everyone's feet.
				return store.ExecRaw(ctx, tx, "ROLLBACK")
			}
			return nil
		})
		g.waitQueued(t, 2)
		g.release()
		for name, done := range map[string]<-chan error{"head": head, "before": before, "breaker": breaker} {
			if err := <-done; err != nil {
				t.Errorf("%s: %v, want success after a re-run", name, err)
			}
		}
		for _, id := range []string{"head", "before", "breaker"} {
			if !gatewayExists(t, g.st, id) {
				t.Errorf("gateway %s lost", id)
			}
		}
	})

	t.Run("cancelled_while_queued_changes_nothing", func(t *testing.T) {
		g := openGated(t, store.Config{})
		head := g.update(ctx, insertGateway("head"))
		<-g.entered
		cctx, cancel := context.WithCancel(ctx)
		gone := g.update(cctx, insertGateway("gone"))
		g.waitQueued(t, 1)
		cancel()
		g.release()
		if err := <-head; err != nil {
			t.Fatalf("head: %v", err)
		}
		if err := <-gone; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: %v, want context.Canceled", err)
		}
		if gatewayExists(t, g.st, "gone") {
			t.Fatal("a cancelled caller's write was committed")
		}
	})

	t.Run("close_answers_queued_callers", func(t *testing.T) {
		g := openGated(t, store.Config{})
		head := g.update(ctx, insertGateway("head"))
		<-g.entered
		var queued []<-chan error
		for i := range 3 {
			queued = append(queued, g.update(ctx, insertGateway(fmt.Sprintf("q-%d", i))))
		}
		g.waitQueued(t, 3)
		closed := make(chan error, 1)
		go func() { closed <- g.st.Close() }()
		g.release()
		if err := <-head; err != nil {
			t.Fatalf("head: %v", err)
		}
		for i, done := range queued {
			// Served before the writer saw Close, or refused: never lost.
			if err := <-done; err != nil && !errors.Is(err, store.ErrClosed) {
				t.Errorf("queued caller %d: %v, want nil or ErrClosed", i, err)
			}
		}
		if err := <-closed; err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := g.st.Update(ctx, insertGateway("after")); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Update after Close: %v, want ErrClosed", err)
		}
	})

	t.Run("max_batch_1_commits_each_alone", func(t *testing.T) {
		g := openGated(t, store.Config{MaxBatch: 1})
		head := g.update(ctx, insertGateway("head"))
		<-g.entered
		var queued []<-chan error
		for i := range 4 {
			queued = append(queued, g.update(ctx, insertGateway(fmt.Sprintf("q-%d", i))))
		}
		g.waitQueued(t, 4)
		g.release()
		for _, done := range append(queued, head) {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.sizes) != 5 {
			t.Fatalf("batch sizes %v, want five batches of 1", g.sizes)
		}
		for _, n := range g.sizes {
			if n != 1 {
				t.Fatalf("batch sizes %v, want five batches of 1", g.sizes)
			}
		}
	})

	t.Run("negative_max_batch_is_refused", func(t *testing.T) {
		if err := (store.Config{MaxBatch: -1}).Validate(); !errors.Is(err, store.ErrBadConfig) {
			t.Fatalf("Validate(MaxBatch -1) = %v, want ErrBadConfig", err)
		}
	})
}
