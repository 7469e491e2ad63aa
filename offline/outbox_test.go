package offline_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/posgate/posgate/offline"
)

type outRec struct {
	id   uint64
	key  string
	data string
	err  error
}

func loadOutbox(t *testing.T, load func(func(uint64, string, []byte, error)) error) []outRec {
	t.Helper()
	var out []outRec
	if err := load(func(id uint64, key string, data []byte, err error) {
		out = append(out, outRec{id, key, string(data), err})
	}); err != nil {
		t.Fatalf("load: %v", err)
	}
	return out
}

// Reversals and signatures survive a reopen, sealed: the file holds no
// masked PAN in clear, and each outbox keeps its own records.
func TestOutboxSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offline.db")
	st, _ := open(t, opts{path: path})
	const pan = "476173******0119"
	r1, err := st.AddReversal("T1-000001-R", []byte("1420 for "+pan))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := st.AddReversal("T1-000002-R", []byte("1420 two"))
	if err != nil {
		t.Fatal(err)
	}
	s1, err := st.AddSignature("T1-000001", []byte("signature of "+pan))
	if err != nil {
		t.Fatal(err)
	}
	if r2 <= r1 {
		t.Fatalf("ids %d then %d: not growing", r1, r2)
	}
	if _, err := st.AddReversal("", []byte("x")); !errors.Is(err, offline.ErrInvalidRequest) {
		t.Fatalf("empty key: %v, want ErrInvalidRequest", err)
	}
	if _, err := st.AddSignature("k", nil); !errors.Is(err, offline.ErrInvalidRequest) {
		t.Fatalf("no data: %v, want ErrInvalidRequest", err)
	}
	st.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(pan)) || bytes.Contains(raw, []byte("1420 two")) {
		t.Fatal("a reversal or signature is in clear in the bbolt file")
	}

	st, _ = open(t, opts{path: path})
	revs := loadOutbox(t, st.LoadReversals)
	if len(revs) != 2 || revs[0] != (outRec{r1, "T1-000001-R", "1420 for " + pan, nil}) || revs[1] != (outRec{r2, "T1-000002-R", "1420 two", nil}) {
		t.Fatalf("reversals after reopen: %+v", revs)
	}
	sigs := loadOutbox(t, st.LoadSignatures)
	if len(sigs) != 1 || sigs[0] != (outRec{s1, "T1-000001", "signature of " + pan, nil}) {
		t.Fatalf("signatures after reopen: %+v", sigs)
	}
	if err := st.DeleteReversal(r1, 999); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteSignature(s1); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st, _ = open(t, opts{path: path})
	if revs := loadOutbox(t, st.LoadReversals); len(revs) != 1 || revs[0].id != r2 {
		t.Fatalf("reversals after delete: %+v", revs)
	}
	if sigs := loadOutbox(t, st.LoadSignatures); len(sigs) != 0 {
		t.Fatalf("signatures after delete: %+v", sigs)
	}
	// Ids are never reused.
	r3, err := st.AddReversal("T1-000003-R", []byte("three"))
	if err != nil || r3 <= r2 {
		t.Fatalf("AddReversal after delete: id %d (%v), want > %d", r3, err, r2)
	}
}

// A record moved to the other outbox or under another key, sealed under
// another key, or with broken framing is reported, not returned.
func TestOutboxUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offline.db")
	st, _ := open(t, opts{path: path})
	id, err := st.AddReversal("k-1", []byte("rev"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	t.Run("other_key", func(t *testing.T) {
		s, err := softSealerWith([]byte("another-offline-test-key-32bytes"))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := open(t, opts{path: path, sealer: s})
		got := loadOutbox(t, st.LoadReversals)
		if len(got) != 1 || got[0].id != id || got[0].key != "k-1" || !errors.Is(got[0].err, offline.ErrRecordSeal) {
			t.Fatalf("loaded %+v, want one ErrRecordSeal with its key", got)
		}
		st.Close()
	})
	t.Run("moved", func(t *testing.T) {
		editFile(t, path, func(tx *bolt.Tx) error {
			revs := bucketAt(tx, "outbox", "reversal")
			v := revs.Get(binary.BigEndian.AppendUint64(nil, id))
			moved := append([]byte{3, 'k', '-', '2'}, v[4:]...)
			if err := revs.Put(binary.BigEndian.AppendUint64(nil, 50), moved); err != nil {
				return err
			}
			return bucketAt(tx, "outbox", "signature").Put(binary.BigEndian.AppendUint64(nil, 1), append([]byte(nil), v...))
		})
		st, _ := open(t, opts{path: path})
		got := loadOutbox(t, st.LoadReversals)
		if len(got) != 2 || got[0].err != nil || got[0].data != "rev" || got[1].id != 50 || !errors.Is(got[1].err, offline.ErrRecordSeal) {
			t.Fatalf("reversals: %+v", got)
		}
		if got := loadOutbox(t, st.LoadSignatures); len(got) != 1 || !errors.Is(got[0].err, offline.ErrRecordSeal) {
			t.Fatalf("a reversal moved to the signatures opened: %+v", got)
		}
		st.Close()
	})
	t.Run("broken_framing", func(t *testing.T) {
		editFile(t, path, func(tx *bolt.Tx) error {
			b := bucketAt(tx, "outbox", "reversal")
			if err := b.Put(binary.BigEndian.AppendUint64(nil, 77), []byte{9, 'x'}); err != nil {
				return err
			}
			return b.Put([]byte("bad"), []byte{1, 'k', 0})
		})
		st, _ := open(t, opts{path: path})
		got := loadOutbox(t, st.LoadReversals)
		if len(got) != 4 || got[0].err != nil || !errors.Is(got[2].err, offline.ErrOutboxRecord) || got[2].id != 77 ||
			!errors.Is(got[3].err, offline.ErrOutboxRecord) {
			t.Fatalf("loaded %+v", got)
		}
		st.Close()
	})
}

// A schema-1 file written before the outboxes existed gets them at Open.
func TestOutboxBucketsAddedToOlderFile(t *testing.T) {
	st2 := openSchema1Without(t, "gw.reversal", "gw.signature")
	if _, err := st2.AddReversal("k", []byte("r")); err != nil {
		t.Fatalf("AddReversal on a file that lacked the bucket: %v", err)
	}
	if _, err := st2.AddSignature("k", []byte("s")); err != nil {
		t.Fatalf("AddSignature on a file that lacked the bucket: %v", err)
	}
	if got := loadPOS(t, st2); len(got) != 2 || got[0].data != `{"n":10}` {
		t.Fatalf("the file's POS records after the migration: %+v", got)
	}
}

// openSchema1Without copies the schema-1 golden file, deletes the named
// schema-1 buckets from it with bbolt directly (a file from before they
// existed), and opens (so migrates) it.
func openSchema1Without(t *testing.T, buckets ...string) *offline.Store {
	t.Helper()
	path := copyFile(t, schema1Golden)
	editFile(t, path, func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	st, _ := open(t, opts{path: path, clock: goldenClock()})
	return st
}

func FuzzOutboxUnframe(f *testing.F) {
	f.Add(offline.OutboxFrame("T1-000001-R", []byte("sealed")))
	f.Add([]byte{})
	f.Add([]byte{1, 'k'})
	f.Add([]byte{255})
	f.Add([]byte{0, 'x'})
	f.Fuzz(func(t *testing.T, v []byte) {
		key, sealed, err := offline.OutboxUnframe(v)
		if err != nil {
			if !errors.Is(err, offline.ErrOutboxRecord) {
				t.Fatalf("error %v does not wrap ErrOutboxRecord", err)
			}
			return
		}
		if key == "" || len(sealed) == 0 {
			t.Fatalf("accepted an empty part: %q %x", key, sealed)
		}
		if !bytes.Equal(offline.OutboxFrame(key, sealed), v) {
			t.Fatalf("round trip changed %x", v)
		}
	})
}
