package offline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout of the bbolt file this package writes. Open
// migrates a file of every older released version to it (docs/offline.md,
// "Schema and migration").
const SchemaVersion = 2

// The file's layout (docs/offline.md, "The file"): one top-level bucket per
// concern, each holding its own buckets and keys. Only this file names
// them; the code of each concern reaches its buckets through the
// accessors below.
var (
	bMeta     = []byte("meta")     // kSchema
	bSAF      = []byte("saf")      // the forwarding queue
	bNegative = []byte("negative") // the negative file
	bStandIn  = []byte("standin")  // velocity and exposure
	bOutbox   = []byte("outbox")   // timeout reversals and signatures
	bPOS      = []byte("pos")      // the POS API's transaction journal

	kSchema = []byte("schema")

	// In saf.
	bSAFRec    = []byte("rec")      // record id → len(idem) ‖ idem ‖ sealed payload; sequence: record ids
	bSAFState  = []byte("state")    // record id → state record
	bSAFOut    = []byte("out")      // record id → present: queued
	bSAFIdem   = []byte("idem")     // idempotency key → record id
	bSAFCounts = []byte("counters") // n.<state>, a.<state> → int64

	// In negative: two file buckets (one live), the delta staging bucket,
	// and the state keys.
	bNegA      = []byte("a")
	bNegB      = []byte("b")
	bNegDelta  = []byte("delta")
	kNegLive   = []byte("live")    // "a" or "b" (absent: "a")
	kNegVer    = []byte("version") // uint64
	kNegSynced = []byte("synced")  // int64 Unix ns
	kNegSess   = []byte("session") // sync session in progress

	// In standin.
	bVelocity = []byte("velocity") // fingerprint → 16-byte entries
	bExposure = []byte("exposure") // kExpTotal, exposure.m.<merchant> → int64
	kExpTotal = []byte("exposure")

	// In outbox.
	bReversal  = []byte("reversal")
	bSignature = []byte("signature")

	// In pos.
	bJournal = []byte("journal")
)

// layout lists every bucket of the current schema: each top-level bucket
// with the buckets nested in it.
var layout = []struct {
	top    []byte
	nested [][]byte
}{
	{bMeta, nil},
	{bSAF, [][]byte{bSAFRec, bSAFState, bSAFOut, bSAFIdem, bSAFCounts}},
	{bNegative, [][]byte{bNegA, bNegB, bNegDelta}},
	{bStandIn, [][]byte{bVelocity, bExposure}},
	{bOutbox, [][]byte{bReversal, bSignature}},
	{bPOS, [][]byte{bJournal}},
}

// Accessors of the nested buckets, for a transaction that opened a file
// initSchema accepted (so they are never nil, except a negative file
// bucket while applyChunk recreates it).
func safRec(tx *bolt.Tx) *bolt.Bucket                { return tx.Bucket(bSAF).Bucket(bSAFRec) }
func safState(tx *bolt.Tx) *bolt.Bucket              { return tx.Bucket(bSAF).Bucket(bSAFState) }
func safOut(tx *bolt.Tx) *bolt.Bucket                { return tx.Bucket(bSAF).Bucket(bSAFOut) }
func safIdem(tx *bolt.Tx) *bolt.Bucket               { return tx.Bucket(bSAF).Bucket(bSAFIdem) }
func safCounts(tx *bolt.Tx) *bolt.Bucket             { return tx.Bucket(bSAF).Bucket(bSAFCounts) }
func negative(tx *bolt.Tx) *bolt.Bucket              { return tx.Bucket(bNegative) }
func velocity(tx *bolt.Tx) *bolt.Bucket              { return tx.Bucket(bStandIn).Bucket(bVelocity) }
func exposure(tx *bolt.Tx) *bolt.Bucket              { return tx.Bucket(bStandIn).Bucket(bExposure) }
func outboxOf(tx *bolt.Tx, name []byte) *bolt.Bucket { return tx.Bucket(bOutbox).Bucket(name) }
func posJournal(tx *bolt.Tx) *bolt.Bucket            { return tx.Bucket(bPOS).Bucket(bJournal) }

// initSchema creates the layout in an empty file, migrates a file of an
// older schema, and checks a file of the current one, all in one write
// transaction: a file it refuses, or a migration that fails or is cut
// short, is left exactly as it was.
func initSchema(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return ErrNotStore
			}
			if err := createLayout(tx); err != nil {
				return err
			}
			return putSchema(tx)
		}
		v := meta.Get(kSchema)
		if len(v) != 4 {
			return ErrNotStore
		}
		switch got := binary.BigEndian.Uint32(v); {
		case got == SchemaVersion:
		case got == 1:
			if err := migrate1(tx); err != nil {
				return fmt.Errorf("migrate schema 1 to %d: %w", SchemaVersion, err)
			}
		default:
			// Newer than this build, or a version never released.
			return &SchemaError{Found: got, Want: SchemaVersion}
		}
		return checkLayout(tx)
	})
}

func putSchema(tx *bolt.Tx) error {
	if err := tx.Bucket(bMeta).Put(kSchema, u32(SchemaVersion)); err != nil {
		return fmt.Errorf("write schema version: %w (%w)", err, ErrStorage)
	}
	return nil
}

// createLayout creates every bucket of the layout but an existing meta;
// any other bucket already there is an error wrapping ErrNotStore.
func createLayout(tx *bolt.Tx) error {
	for _, l := range layout {
		top := tx.Bucket(l.top)
		if top == nil || !bytes.Equal(l.top, bMeta) {
			var err error
			if top, err = tx.CreateBucket(l.top); err != nil {
				return bucketErr(l.top, err)
			}
		}
		for _, name := range l.nested {
			if _, err := top.CreateBucket(name); err != nil {
				return bucketErr(name, err)
			}
		}
	}
	return nil
}

// bucketErr reports a bucket that could not be created: an existing key or
// bucket in its place means the file is not what its schema says.
func bucketErr(name []byte, err error) error {
	if errors.Is(err, berrors.ErrBucketExists) || errors.Is(err, berrors.ErrIncompatibleValue) {
		return fmt.Errorf("create bucket %s: %w (%w)", name, err, ErrNotStore)
	}
	return fmt.Errorf("create bucket %s: %w (%w)", name, err, ErrStorage)
}

func checkLayout(tx *bolt.Tx) error {
	for _, l := range layout {
		top := tx.Bucket(l.top)
		if top == nil {
			return fmt.Errorf("bucket %s missing: %w", l.top, ErrNotStore)
		}
		for _, name := range l.nested {
			if top.Bucket(name) == nil {
				return fmt.Errorf("bucket %s/%s missing: %w", l.top, name, ErrNotStore)
			}
		}
	}
	return nil
}

// Schema 1 (the first released layout) kept every bucket at the top
// level and the negative file's state in meta. pos.txn, gw.reversal and
// gw.signature were added to it later and may be missing.
var (
	v1NegA     = []byte("neg.a")
	v1NegB     = []byte("neg.b")
	v1Counters = []byte("counters")
	v1NegKeys  = map[string][]byte{"neg.live": kNegLive, "neg.version": kNegVer, "neg.synced": kNegSynced, "neg.session": kNegSess}
	v1Required = [][]byte{[]byte("saf.rec"), []byte("saf.state"), []byte("saf.out"), []byte("saf.idem"), []byte("vel"), v1Counters, v1NegA, v1NegB, []byte("neg.delta")}
	v1Added    = [][]byte{[]byte("pos.txn"), []byte("gw.reversal"), []byte("gw.signature")}
	v1Moves    = map[string][2][]byte{ // schema-1 bucket → (top, nested) of schema 2
		"saf.rec":      {bSAF, bSAFRec},
		"saf.state":    {bSAF, bSAFState},
		"saf.out":      {bSAF, bSAFOut},
		"saf.idem":     {bSAF, bSAFIdem},
		"vel":          {bStandIn, bVelocity},
		"neg.a":        {bNegative, bNegA},
		"neg.b":        {bNegative, bNegB},
		"neg.delta":    {bNegative, bNegDelta},
		"pos.txn":      {bPOS, bJournal},
		"gw.reversal":  {bOutbox, bReversal},
		"gw.signature": {bOutbox, bSignature},
	}
)

// migrate1 moves a schema-1 file into the current layout inside tx. Every
// key and value moves byte for byte and every bucket keeps its sequence
// (so ids are never reused); the only value rewritten is neg.live, whose
// value named a schema-1 bucket. The counters bucket splits by key: the
// exposure keys go to standin/exposure, the state counters to
// saf/counters. Buckets and meta keys schema 1 did not have are left
// where they are.
func migrate1(tx *bolt.Tx) error {
	for _, name := range v1Required {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("schema-1 bucket %s missing: %w", name, ErrNotStore)
		}
	}
	if err := createLayout(tx); err != nil {
		return err
	}
	for _, name := range append(append([][]byte(nil), v1Required...), v1Added...) {
		src := tx.Bucket(name)
		if src == nil {
			continue // one of the buckets added to schema 1 later
		}
		var dst func(k []byte) *bolt.Bucket
		if bytes.Equal(name, v1Counters) {
			sc, ex := safCounts(tx), exposure(tx)
			dst = func(k []byte) *bolt.Bucket {
				if bytes.Equal(k, kExpTotal) || bytes.HasPrefix(k, []byte("exposure.m.")) {
					return ex
				}
				return sc
			}
		} else {
			to := v1Moves[string(name)]
			b := tx.Bucket(to[0]).Bucket(to[1])
			if err := b.SetSequence(src.Sequence()); err != nil {
				return fmt.Errorf("copy sequence of %s: %w (%w)", name, err, ErrStorage)
			}
			dst = func([]byte) *bolt.Bucket { return b }
		}
		err := src.ForEach(func(k, v []byte) error {
			if v == nil {
				return fmt.Errorf("schema-1 bucket %s holds a bucket %q: %w", name, k, ErrNotStore)
			}
			b := dst(k)
			b.FillPercent = 1.0 // ForEach goes in key order
			if err := b.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
				return fmt.Errorf("copy %s: %w (%w)", name, err, ErrStorage)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("delete schema-1 bucket %s: %w (%w)", name, err, ErrStorage)
		}
	}
	meta, neg := tx.Bucket(bMeta), negative(tx)
	for old, k := range v1NegKeys {
		v := meta.Get([]byte(old))
		if v == nil {
			continue
		}
		v = bytes.Clone(v)
		if bytes.Equal(k, kNegLive) {
			switch {
			case bytes.Equal(v, v1NegA):
				v = bNegA
			case bytes.Equal(v, v1NegB):
				v = bNegB
			default:
				return fmt.Errorf("schema-1 neg.live names no negative-file bucket: %w", ErrNotStore)
			}
		}
		if err := neg.Put(k, v); err != nil {
			return fmt.Errorf("copy meta %s: %w (%w)", old, err, ErrStorage)
		}
		if err := meta.Delete([]byte(old)); err != nil {
			return fmt.Errorf("delete meta %s: %w (%w)", old, err, ErrStorage)
		}
	}
	return putSchema(tx)
}
