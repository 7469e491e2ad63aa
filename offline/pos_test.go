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

type posRec struct {
	id       uint64
	pos, key string
	data     string
	err      error
}

func loadPOS(t *testing.T, st *offline.Store) []posRec {
	t.Helper()
	var out []posRec
	if err := st.LoadPOS(func(id uint64, pos, key string, data []byte, err error) {
		out = append(out, posRec{id, pos, key, string(data), err})
	}); err != nil {
		t.Fatalf("LoadPOS: %v", err)
	}
	return out
}

func TestPOSRecordsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offline.db")
	st, _ := open(t, opts{path: path})
	a, err := st.AddPOS("POSA", "k-1", []byte(`{"masked_pan":"411111******1111","n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.AddPOS("POSA", "k-2", []byte(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.AddPOS("POSB", "k-1", []byte(`{"n":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if !(a < b && b < c) {
		t.Fatalf("ids %d %d %d do not grow", a, b, c)
	}
	if err := st.UpdatePOS(a, "POSA", "k-1", []byte(`{"masked_pan":"411111******1111","n":10}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdatePOS(b, "POSB", "k-2", []byte(`{}`)); !errors.Is(err, offline.ErrInvalidRequest) {
		t.Fatalf("UpdatePOS under another POS = %v, want ErrInvalidRequest", err)
	}
	if err := st.UpdatePOS(999, "POSA", "k-9", []byte(`{}`)); !errors.Is(err, offline.ErrNotFound) {
		t.Fatalf("UpdatePOS of an unknown id = %v, want ErrNotFound", err)
	}
	if _, err := st.AddPOS("", "k", nil); !errors.Is(err, offline.ErrInvalidRequest) {
		t.Fatalf("AddPOS without a POS id = %v", err)
	}
	if err := st.DeletePOS(b, 12345); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st2, _ := open(t, opts{path: path})
	got := loadPOS(t, st2)
	want := []posRec{{a, "POSA", "k-1", `{"masked_pan":"411111******1111","n":10}`, nil}, {c, "POSB", "k-1", `{"n":3}`, nil}}
	if len(got) != len(want) {
		t.Fatalf("loaded %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// Sealed at rest: the masked PAN is not in the file in clear.
	st2.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"411111******1111", `"n":10`} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Fatalf("%q is in the file in clear", clear)
		}
	}
}

func TestPOSRecordsUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offline.db")
	st, _ := open(t, opts{path: path})
	id, err := st.AddPOS("POSA", "k-1", []byte(`{"n":1}`))
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
		got := loadPOS(t, st)
		if len(got) != 1 || got[0].id != id || got[0].pos != "POSA" || got[0].key != "k-1" || !errors.Is(got[0].err, offline.ErrRecordSeal) {
			t.Fatalf("loaded %+v, want one ErrRecordSeal with its POS and key", got)
		}
		st.Close()
	})
	t.Run("broken_framing", func(t *testing.T) {
		editFile(t, path, func(tx *bolt.Tx) error {
			b := bucketAt(tx, "pos", "journal")
			if err := b.Put(binary.BigEndian.AppendUint64(nil, 77), []byte{9, 'x'}); err != nil {
				return err
			}
			return b.Put([]byte("bad"), []byte{1, 'p', 1, 'k', 0})
		})
		st, _ := open(t, opts{path: path})
		got := loadPOS(t, st)
		if len(got) != 3 || got[0].err != nil || got[0].data != `{"n":1}` ||
			!errors.Is(got[1].err, offline.ErrPOSRecord) || got[1].id != 77 || !errors.Is(got[2].err, offline.ErrPOSRecord) {
			t.Fatalf("loaded %+v", got)
		}
		st.Close()
	})
}

// A schema-1 file written before the POS bucket existed gets it at Open.
func TestPOSBucketAddedToOlderFile(t *testing.T) {
	st2 := openSchema1Without(t, "pos.txn")
	if _, err := st2.AddPOS("POSA", "k", []byte("{}")); err != nil {
		t.Fatalf("AddPOS on a file that lacked the bucket: %v", err)
	}
	if got := loadOutbox(t, st2.LoadReversals); len(got) != 1 || got[0].data != "1420 one" {
		t.Fatalf("the file's reversals after the migration: %+v", got)
	}
}

func FuzzPOSUnframe(f *testing.F) {
	f.Add(offline.POSFrame("POSA", "k-1", []byte("sealed")))
	f.Add([]byte{})
	f.Add([]byte{1, 'p', 0})
	f.Add([]byte{255})
	f.Fuzz(func(t *testing.T, v []byte) {
		pos, key, sealed, err := offline.POSUnframe(v)
		if err != nil {
			if !errors.Is(err, offline.ErrPOSRecord) {
				t.Fatalf("error %v does not wrap ErrPOSRecord", err)
			}
			return
		}
		if pos == "" || key == "" || len(sealed) == 0 {
			t.Fatalf("accepted an empty part: %q %q %x", pos, key, sealed)
		}
		if !bytes.Equal(offline.POSFrame(pos, key, sealed), v) {
			t.Fatalf("round trip changed %x", v)
		}
	})
}
