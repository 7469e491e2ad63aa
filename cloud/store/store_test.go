package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    store.Config
		ok   bool
	}{
		{"zero_is_sqlite_default", store.Config{}, true},
		{"postgres_dsn", store.Config{DSN: "postgres://u@h/db"}, true},
		{"postgres_driver_needs_dsn", store.Config{Driver: "postgres"}, false},
		{"sqlite_driver_refuses_dsn", store.Config{Driver: "sqlite", DSN: "postgres://u@h/db"}, false},
		{"unknown_driver", store.Config{Driver: "mysql"}, false},
		{"bad_dsn_scheme", store.Config{DSN: "mysql://u@h/db"}, false},
		{"negative_conns", store.Config{MaxConns: -1}, false},
		{"negative_busy_timeout", store.Config{BusyTimeout: -time.Second}, false},
		{"negative_retries", store.Config{MaxRetries: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, store.ErrBadConfig) {
				t.Fatalf("Validate() = %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestValidateNeverEchoesDSNPassword(t *testing.T) {
	err := store.Config{DSN: "mysql://user:s3cret@h/db"}.Validate()
	if err == nil || contains(err.Error(), "s3cret") {
		t.Fatalf("Validate() = %v, want an error without the password", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestReopenIsIdempotent(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c.db")
		for range 3 {
			st, err := store.Open(ctx, store.Config{Path: path})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			checkVersion(t, st)
			if err := st.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.NewSchema(t)
		for range 3 {
			st, err := store.Open(ctx, store.Config{DSN: dsn})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			checkVersion(t, st)
			if err := st.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
		}
	})
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := storetest.NewSchema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			st, err := store.Open(context.Background(), store.Config{DSN: dsn})
			if err == nil {
				err = st.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
	checkVersion(t, storetest.OpenConfig(t, store.Config{DSN: dsn}))
}

func checkVersion(t *testing.T, st *store.Store) {
	t.Helper()
	v, err := st.SchemaVersion(context.Background())
	if err != nil {
		t.Fatalf("schema version: %v", err)
	}
	want := migrationCount(t, string(st.Dialect()))
	if v != want {
		t.Fatalf("schema version = %d, want %d (the number of embedded migrations)", v, want)
	}
}

// migrationCount counts the migration files of a dialect, so the test
// follows new migrations without editing.
func migrationCount(t *testing.T, dialect string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("migrations", dialect))
	if err != nil {
		t.Fatalf("read migrations: %v", err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sql") {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no migrations for %s", dialect)
	}
	return n
}

// TestStore checks the store's basic contract on both engines: a round
// trip, ErrNotFound, ErrDuplicate, ErrReference, rollback on error, the
// device counter, EnsureAccountByRef and the audit log. It is long because
// its subtests share one seeded store per engine.
func TestStore(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed := func(t *testing.T) {
			t.Helper()
			err := st.Update(ctx, func(tx *store.Tx) error {
				if err := tx.InsertGateway(ctx, store.Gateway{ID: "gw"}); err != nil {
					return err
				}
				if err := tx.InsertMerchant(ctx, store.Merchant{ID: "m1", Name: "M"}); err != nil {
					return err
				}
				return tx.InsertTerminal(ctx, store.Terminal{ID: "TERM0001", MerchantID: "m1", GatewayID: "gw", MCC: "5411", Currency: "392"})
			})
			if err != nil {
				t.Fatalf("seed: %v", err)
			}
		}
		seed(t)

		t.Run("terminal_round_trip", func(t *testing.T) {
			var got store.Terminal
			err := st.View(ctx, func(tx *store.Tx) error {
				var err error
				got, err = tx.Terminal(ctx, "TERM0001")
				return err
			})
			if err != nil {
				t.Fatalf("read terminal: %v", err)
			}
			if got.MerchantID != "m1" || got.GatewayID != "gw" || got.Currency != "392" || got.CreatedAt.IsZero() {
				t.Fatalf("terminal = %+v", got)
			}
		})
		t.Run("not_found", func(t *testing.T) {
			err := st.View(ctx, func(tx *store.Tx) error {
				_, err := tx.Terminal(ctx, "NOPE0000")
				return err
			})
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
		t.Run("duplicate", func(t *testing.T) {
			err := st.Update(ctx, func(tx *store.Tx) error {
				return tx.InsertGateway(ctx, store.Gateway{ID: "gw"})
			})
			if !errors.Is(err, store.ErrDuplicate) {
				t.Fatalf("err = %v, want ErrDuplicate", err)
			}
		})
		t.Run("unknown_reference", func(t *testing.T) {
			err := st.Update(ctx, func(tx *store.Tx) error {
				return tx.InsertTerminal(ctx, store.Terminal{ID: "TERM0009", MerchantID: "nope", GatewayID: "gw", MCC: "5411", Currency: "392"})
			})
			if !errors.Is(err, store.ErrReference) {
				t.Fatalf("err = %v, want ErrReference", err)
			}
		})
		t.Run("rollback_on_error", func(t *testing.T) {
			boom := errors.New("boom")
			err := st.Update(ctx, func(tx *store.Tx) error {
				if err := tx.InsertGateway(ctx, store.Gateway{ID: "gw-rolled-back"}); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want boom", err)
			}
			err = st.Update(ctx, func(tx *store.Tx) error {
				return tx.InsertGateway(ctx, store.Gateway{ID: "gw-rolled-back"})
			})
			if err != nil {
				t.Fatalf("gateway of a rolled-back transaction exists: %v", err)
			}
		})
		t.Run("device_counter", func(t *testing.T) {
			steps := []struct {
				counter uint64
				want    bool
			}{{5, true}, {5, false}, {4, false}, {6, true}, {100, true}, {99, false}}
			for _, s := range steps {
				var ok bool
				err := st.Update(ctx, func(tx *store.Tx) error {
					var err error
					ok, err = tx.AdvanceDeviceCounter(ctx, "dev", s.counter)
					return err
				})
				if err != nil || ok != s.want {
					t.Fatalf("advance to %d = %v, %v; want %v", s.counter, ok, err, s.want)
				}
			}
			var c uint64
			if err := st.View(ctx, func(tx *store.Tx) error {
				var err error
				c, err = tx.DeviceCounter(ctx, "dev")
				return err
			}); err != nil || c != 100 {
				t.Fatalf("counter = %d, %v; want 100", c, err)
			}
		})
		t.Run("ensure_account_by_ref_is_stable", func(t *testing.T) {
			var a, b int64
			err := st.Update(ctx, func(tx *store.Tx) error {
				var err error
				if a, err = tx.EnsureAccountByRef(ctx, store.Account{Kind: store.AccountIssuerFunding, Currency: "392", Ref: "x:392"}); err != nil {
					return err
				}
				b, err = tx.EnsureAccountByRef(ctx, store.Account{Kind: store.AccountIssuerFunding, Currency: "392", Ref: "x:392"})
				return err
			})
			if err != nil || a != b || a == 0 {
				t.Fatalf("ensure twice = %d, %d, %v", a, b, err)
			}
		})
		t.Run("audit_round_trip", func(t *testing.T) {
			err := st.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: "k", Actor: "a", Detail: "d"})
				return err
			})
			if err != nil {
				t.Fatalf("insert audit: %v", err)
			}
			var recs []store.AuditRecord
			err = st.View(ctx, func(tx *store.Tx) error {
				var err error
				recs, err = tx.Audit(ctx, "k", 10)
				return err
			})
			if err != nil || len(recs) != 1 || recs[0].Detail != "d" || recs[0].Actor != "a" {
				t.Fatalf("audit = %+v, %v", recs, err)
			}
		})
	})
}

func TestClosedStoreRefuses(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	err = st.View(context.Background(), func(*store.Tx) error { return nil })
	if !errors.Is(err, store.ErrClosed) {
		t.Fatalf("View after Close = %v, want ErrClosed", err)
	}
}

func TestViewRefusesWrites(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		err := st.View(ctx, func(tx *store.Tx) error {
			return tx.InsertGateway(ctx, store.Gateway{ID: "written-in-view"})
		})
		if err == nil {
			t.Fatal("a write inside View succeeded")
		}
	})
}
