package offline_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/negfile"
)

// schema1Golden is a schema-1 file written by the schema-1 code (see
// fillStore).
const schema1Golden = "testdata/schema1.db"

// bucketAt returns the bucket at path (a top-level bucket, then the
// buckets nested in it) in tx, or nil.
func bucketAt(tx *bolt.Tx, path ...string) *bolt.Bucket {
	b := tx.Bucket([]byte(path[0]))
	for _, name := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(name))
	}
	return b
}

// editFile changes the closed store file at path with bbolt directly, in
// one write transaction: what no store method would do.
func editFile(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies the file at from to a new file in t.TempDir and returns
// its path.
func copyFile(t testing.TB, from string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "offline.db")
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// bucketDump is a bucket's sequence and its keys with values (nested
// buckets are dumped on their own).
type bucketDump struct {
	Seq uint64
	KV  map[string]string
}

// fileDump is every bucket of a bbolt file by path: "top" or
// "top/nested".
type fileDump map[string]bucketDump

func dumpFile(t testing.TB, path string) fileDump {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := fileDump{}
	var walk func(name string, b *bolt.Bucket) error
	walk = func(name string, b *bolt.Bucket) error {
		bd := bucketDump{Seq: b.Sequence(), KV: map[string]string{}}
		d[name] = bd
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(name+"/"+string(k), b.Bucket(k))
			}
			bd.KV[string(k)] = string(v)
			return nil
		})
	}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name), b) })
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// diff describes the first differences between two dumps ("" when equal).
func (d fileDump) diff(want fileDump) string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(want)) {
		got, ok := d[p]
		switch {
		case !ok:
			out = append(out, "missing bucket "+p)
		case got.Seq != want[p].Seq:
			out = append(out, fmt.Sprintf("%s: sequence %d, want %d", p, got.Seq, want[p].Seq))
		case !maps.Equal(got.KV, want[p].KV):
			for _, k := range slices.Sorted(maps.Keys(want[p].KV)) {
				if v, ok := got.KV[k]; !ok || v != want[p].KV[k] {
					out = append(out, fmt.Sprintf("%s: key %q is %q, want %q", p, k, v, want[p].KV[k]))
				}
			}
			for k := range got.KV {
				if _, ok := want[p].KV[k]; !ok {
					out = append(out, fmt.Sprintf("%s: extra key %q", p, k))
				}
			}
		}
	}
	for p := range d {
		if _, ok := want[p]; !ok {
			out = append(out, "extra bucket "+p)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("… %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

// migrated is what a schema-1 file must become, stated here apart from
// the code: each schema-1 bucket moves whole (keys, values, sequence)
// under its concern; the negative file's state leaves meta for negative
// (neg.live's value naming the new bucket); the counters bucket splits
// into the exposure keys (standin/exposure) and the state counters
// (saf/counters); meta's schema becomes 2. Buckets schema 1 did not know
// stay where they are.
func migrated(v1 fileDump) fileDump {
	moves := map[string]string{
		"saf.rec": "saf/rec", "saf.state": "saf/state", "saf.out": "saf/out", "saf.idem": "saf/idem",
		"vel": "standin/velocity", "neg.a": "negative/a", "neg.b": "negative/b", "neg.delta": "negative/delta",
		"pos.txn": "pos/journal", "gw.reversal": "outbox/reversal", "gw.signature": "outbox/signature",
	}
	want := fileDump{}
	for _, p := range []string{"meta", "saf", "negative", "standin", "outbox", "pos",
		"saf/rec", "saf/state", "saf/out", "saf/idem", "saf/counters", "negative/a", "negative/b", "negative/delta",
		"standin/velocity", "standin/exposure", "outbox/reversal", "outbox/signature", "pos/journal"} {
		want[p] = bucketDump{KV: map[string]string{}}
	}
	for name, b := range v1 {
		switch {
		case name == "meta":
			for k, v := range b.KV {
				switch {
				case k == "neg.live":
					want["negative"].KV["live"] = strings.TrimPrefix(v, "neg.")
				case strings.HasPrefix(k, "neg."):
					want["negative"].KV[strings.TrimPrefix(k, "neg.")] = v
				default:
					want["meta"].KV[k] = v
				}
			}
			want["meta"].KV["schema"] = string(binary.BigEndian.AppendUint32(nil, 2))
		case name == "counters":
			for k, v := range b.KV {
				if k == "exposure" || strings.HasPrefix(k, "exposure.m.") {
					want["standin/exposure"].KV[k] = v
				} else {
					want["saf/counters"].KV[k] = v
				}
			}
		case moves[name] != "":
			want[moves[name]] = b
		default:
			want[name] = b
		}
	}
	return want
}

// goldenClock is the clock when fillStore finished writing the golden.
func goldenClock() *clock {
	c := newClock()
	c.Add(73*time.Hour + time.Minute)
	return c
}

// A schema-1 file written by the schema-1 code migrates on Open: every
// record byte for byte in its new place, every sequence kept; a second
// Open changes nothing; and the migrated store answers and continues
// exactly like a store that was filled the same way under the new code.
func TestMigrateSchema1(t *testing.T) {
	path := copyFile(t, schema1Golden)
	v1 := dumpFile(t, path)
	if v1["meta"].KV["schema"] != "\x00\x00\x00\x01" || len(v1["saf.rec"].KV) == 0 || len(v1["neg.delta"].KV) == 0 {
		t.Fatalf("%s is not the schema-1 golden file", schema1Golden)
	}
	st, _ := open(t, opts{path: path, clock: goldenClock()})
	st.Close()
	want := migrated(v1)
	if d := dumpFile(t, path).diff(want); d != "" {
		t.Fatalf("migrated file: %s", d)
	}
	st, _ = open(t, opts{path: path, clock: goldenClock()})
	st.Close()
	if d := dumpFile(t, path).diff(want); d != "" {
		t.Fatalf("reopening a migrated file changed it: %s", d)
	}

	clk := newClock()
	fresh, _ := open(t, opts{clock: clk})
	fillStore(t, fresh, clk)
	old, _ := open(t, opts{path: path, clock: goldenClock()})
	if got, want := storeView(t, old), storeView(t, fresh); !reflect.DeepEqual(got, want) {
		t.Fatalf("migrated store:\n%+v\nwant (filled by this code):\n%+v", got, want)
	}
}

// view is what a store answers, and what it does next.
type view struct {
	Stats                       offline.Stats
	Records                     []offline.Record
	Rejected, Expired           []offline.Record
	Negative                    offline.NegativeState
	Blocked                     []bool
	Headroom                    standin.Headroom
	POS                         []posRec
	Reversals, Signatures       []outRec
	NextApproval                offline.Decision
	NextPOS, NextRev, NextSig   uint64
	NegativeAfterSync           offline.NegativeState
	BlockedAfterSync, Velocity  []bool
	StatsAfterNext              offline.Stats
	RecordsAfterNext, Forwarded []offline.Record
}

func storeView(t *testing.T, st *offline.Store) view {
	t.Helper()
	var v view
	var err error
	q := st.Queue()
	if v.Stats, err = q.Stats(); err != nil {
		t.Fatal(err)
	}
	records := func() []offline.Record {
		var out []offline.Record
		for id := uint64(1); id <= 10; id++ {
			r, err := q.Get(id)
			if errors.Is(err, offline.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	v.Records = records()
	if v.Rejected, err = q.Rejected(); err != nil {
		t.Fatal(err)
	}
	if v.Expired, err = q.Expired(); err != nil {
		t.Fatal(err)
	}
	if v.Negative, err = st.Negative(); err != nil {
		t.Fatal(err)
	}
	probe := append(fps(0, 30), fps(100, 140)...)
	for _, f := range probe {
		v.Blocked = append(v.Blocked, blocked(t, st, f))
	}
	if v.Headroom, err = st.Headroom(standin.Scope{TerminalID: "T0000001", MerchantID: "M000000000001", Brand: "visa"}); err != nil {
		t.Fatal(err)
	}
	v.POS = loadPOS(t, st)
	v.Reversals, v.Signatures = loadOutbox(t, st.LoadReversals), loadOutbox(t, st.LoadSignatures)

	// What it does next: ids continue above the old sequences, the
	// velocity and exposure carried over count, the staged session
	// completes.
	if v.NextApproval, err = st.Approve(sale("N-1", fp(1002), 100)); err != nil {
		t.Fatal(err)
	}
	d, err := st.Approve(sale("N-2", fp(1002), 100)) // the card's third in the window
	if err != nil {
		t.Fatal(err)
	}
	v.Velocity = append(v.Velocity, d.Approved)
	if v.NextPOS, err = st.AddPOS("POSA", "pk-9", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if v.NextRev, err = st.AddReversal("N-R", []byte("1420")); err != nil {
		t.Fatal(err)
	}
	if v.NextSig, err = st.AddSignature("N-S", []byte("sig")); err != nil {
		t.Fatal(err)
	}
	applyAll(t, st, chunks(t, negfile.OpAdd, 2, 3, fps(100, 140), nil)[1:])
	if v.NegativeAfterSync, err = st.Negative(); err != nil {
		t.Fatal(err)
	}
	for _, f := range probe {
		v.BlockedAfterSync = append(v.BlockedAfterSync, blocked(t, st, f))
	}
	if v.Forwarded, err = q.Next(10); err != nil {
		t.Fatal(err)
	}
	if v.StatsAfterNext, err = q.Stats(); err != nil {
		t.Fatal(err)
	}
	v.RecordsAfterNext = records()
	return v
}

// Open refuses a schema-1 file it cannot migrate, and the file is left
// exactly as it was even when the migration had moved part of it.
func TestMigrateRefusesAndRollsBack(t *testing.T) {
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
	}{
		{"bucket_inside_vel", func(tx *bolt.Tx) error { // found after the saf buckets moved
			_, err := tx.Bucket([]byte("vel")).CreateBucket([]byte("x"))
			return err
		}},
		{"neg_live_names_no_bucket", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("neg.live"), []byte("neg.c"))
		}},
		{"new_bucket_already_there", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("standin"))
			return err
		}},
		{"schema1_bucket_missing", func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("neg.delta")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyFile(t, schema1Golden)
			editFile(t, path, tt.edit)
			before := dumpFile(t, path)
			_, err := offline.Open(offline.Config{Path: path, Sealer: softSealer(t)})
			if !errors.Is(err, offline.ErrNotStore) {
				t.Fatalf("Open = %v, want ErrNotStore", err)
			}
			if d := dumpFile(t, path).diff(before); d != "" {
				t.Fatalf("a refused migration changed the file: %s", d)
			}
		})
	}
}
