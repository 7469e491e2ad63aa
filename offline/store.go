// Package offline is the gateway's durable store for selling while the
// link to the center is down: the negative file (PAN fingerprints only,
// versioned, synced from the center in chunks), stand-in decisions with
// velocity and exposure counters, and the store-and-forward queue of
// offline approvals that go up as 1220/1221 advices; beside them, the
// other messages the gateway owes the center (the timeout-reversal and
// signature outboxes) and the POS API's transaction journal.
//
// Everything lives in one bbolt file owned by a Store, one top-level
// bucket per concern (layout.go names them all); Open migrates a file of
// an older schema in one transaction. Records at rest are sealed with
// AES-GCM by a Sealer.
//
// Every write goes through one committer goroutine that batches concurrent
// callers into a single bbolt transaction and fsync (group commit). A
// method that returns nil has made its change durable.
//
// docs/offline.md describes the buckets, formats and guarantees.
package offline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/posgate/posgate/offline/standin"
)

// Sealer seals and opens records at rest (AES-GCM under the gateway's
// at-rest token key in production). Implementations must be safe for
// concurrent use; Open must fail when sealed or aad was altered.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Sentinel errors, matched with errors.Is.
var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("offline: store closed")
	// ErrSchema is wrapped by *SchemaError.
	ErrSchema = errors.New("offline: unsupported store schema")
	// ErrNotStore reports a bbolt file that is not an offline store.
	ErrNotStore = errors.New("offline: file is not an offline store")
	// ErrStorage wraps a failure to read or write the bbolt file (full
	// disk, I/O error); the previous state stays in force.
	ErrStorage = errors.New("offline: storage failure")
	// ErrInvalidRequest reports a request the store cannot record
	// (missing idempotency key, malformed fingerprint).
	ErrInvalidRequest = errors.New("offline: invalid request")

	// ErrVersionBackwards reports a negative-file chunk older than the
	// version in force (a delta to a version already held, or a snapshot
	// of an older version).
	ErrVersionBackwards = errors.New("offline: negative-file version goes backwards")
	// ErrBaseMismatch reports a delta whose base is not the version in
	// force: the gateway needs a snapshot or another delta.
	ErrBaseMismatch = errors.New("offline: negative-file delta does not start at the version in force")
	// ErrSessionMismatch reports a chunk other than the first of a session
	// that is not the session in progress; Pending tells which is.
	ErrSessionMismatch = errors.New("offline: negative-file chunk does not belong to the session in progress")
	// ErrOutOfOrder reports a chunk past the next one expected.
	ErrOutOfOrder = errors.New("offline: negative-file chunk out of order")
	// ErrCorruptChunk reports a chunk whose content breaks the session's
	// rules (snapshot records not ascending across chunks, a bad
	// fingerprint in a hand-built chunk).
	ErrCorruptChunk = errors.New("offline: corrupt negative-file chunk")

	// ErrNotFound reports an unknown record id.
	ErrNotFound = errors.New("offline: no such record")
	// ErrAnswered reports a record the center has already answered.
	ErrAnswered = errors.New("offline: record already answered")
	// ErrExpired reports a record flagged expired (older than the
	// policy's maximum age); Requeue sends it anyway.
	ErrExpired = errors.New("offline: record expired")
	// ErrRecordSeal reports a record that cannot be sealed or opened.
	ErrRecordSeal = errors.New("offline: record seal")
)

// SchemaError reports a store file of a schema version this build cannot
// open: a newer one (written by a later build), or one never released.
type SchemaError struct {
	Found, Want uint32
}

func (e *SchemaError) Error() string {
	if e.Found > e.Want {
		return fmt.Sprintf("offline: store schema %d is newer than this build's %d: open it with the build that wrote it", e.Found, e.Want)
	}
	return fmt.Sprintf("offline: store schema %d was never released; this build reads %d and migrates 1", e.Found, e.Want)
}

// Unwrap returns ErrSchema.
func (e *SchemaError) Unwrap() error { return ErrSchema }

// Config configures a Store. Zero fields take the defaults stated.
type Config struct {
	// Path of the bbolt file; required. It is created if missing.
	Path string
	// Sealer seals records at rest; required.
	Sealer Sealer
	// Policy is the stand-in policy (zero value: every default).
	Policy standin.Policy
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OpenTimeout bounds the wait for the file lock; default 5s.
	OpenTimeout time.Duration
	// MaxBatch caps how many writes share one transaction; default 512.
	MaxBatch int
	// Linger is the longest a forming batch waits for approvals already
	// in progress (being sealed) before it commits; default 2ms. A batch
	// never waits when no approval is in progress. Negative: never wait.
	Linger time.Duration
}

// Validate reports every bad key.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: required"))
	}
	if c.Sealer == nil {
		errs = append(errs, errors.New("sealer: required"))
	}
	if c.OpenTimeout < 0 {
		errs = append(errs, fmt.Errorf("open_timeout %s: must be >= 0", c.OpenTimeout))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("max_batch %d: must be >= 0", c.MaxBatch))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("offline config: %w", errors.Join(errs...))
	}
	return nil
}

// Store is the gateway's offline store. It is safe for concurrent use.
// Close it to stop its committer and release the file.
type Store struct {
	db     *bolt.DB
	seal   Sealer
	now    func() time.Time
	policy atomic.Pointer[standin.Policy]
	c      *committer
	once   sync.Once
}

// Open opens or creates the store at cfg.Path. A file of an older schema
// is migrated to SchemaVersion in one transaction before Open returns (a
// migration that fails or is cut short leaves the file as it was); a file
// of a newer or unknown schema is refused with a *SchemaError and left
// untouched, a bbolt file without the offline layout with ErrNotStore.
func Open(cfg Config) (*Store, error) { return open(cfg, false) }

// open opens the store; boltBatch makes writes go through bbolt's own
// db.Batch instead of the committer (kept only to compare them in
// benchmarks).
func open(cfg Config, boltBatch bool) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 5 * time.Second
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 512
	}
	if cfg.Linger == 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:        cfg.OpenTimeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open offline store %s: %w (%w)", cfg.Path, err, ErrStorage)
	}
	if err := initSchema(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open offline store %s: %w", cfg.Path, err)
	}
	s := &Store{db: db, seal: cfg.Sealer, now: cfg.Now}
	p := cfg.Policy
	s.policy.Store(&p)
	s.c = newCommitter(db, cfg.MaxBatch, cfg.Linger)
	s.c.boltBatch = boltBatch
	return s, nil
}

// SetPolicy replaces the stand-in policy for decisions made from now on.
func (s *Store) SetPolicy(p standin.Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s.policy.Store(&p)
	return nil
}

// Policy returns the stand-in policy in force.
func (s *Store) Policy() standin.Policy { return *s.policy.Load() }

// Close waits for writes in progress, stops the committer and closes the
// file. Calls after the first return nil.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.c.close()
		if e := s.db.Close(); e != nil {
			err = fmt.Errorf("close offline store: %w", e)
		}
	})
	return err
}

// view runs fn in a read transaction, mapping bbolt failures to ErrStorage.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func getI64(b *bolt.Bucket, k []byte) int64 { return int64(getU64(b, k)) }

func addI64(b *bolt.Bucket, k []byte, d int64) error {
	return b.Put(k, u64(uint64(getI64(b, k)+d)))
}
