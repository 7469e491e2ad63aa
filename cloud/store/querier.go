package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what a Tx needs from a driver transaction; sqlQuerier serves
// SQLite through database/sql and pgQuerier PostgreSQL through pgx.
type querier interface {
	exec(ctx context.Context, q string, args ...any) (rowsAffected int64, err error)
	queryRow(ctx context.Context, q string, args ...any) scanner
	query(ctx context.Context, q string, args ...any) (rowIter, error)
}

type scanner interface{ Scan(dst ...any) error }

type rowIter interface {
	Next() bool
	Scan(dst ...any) error
	Err() error
	Close()
}

// sqlQuerier runs statements on a database/sql transaction. When ctx is set
// (a group-commit member) it replaces the context statements are given.
type sqlQuerier struct {
	tx    *sql.Tx
	ctx   context.Context
	cache *stmtCache // nil: parse every statement
}

// stmt returns q's prepared form bound to the transaction, or nil.
func (q sqlQuerier) stmt(ctx context.Context, s string) *sql.Stmt {
	if q.cache == nil {
		return nil
	}
	if st := q.cache.get(s); st != nil {
		return q.tx.StmtContext(ctx, st)
	}
	return nil
}

func (q sqlQuerier) c(ctx context.Context) context.Context {
	if q.ctx != nil {
		return q.ctx
	}
	return ctx
}

func (q sqlQuerier) exec(ctx context.Context, s string, args ...any) (int64, error) {
	ctx = q.c(ctx)
	var res sql.Result
	var err error
	if st := q.stmt(ctx, s); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = q.tx.ExecContext(ctx, s, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) queryRow(ctx context.Context, s string, args ...any) scanner {
	ctx = q.c(ctx)
	if st := q.stmt(ctx, s); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, s, args...)
}

func (q sqlQuerier) query(ctx context.Context, s string, args ...any) (rowIter, error) {
	ctx = q.c(ctx)
	var rows *sql.Rows
	var err error
	if st := q.stmt(ctx, s); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = q.tx.QueryContext(ctx, s, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// pgQuerier runs one transaction's statements on a PostgreSQL connection
// with as few round trips as it can: BEGIN is not sent on its own but in
// front of the transaction's first statement, and deferred writes
// (Tx.deferExec) wait to be sent in front of the next statement or with
// COMMIT. Each group goes out as one pipelined batch: one write to the
// socket and one wait for the answers. With begin empty and nothing begun
// (Store.Read) every statement runs in its own implicit transaction.
//
// Round trips, not statements, were what an authorization cost on
// PostgreSQL (docs/storage.md): each one is a write and a read system
// call on both sides and a wake-up of the server process.
type pgQuerier struct {
	conn    *pgx.Conn
	begin   string // the BEGIN statement not sent yet; "" once sent or without a transaction
	pending []deferredWrite
	trips   *atomic.Int64 // the Store's round-trip counter
}

// deferredWrite is a write whose result nobody reads at once; its error
// is reported by the statement or commit it is sent with, wrapped with
// what. rows >= 0 marks a statement Tx.deferExec wrapped to fail on the
// server when it did not affect that many rows.
type deferredWrite struct {
	sql  string
	args []any
	rows int64
	what string
}

// hasLead reports whether statements wait to be sent before the next one.
func (q *pgQuerier) hasLead() bool { return q.begin != "" || len(q.pending) > 0 }

// lead queues the unsent BEGIN and the deferred writes on b.
func (q *pgQuerier) lead(b *pgx.Batch) {
	if q.begin != "" {
		b.Queue(q.begin)
	}
	for _, w := range q.pending {
		b.Queue(w.sql, w.args...)
	}
}

// readLead reads the results of what lead queued, in order, and returns the
// first failure. The deferred writes are gone afterwards either way: a
// failure leaves the transaction aborted and the caller rolls back.
func (q *pgQuerier) readLead(br pgx.BatchResults) error {
	if q.begin != "" {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		q.begin = ""
	}
	ws := q.pending
	q.pending = nil
	for _, w := range ws {
		if _, err := br.Exec(); err != nil {
			var pg *pgconn.PgError
			if w.rows >= 0 && errors.As(err, &pg) && pg.Code == "22012" {
				// The row-count check of deferExec.
				return fmt.Errorf("%s: %w", w.what, ErrNotFound)
			}
			return fmt.Errorf("%s: %w", w.what, classify(err))
		}
	}
	return nil
}

// send sends the lead and then b's own statements, if any, as one batch,
// reads the lead's results and returns the batch for the rest.
func (q *pgQuerier) send(ctx context.Context, s string, args ...any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	q.lead(b)
	b.Queue(s, args...)
	q.trips.Add(1)
	br := q.conn.SendBatch(ctx, b)
	if err := q.readLead(br); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

func (q *pgQuerier) exec(ctx context.Context, s string, args ...any) (int64, error) {
	if !q.hasLead() {
		q.trips.Add(1)
		tag, err := q.conn.Exec(ctx, s, args...)
		if err != nil {
			return 0, err
		}
		return tag.RowsAffected(), nil
	}
	br, err := q.send(ctx, s, args...)
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q *pgQuerier) queryRow(ctx context.Context, s string, args ...any) scanner {
	if !q.hasLead() {
		q.trips.Add(1)
		return q.conn.QueryRow(ctx, s, args...)
	}
	br, err := q.send(ctx, s, args...)
	if err != nil {
		return errRow{err}
	}
	return batchRow{row: br.QueryRow(), br: br}
}

func (q *pgQuerier) query(ctx context.Context, s string, args ...any) (rowIter, error) {
	if !q.hasLead() {
		q.trips.Add(1)
		return q.conn.Query(ctx, s, args...)
	}
	br, err := q.send(ctx, s, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// deferExec queues a write to be sent with the next statement or commit.
func (q *pgQuerier) deferExec(s string, rows int64, what string, args ...any) {
	q.pending = append(q.pending, deferredWrite{sql: s, args: args, rows: rows, what: what})
}

// commit sends what is still queued with COMMIT, in one round trip. A
// transaction that never sent a statement has nothing to commit.
func (q *pgQuerier) commit(ctx context.Context) error {
	if q.begin != "" && len(q.pending) == 0 {
		q.begin = ""
		return nil
	}
	var tag pgconn.CommandTag
	var err error
	if !q.hasLead() {
		q.trips.Add(1)
		tag, err = q.conn.Exec(ctx, "COMMIT")
	} else {
		var br pgx.BatchResults
		if br, err = q.send(ctx, "COMMIT"); err == nil {
			tag, err = br.Exec()
			if cerr := br.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		// COMMIT of a transaction an earlier error aborted.
		return errors.New("transaction was aborted by an earlier error and rolled back")
	}
	return nil
}

// rollback drops what is queued and ends the transaction if the server has
// one open for this connection (an aborted one included).
func (q *pgQuerier) rollback(ctx context.Context) error {
	q.pending, q.begin = nil, ""
	if q.conn.PgConn().TxStatus() == 'I' {
		return nil
	}
	q.trips.Add(1)
	_, err := q.conn.Exec(ctx, "ROLLBACK")
	return err
}

// errRow is a scanner that fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRow is the one-row result of a batch's last statement; Scan also
// closes the batch.
type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r batchRow) Scan(dst ...any) error {
	err := r.row.Scan(dst...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// batchRows are the rows of a batch's last statement; Close also closes
// the batch.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	_ = r.br.Close()
}

// maxCachedStmts bounds a stmtCache; the store's queries are a fixed set of
// constant strings well below it.
const maxCachedStmts = 512

// stmtCache keeps prepared statements of one SQLite pool, so that hot
// statements are parsed once per connection instead of on every call
// (parsing was a fifth of the writer's CPU). A statement missing from the
// cache runs unprepared and is queued; fill prepares the queue once the
// caller's transaction has ended, because preparing needs a free
// connection of the pool (the writer pool has exactly one). It is safe for
// concurrent use.
type stmtCache struct {
	db      *sql.DB
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	pending map[string]struct{}
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, pending: map[string]struct{}{}}
}

// get returns the prepared statement for q, or nil (queuing q) on a miss.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st
	}
	if len(c.m)+len(c.pending) < maxCachedStmts {
		c.pending[q] = struct{}{}
	}
	return nil
}

// fill prepares the queued statements. The caller holds no transaction of
// c's pool. A statement that fails to prepare is dropped (it keeps running
// unprepared, and reports its error there).
func (c *stmtCache) fill(ctx context.Context) {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	qs := make([]string, 0, len(c.pending))
	for q := range c.pending {
		qs = append(qs, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range qs {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, ok := c.m[q]; ok {
			c.mu.Unlock()
			_ = st.Close()
			continue
		}
		c.m[q] = st
		c.mu.Unlock()
	}
}

// close closes every cached statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for q, st := range c.m {
		err = errors.Join(err, st.Close())
		delete(c.m, q)
	}
	return err
}
