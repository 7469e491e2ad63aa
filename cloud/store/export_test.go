package store

import (
	"context"
	"time"
)

// SetBeforeCommit installs a hook the SQLite group writer calls with the
// batch size just before each COMMIT. Call it before the Update calls it
// should see (the writer reads it when it takes a batch).
func SetBeforeCommit(s *Store, fn func(n int)) { s.writer.beforeCommit = fn }

// QueuedWrites reports how many Update calls wait for the SQLite writer.
func QueuedWrites(s *Store) int { return len(s.writer.reqs) }

// ExecRaw runs q in tx as it is (tests use it to break a batch).
func ExecRaw(ctx context.Context, tx *Tx, q string) error {
	_, err := tx.q.exec(ctx, q)
	return err
}

// SetMaxBatchSpan replaces how long a SQLite batch keeps taking members
// (tests make it long so that queued calls surely share one batch).
func SetMaxBatchSpan(s *Store, d time.Duration) { s.writer.span = d }
