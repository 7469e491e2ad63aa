// Package store is the cloud center's database: one API over an embedded
// SQLite file (the default) and PostgreSQL (when a DSN is given).
//
// All access goes through transactions: Update runs a read-write function,
// View a read-only one. Neither the database handle nor the driver's
// transaction type leaves this package; callers see *Tx, whose methods read
// and write the center's rows (merchants, terminals, products, accounts,
// cards, the ledger, authorizations, device replay state and audit).
//
// Concurrency model (see docs/storage.md): on PostgreSQL, transactions run in
// READ COMMITTED and serialise on the rows they lock with SELECT ... FOR
// UPDATE (Tx.LockAccount); several center processes may share one database.
// On SQLite there is exactly one writer connection and every write
// transaction starts with BEGIN IMMEDIATE, so writers queue instead of
// deadlocking; readers use a separate bounded pool and see WAL snapshots.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite "modernc.org/sqlite"
)

var (
	// ErrNotFound is returned when a looked-up row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate is returned when a write would break a uniqueness rule
	// (an idempotency key, a card fingerprint, an id). On PostgreSQL the
	// transaction is aborted by it: Update returns it and rolls back.
	ErrDuplicate = errors.New("store: duplicate key")
	// ErrReference is returned when a write names a row that does not
	// exist (a foreign key: an unknown merchant, gateway, product, account).
	ErrReference = errors.New("store: referenced row does not exist")
	// ErrBadConfig is returned by Config.Validate and Open for a config that
	// cannot be used.
	ErrBadConfig = errors.New("store: bad config")
	// ErrClosed is returned by Update and View after Close.
	ErrClosed = errors.New("store: closed")
)

// Dialect names the SQL database behind a Store.
type Dialect string

// Dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Defaults applied to zero Config fields.
const (
	DefaultPath        = "data/cardcenter.db"
	DefaultBusyTimeout = 5 * time.Second
	DefaultMaxRetries  = 8
)

// Config selects and tunes the database. The zero Config opens the SQLite
// file DefaultPath.
type Config struct {
	// Driver is "sqlite" or "postgres"; zero means postgres when DSN is set
	// and sqlite otherwise.
	Driver string
	// DSN is the PostgreSQL connection string, e.g.
	// "postgres://user@host:5432/db?sslmode=disable". Unknown query
	// parameters become session settings, so "&search_path=s1" selects a
	// schema.
	DSN string
	// Path is the SQLite file; zero means DefaultPath. Ignored with a DSN.
	// Its directory is created if missing.
	Path string
	// MaxConns bounds the connection pool: on PostgreSQL the whole pool
	// (zero means 16), on SQLite the read pool (zero means 4; writes always
	// use one dedicated connection).
	MaxConns int
	// BusyTimeout is SQLite's busy_timeout; zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxRetries bounds how often Update re-runs its function after a
	// serialisation failure, a deadlock or a busy database; zero means
	// DefaultMaxRetries.
	MaxRetries int
	// Clock returns the current time; nil means time.Now. Tx.Now reads it
	// once per transaction.
	Clock func() time.Time
	// MaxBatch bounds SQLite group commit: the most Update calls committed
	// together in one transaction (one fsync); zero means DefaultMaxBatch,
	// 1 commits every Update alone. Ignored on PostgreSQL.
	MaxBatch int
}

// Validate reports every bad field of c, or nil.
func (c Config) Validate() error {
	var errs []error
	switch c.Driver {
	case "", string(SQLite), string(Postgres):
	default:
		errs = append(errs, fmt.Errorf("driver %q: must be sqlite or postgres", c.Driver))
	}
	if c.Driver == string(Postgres) && c.DSN == "" {
		errs = append(errs, errors.New("dsn: required when driver is postgres"))
	}
	if c.Driver == string(SQLite) && c.DSN != "" {
		errs = append(errs, errors.New("DSN: must be empty when Driver is sqlite"))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("MaxConns %d: must be >= 0", c.MaxConns))
	}
	if c.BusyTimeout < 0 {
		errs = append(errs, fmt.Errorf("BusyTimeout %s: must be >= 0", c.BusyTimeout))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("MaxRetries %d: must be >= 0", c.MaxRetries))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("MaxBatch %d: must be >= 0", c.MaxBatch))
	}
	if c.DSN != "" {
		if u, err := url.Parse(c.DSN); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// The DSN may hold a password: never echo it.
			errs = append(errs, errors.New("DSN: must be a postgres:// or postgresql:// URL"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrBadConfig, errors.Join(errs...))
	}
	return nil
}

// Store is an open database. It is safe for concurrent use by many
// goroutines; several Stores (in one process or many) may share one
// PostgreSQL database.
type Store struct {
	dialect    Dialect
	write      *sql.DB // SQLite: the one writer connection
	writer     *groupWriter
	wstmts     *stmtCache // SQLite: prepared statements of the writer
	rstmts     *stmtCache // SQLite: prepared statements of the readers
	read       *sql.DB    // SQLite: the reader pool
	pg         *pgPool    // PostgreSQL
	maxRetries int
	clock      func() time.Time
	closed     chan struct{}
	trips      atomic.Int64 // PostgreSQL round trips (RoundTrips)
}

//go:embed migrations
var migrationFS embed.FS

// Open opens (creating if needed) the database c describes, applies any
// pending migrations in one transaction, and returns the Store. The caller
// must Close it.
func Open(ctx context.Context, c Config) (*Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Store{maxRetries: c.MaxRetries, clock: c.Clock, closed: make(chan struct{})}
	if s.maxRetries == 0 {
		s.maxRetries = DefaultMaxRetries
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	var err error
	if c.DSN != "" {
		err = s.openPostgres(c)
	} else {
		err = s.openSQLite(c)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	return s, nil
}

func (s *Store) openPostgres(c Config) error {
	s.dialect = Postgres
	n := c.MaxConns
	if n == 0 {
		n = 16
	}
	p, err := newPGPool(c.DSN, n)
	if err != nil {
		return err
	}
	s.pg = p
	return nil
}

func (s *Store) openSQLite(c Config) error {
	s.dialect = SQLite
	path := c.Path
	if path == "" {
		path = DefaultPath
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create sqlite directory: %w", err)
		}
	}
	bt := c.BusyTimeout
	if bt == 0 {
		bt = DefaultBusyTimeout
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(bt.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// FULL: an approval is durable on disk before the answer leaves.
	q.Add("_pragma", "synchronous(FULL)")
	base := "file:" + (&url.URL{Path: path}).EscapedPath()

	wq := url.Values{}
	for k, v := range q {
		wq[k] = slices.Clone(v)
	}
	wq.Set("_txlock", "immediate")
	// Group commit runs each Update in a savepoint; SQLite journals the
	// pages a savepoint changes in a temporary file unless temp_store is
	// MEMORY (a fifth of the writer's time went to those writes). It only
	// serves ROLLBACK TO; durability is the WAL's.
	wq.Add("_pragma", "temp_store(2)")
	w, err := sql.Open("sqlite", base+"?"+wq.Encode())
	if err != nil {
		return fmt.Errorf("open sqlite writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	// Readers refuse writes, so a write through View cannot bypass the
	// single writer.
	q.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", base+"?"+q.Encode())
	if err != nil {
		w.Close()
		return fmt.Errorf("open sqlite readers: %w", err)
	}
	n := c.MaxConns
	if n == 0 {
		n = 4
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.write, s.read = w, r
	s.wstmts, s.rstmts = newStmtCache(w), newStmtCache(r)
	mb := c.MaxBatch
	if mb == 0 {
		mb = DefaultMaxBatch
	}
	s.writer = newGroupWriter(s, w, mb)
	go s.writer.run()
	return nil
}

// Dialect reports which database the Store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the database. Transactions in progress finish first (their
// connections are released when they end; on SQLite the batch being
// committed is finished and Update calls still queued get ErrClosed). Close
// is safe to call more than once.
func (s *Store) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
		close(s.closed)
	}
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	if s.pg != nil {
		return s.pg.close()
	}
	if s.writer != nil {
		select {
		case <-s.closed:
		default:
			close(s.closed) // Open failed after starting the writer
		}
		<-s.writer.exited
	}
	return errors.Join(s.wstmts.close(), s.rstmts.close(), s.write.Close(), s.read.Close())
}

// Update runs fn in a read-write transaction and commits it if fn returns
// nil; otherwise it rolls back and returns fn's error. Update returns nil
// only once fn's writes are durable (committed; on SQLite fsynced).
//
// On SQLite, Update calls that arrive while the writer is busy are group
// committed: each fn runs in its own savepoint of one shared transaction
// and one COMMIT makes them all durable (see Config.MaxBatch). fn's failure
// rolls back only its own savepoint. fn then sees the writes of the Update
// calls committed with it as if they had committed before it. When the database
// reports a serialisation failure, a deadlock or a busy file, Update rolls
// back and runs fn again (up to Config.MaxRetries times), so fn must have no
// effects outside tx and must not keep tx after it returns. fn must not call
// Update or View (on SQLite that would wait for itself).
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	return s.run(ctx, modeUpdate, fn)
}

// View runs fn in a read-only transaction that sees one consistent snapshot
// (REPEATABLE READ on PostgreSQL, a WAL read snapshot on SQLite) and returns
// fn's error.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	return s.run(ctx, modeView, fn)
}

// Read runs fn, which only reads, without a transaction around it on
// PostgreSQL: each statement sees the data committed when it starts, and
// no BEGIN or ROLLBACK round trip is spent. Use it where fn's statements do
// not need one snapshot between them (a single lookup, or lookups whose
// rows cannot change together). On SQLite it is View. Writes through a Tx
// of Read fail.
func (s *Store) Read(ctx context.Context, fn func(tx *Tx) error) error {
	return s.run(ctx, modeRead, fn)
}

// txMode is what kind of transaction run starts.
type txMode int

const (
	modeUpdate txMode = iota
	modeView
	modeRead
)

func (s *Store) run(ctx context.Context, mode txMode, fn func(tx *Tx) error) error {
	for attempt := 0; ; attempt++ {
		select {
		case <-s.closed:
			return ErrClosed
		default:
		}
		var err error
		if s.pg != nil {
			err = s.runPG(ctx, mode, fn)
		} else {
			err = s.runSQLite(ctx, mode != modeUpdate, fn)
		}
		if err == nil || !retryable(err) || attempt >= s.maxRetries || ctx.Err() != nil {
			return err
		}
	}
}

func (s *Store) runSQLite(ctx context.Context, readOnly bool, fn func(tx *Tx) error) (err error) {
	if !readOnly {
		// The writer pool begins IMMEDIATE (see openSQLite); the group
		// writer owns it.
		return s.writer.submit(ctx, fn)
	}
	stx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", classify(err))
	}
	defer func() {
		_ = stx.Rollback()
		s.rstmts.fill(context.WithoutCancel(ctx))
	}()
	tx := &Tx{q: sqlQuerier{tx: stx, cache: s.rstmts}, s: s, now: s.clock().UTC()}
	return fn(tx)
}

func (s *Store) runPG(ctx context.Context, mode txMode, fn func(tx *Tx) error) error {
	conn, err := s.pg.acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", classify(err))
	}
	broken := false
	defer func() { s.pg.release(conn, broken) }()
	q := &pgQuerier{conn: conn, trips: &s.trips}
	switch mode {
	case modeUpdate:
		q.begin = "BEGIN ISOLATION LEVEL READ COMMITTED"
	case modeView:
		q.begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
	}
	tx := &Tx{q: q, pg: q, s: s, now: s.clock().UTC(), autocommit: mode == modeRead}
	if err := fn(tx); err != nil {
		if rerr := q.rollback(context.WithoutCancel(ctx)); rerr != nil {
			broken = true
		}
		return err
	}
	if mode != modeUpdate {
		if err := q.rollback(ctx); err != nil {
			broken = true
		}
		return nil
	}
	if err := q.commit(ctx); err != nil {
		if rerr := q.rollback(context.WithoutCancel(ctx)); rerr != nil {
			broken = true
		}
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

// RoundTrips returns how many round trips to PostgreSQL the Store has made
// (a statement, or a batch of them sent together, and its answers); zero
// on SQLite, which runs in process.
func (s *Store) RoundTrips() int64 { return s.trips.Load() }

// retryError marks a database error after which the whole transaction may
// be run again.
type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var r *retryError
	return errors.As(err, &r)
}

// classify maps driver errors to this package's sentinels and marks
// retryable ones. It never adds values to the message.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			return fmt.Errorf("%w: constraint %s", ErrDuplicate, pg.ConstraintName)
		case "23503":
			return fmt.Errorf("%w: constraint %s", ErrReference, pg.ConstraintName)
		case "40001", "40P01":
			return &retryError{err: err}
		}
		return err
	}
	var sq *sqlite.Error
	if errors.As(err, &sq) {
		switch sq.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return &retryError{err: err}
		}
		switch sq.Code() {
		case 2067, 1555: // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
			return fmt.Errorf("%w: %s", ErrDuplicate, constraintName(sq.Error()))
		case 787: // SQLITE_CONSTRAINT_FOREIGNKEY
			return ErrReference
		}
	}
	return err
}

// constraintName extracts "table.column" from SQLite's "UNIQUE constraint
// failed: table.column" message, which carries names, never values.
func constraintName(msg string) string {
	if _, after, ok := strings.Cut(msg, "failed: "); ok {
		if end := strings.IndexAny(after, " ()"); end > 0 {
			return after[:end]
		}
		return after
	}
	return "unique"
}

// migration is one embedded schema step.
type migration struct {
	version int
	name    string
	sql     string
}

func (s *Store) migrations() ([]migration, error) {
	dir := "migrations/" + string(s.dialect)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: name must start with a positive version and '_'", name)
		}
		body, err := fs.ReadFile(migrationFS, dir+"/"+name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies every pending migration in one transaction. On PostgreSQL
// a transaction-scoped advisory lock keeps nodes that start together from
// racing; on SQLite BEGIN IMMEDIATE does the same.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return err
	}
	err = s.Update(ctx, func(tx *Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.q.exec(ctx, "SELECT pg_advisory_xact_lock(7305676103)"); err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
		}
		if _, err := tx.q.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    BIGINT PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		applied := map[int]bool{}
		rows, err := tx.q.query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			applied[v] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := tx.q.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, micros(tx.now)); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate %s schema: %w", s.dialect, err)
	}
	return nil
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.View(ctx, func(tx *Tx) error {
		return tx.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v)
	})
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }
