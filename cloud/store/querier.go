package store

import (
	"context"
	"database/sql"

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

type sqlQuerier struct{ tx *sql.Tx }

func (q sqlQuerier) exec(ctx context.Context, s string, args ...any) (int64, error) {
	res, err := q.tx.ExecContext(ctx, s, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) queryRow(ctx context.Context, s string, args ...any) scanner {
	return q.tx.QueryRowContext(ctx, s, args...)
}

func (q sqlQuerier) query(ctx context.Context, s string, args ...any) (rowIter, error) {
	rows, err := q.tx.QueryContext(ctx, s, args...)
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
