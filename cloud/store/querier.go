package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
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

type pgQuerier struct{ tx pgx.Tx }

func (q pgQuerier) exec(ctx context.Context, s string, args ...any) (int64, error) {
	tag, err := q.tx.Exec(ctx, s, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q pgQuerier) queryRow(ctx context.Context, s string, args ...any) scanner {
	return q.tx.QueryRow(ctx, s, args...)
}

func (q pgQuerier) query(ctx context.Context, s string, args ...any) (rowIter, error) {
	return q.tx.Query(ctx, s, args...)
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
