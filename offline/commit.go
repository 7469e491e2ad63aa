package offline

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// committer is the store's only writer. Callers hand it a function; it
// runs every function waiting at that moment (up to max) in one bbolt
// transaction and one fsync, then answers each. A function that fails is
// taken out and the others rerun in a fresh transaction, so one bad write
// never spoils its batch; functions must therefore be safe to rerun and
// must report their results only through variables they own.
type committer struct {
	db   *bolt.DB
	max  int
	ops  chan *op
	quit chan struct{}
	done chan struct{}
	// boltBatch sends writes through db.Batch instead (benchmarks only).
	boltBatch bool
	// arriving counts callers that announced a write (expect) and whose
	// write the committer has not received yet; linger bounds how long a
	// batch waits for them.
	arriving atomic.Int64
	linger   time.Duration
}

type op struct {
	fn       func(tx *bolt.Tx) error
	err      chan error
	expected bool
}

// expect announces a write that will follow shortly (after sealing), so a
// batch being formed waits for it rather than committing without it.
// The caller must then call do with expected true, or cancel.
func (c *committer) expect() { c.arriving.Add(1) }

// cancel withdraws an expect whose write will not come.
func (c *committer) cancel() { c.arriving.Add(-1) }

func newCommitter(db *bolt.DB, max int, linger time.Duration) *committer {
	c := &committer{db: db, max: max, linger: linger, ops: make(chan *op), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// do runs fn in a write transaction shared with other callers and returns
// once that transaction is durable (or failed).
func (c *committer) do(fn func(tx *bolt.Tx) error) error { return c.submit(fn, false) }

// submit is do for a write announced with expect when expected is true.
func (c *committer) submit(fn func(tx *bolt.Tx) error, expected bool) error {
	if c.boltBatch {
		if expected {
			c.cancel()
		}
		select {
		case <-c.quit:
			return ErrClosed
		default:
		}
		err := c.db.Batch(fn)
		if err != nil && !errors.Is(err, ErrClosed) && !isOwn(err) {
			return fmt.Errorf("batch: %w (%w)", err, ErrStorage)
		}
		return err
	}
	o := &op{fn: fn, err: make(chan error, 1), expected: expected}
	select {
	case c.ops <- o:
	case <-c.quit:
		if expected {
			c.cancel()
		}
		return ErrClosed
	}
	return <-o.err
}

func (c *committer) close() {
	close(c.quit)
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	batch := make([]*op, 0, c.max)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	take := func(o *op) {
		if o.expected {
			c.arriving.Add(-1)
		}
		batch = append(batch, o)
	}
	for {
		batch = batch[:0]
		select {
		case o := <-c.ops:
			take(o)
		case <-c.quit:
			return
		}
	drain:
		for len(batch) < c.max {
			select {
			case o := <-c.ops:
				take(o)
			default:
				break drain
			}
		}
		// Writers announced and on their way (sealing) join this batch
		// if they arrive within linger: one fsync for all of them.
		if c.linger > 0 && len(batch) < c.max && c.arriving.Load() > 0 {
			timer.Reset(c.linger)
		wait:
			for len(batch) < c.max && c.arriving.Load() > 0 {
				select {
				case o := <-c.ops:
					take(o)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
		c.commit(batch)
	}
}

func (c *committer) commit(batch []*op) {
	for len(batch) > 0 {
		tx, err := c.db.Begin(true)
		if err != nil {
			fail(batch, fmt.Errorf("begin write: %w (%w)", err, ErrStorage))
			return
		}
		bad := -1
		var badErr error
		for i, o := range batch {
			if err := o.fn(tx); err != nil {
				bad, badErr = i, err
				break
			}
		}
		if bad >= 0 {
			_ = tx.Rollback()
			batch[bad].err <- badErr
			batch = append(batch[:bad], batch[bad+1:]...)
			continue
		}
		if err := tx.Commit(); err != nil {
			fail(batch, fmt.Errorf("commit: %w (%w)", err, ErrStorage))
			return
		}
		for _, o := range batch {
			o.err <- nil
		}
		return
	}
}

func fail(batch []*op, err error) {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	for _, o := range batch {
		o.err <- err
	}
}

// isOwn reports whether err came from the store's own checks rather than
// from bbolt (those already say what they are).
func isOwn(err error) bool {
	for _, e := range []error{ErrStorage, ErrInvalidRequest, ErrVersionBackwards, ErrBaseMismatch, ErrSessionMismatch,
		ErrOutOfOrder, ErrCorruptChunk, ErrNotFound, ErrAnswered, ErrExpired, ErrRecordSeal} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
