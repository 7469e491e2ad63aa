// Package storetest opens throw-away center stores for tests: a SQLite file
// in t.TempDir and, when POSGATE_TEST_PG_DSN is set, a PostgreSQL store in a
// schema of its own that is dropped at cleanup.
//
// Without POSGATE_TEST_PG_DSN the PostgreSQL half is skipped with a message
// saying it did not run, except when CI=true, where a missing DSN or an
// unreachable server fails the test.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posgate/posgate/cloud/store"
)

// EnvDSN names the environment variable holding the test PostgreSQL DSN.
const EnvDSN = "POSGATE_TEST_PG_DSN"

// SkipMessage is what a skipped PostgreSQL test says.
const SkipMessage = EnvDSN + " not set: PostgreSQL store tests did not run"

// Backend is one database the store suite runs on.
type Backend struct {
	Name string // "sqlite" or "postgres"
	// Open returns a fresh, empty, migrated store closed at cleanup.
	Open func(t testing.TB) *store.Store
}

// Backends returns SQLite and PostgreSQL. Run every subtest of the suite on
// each with ForEach; the PostgreSQL one skips or fails in Open as described
// in the package comment.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Open: func(t testing.TB) *store.Store { return OpenSQLite(t) }},
		{Name: "postgres", Open: func(t testing.TB) *store.Store { return OpenPostgres(t) }},
	}
}

// ForEach runs fn as a subtest per backend, each with a fresh store.
func ForEach(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.Open(t)) })
	}
}

// OpenSQLite opens a migrated store on a new SQLite file in t.TempDir.
func OpenSQLite(t testing.TB) *store.Store {
	t.Helper()
	return OpenConfig(t, store.Config{Path: filepath.Join(t.TempDir(), "center.db")})
}

// OpenConfig opens a store with c and closes it at cleanup.
func OpenConfig(t testing.TB, c store.Config) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), c)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// OpenPostgres opens a migrated store in a new schema of the test database.
func OpenPostgres(t testing.TB) *store.Store {
	t.Helper()
	return OpenConfig(t, store.Config{DSN: NewSchema(t)})
}

// DSN returns the test PostgreSQL DSN, or skips (fails under CI=true) when
// it is not set.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not set and CI=true: the PostgreSQL store tests must run", EnvDSN)
		}
		t.Skip(SkipMessage)
	}
	return dsn
}

// NewSchema creates a uniquely named schema in the test database, drops it
// (with everything in it) at cleanup, and returns a DSN whose search_path
// selects it. Stores opened on the same DSN share the schema, standing in
// for several center nodes on one database.
func NewSchema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		// An unreachable server is a failure, not a skip: the DSN was given.
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: not a URL", EnvDSN)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
