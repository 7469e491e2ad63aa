package offline

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
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
}

type op struct {
	fn  func(tx *bolt.Tx) error
	err chan error
}

func newCommitter(db *bolt.DB, max int) *committer {
	c := &committer{db: db, max: max, ops: make(chan *op), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// do runs fn in a write transaction shared with other callers and returns
// once that transaction is durable (or failed).
func (c *committer) do(fn func(tx *bolt.Tx) error) error {
	o := &op{fn: fn, err: make(chan error, 1)}
	select {
	case c.ops <- o:
	case <-c.quit:
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
	for {
		select {
		case o := <-c.ops:
			batch = append(batch[:0], o)
		case <-c.quit:
			return
		}
	drain:
		for len(batch) < c.max {
			select {
			case o := <-c.ops:
				batch = append(batch, o)
			default:
				break drain
			}
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
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	for _, o := range batch {
		o.err <- err
	}
}
