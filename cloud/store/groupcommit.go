package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Group commit on SQLite.
//
// SQLite has one writer and, with synchronous=FULL, one fsync of the WAL per
// COMMIT. Committing every Update alone caps the center at one
// authorization per fsync. The group writer instead runs the Update calls
// that queue up while it works in ONE transaction, each inside its own
// SAVEPOINT, and commits them with one COMMIT (one fsync):
//
//   - a caller whose fn fails (or panics, or whose ctx ends while fn runs)
//     is rolled back to its savepoint; the others keep their work;
//   - no caller is answered before the COMMIT has returned, so nobody sees
//     success before their writes are durable; a COMMIT failure is every
//     member's error;
//   - if the batch transaction itself is lost (SQLite rolled it back under
//     a statement), members that had succeeded get a retryable error and
//     their Update runs fn again in a later batch;
//   - a batch takes at most Config.MaxBatch members and stops taking more
//     once maxBatchSpan has passed since it began; requests are served in
//     arrival order, so none waits behind more than the batches ahead of it.
//
// A member sees the uncommitted writes of the members before it in its
// batch (they share one connection), which is what it would see had they
// committed one by one before it: the batch is a serial schedule committed
// atomically.

// DefaultMaxBatch is the most Update calls one SQLite commit carries when
// Config.MaxBatch is zero.
const DefaultMaxBatch = 64

// maxBatchSpan bounds how long a batch keeps taking new members before it
// commits, so that its first member's latency stays bounded under load.
const maxBatchSpan = 8 * time.Millisecond

// errBatchLost is given (retryable) to members whose work was lost because
// the batch transaction failed after they ran.
var errBatchLost = errors.New("store: group commit transaction lost; run again")

// writeReq is one Update call waiting for the group writer.
type writeReq struct {
	ctx  context.Context
	fn   func(tx *Tx) error
	done chan writeResult // buffered: the writer never blocks on it
}

type writeResult struct {
	err      error
	panicked bool
	panicVal any
}

// groupWriter owns the SQLite writer connection. Its goroutine is started
// by openSQLite and stopped (and waited for) by Store.Close.
type groupWriter struct {
	s      *Store
	db     *sql.DB
	max    int
	span   time.Duration // maxBatchSpan; tests lengthen it
	reqs   chan *writeReq
	exited chan struct{}
	// beforeCommit, when set (tests only), is called with the batch size
	// just before COMMIT, on the writer goroutine.
	beforeCommit func(n int)
}

func newGroupWriter(s *Store, db *sql.DB, max int) *groupWriter {
	return &groupWriter{s: s, db: db, max: max, span: maxBatchSpan, reqs: make(chan *writeReq, 4*max), exited: make(chan struct{})}
}

// submit queues fn and waits for its outcome. It returns ErrClosed when the
// store closes before fn ran, and ctx's error when ctx ends before fn was
// taken into a batch. Once fn has run, submit waits for the commit whatever
// happens to ctx: the answer is then the truth about durability.
func (w *groupWriter) submit(ctx context.Context, fn func(tx *Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan writeResult, 1)}
	select {
	case w.reqs <- req:
	case <-w.s.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	var res writeResult
	select {
	case res = <-req.done:
	case <-w.exited:
		select {
		case res = <-req.done:
		default:
			return ErrClosed
		}
	}
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// run is the writer goroutine: one batch at a time until the store closes.
func (w *groupWriter) run() {
	defer close(w.exited)
	for {
		var first *writeReq
		select {
		case first = <-w.reqs:
		case <-w.s.closed:
			for {
				select {
				case r := <-w.reqs:
					r.done <- writeResult{err: ErrClosed}
				default:
					return
				}
			}
		}
		w.batch(first)
	}
}

// member is a request taken into the current batch with its outcome.
type member struct {
	req *writeReq
	res writeResult
}

// batch runs first and whatever queues behind it (within the bounds) in one
// transaction and answers every member after COMMIT.
func (w *groupWriter) batch(first *writeReq) {
	// The batch transaction is not tied to any caller's context: one
	// caller giving up must not interrupt the others' statements.
	stx, err := w.db.BeginTx(context.Background(), nil)
	if err != nil {
		first.done <- writeResult{err: fmt.Errorf("begin transaction: %w", classify(err))}
		return
	}
	start := time.Now()
	var members []member
	next := first
	lost := false
	for next != nil {
		m := member{req: next}
		if err := next.ctx.Err(); err != nil {
			// Gave up while queued: not run, nothing to roll back.
			m.res.err = err
			members = append(members, m)
		} else {
			m.res, lost = w.runMember(stx, next)
			members = append(members, m)
			if lost {
				break
			}
		}
		next = nil
		if len(members) < w.max && time.Since(start) < w.span {
			select {
			case next = <-w.reqs:
			default:
			}
		}
	}
	ok := 0
	for _, m := range members {
		if m.res.err == nil && !m.res.panicked {
			ok++
		}
	}
	var commitErr error
	switch {
	case lost:
		_ = stx.Rollback()
		commitErr = &retryError{err: errBatchLost}
	case ok == 0:
		// Nothing to keep: no fsync needed.
		_ = stx.Rollback()
	default:
		if w.beforeCommit != nil {
			w.beforeCommit(len(members))
		}
		if err := stx.Commit(); err != nil {
			commitErr = fmt.Errorf("commit: %w", classify(err))
		}
	}
	for _, m := range members {
		if commitErr != nil && m.res.err == nil && !m.res.panicked {
			m.res.err = commitErr
		}
		m.req.done <- m.res
	}
	// The writer connection is free again: prepare what this batch ran
	// unprepared.
	w.s.wstmts.fill(context.Background())
}

// runMember runs one request inside its own savepoint. lost reports that
// the batch transaction no longer exists (a savepoint statement failed), in
// which case res is the member's own outcome and the batch must be
// abandoned.
func (w *groupWriter) runMember(stx *sql.Tx, r *writeReq) (res writeResult, lost bool) {
	bg := context.Background()
	if _, err := stx.ExecContext(bg, "SAVEPOINT member"); err != nil {
		return writeResult{err: &retryError{err: fmt.Errorf("begin savepoint: %w", classify(err))}}, true
	}
	// Statements ignore the caller's cancellation (an interrupted write
	// can make SQLite roll back the whole batch); ctx is checked after fn.
	ctx := context.WithoutCancel(r.ctx)
	tx := &Tx{q: sqlQuerier{tx: stx, ctx: ctx, cache: w.s.wstmts}, s: w.s, now: w.s.clock().UTC()}
	res = callFn(r.fn, tx)
	if res.err == nil && !res.panicked {
		if err := r.ctx.Err(); err != nil {
			res.err = err
		}
	}
	if res.err != nil || res.panicked {
		if _, err := stx.ExecContext(bg, "ROLLBACK TO member"); err != nil {
			return res, true
		}
	}
	if _, err := stx.ExecContext(bg, "RELEASE member"); err != nil {
		if res.err == nil && !res.panicked {
			res.err = &retryError{err: errBatchLost}
		}
		return res, true
	}
	return res, false
}

// callFn runs fn, turning a panic into a result so that the caller's
// goroutine re-panics with it (as it would have without group commit) and
// the writer keeps serving.
func callFn(fn func(tx *Tx) error, tx *Tx) (res writeResult) {
	defer func() {
		if v := recover(); v != nil {
			res = writeResult{panicked: true, panicVal: v}
		}
	}()
	return writeResult{err: fn(tx)}
}
