package offline_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/protocol/negfile"
)

func TestNegativeSnapshotDeltaLookup(t *testing.T) {
	st, _ := open(t, opts{})
	snap := fps(0, 200)
	applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 10, snap, nil))
	// Delta 10→11: add 200..250, remove the first 50 of the snapshot.
	applyAll(t, st, chunks(t, negfile.OpAdd, 10, 11, fps(200, 250), snap[:50]))

	ns, err := st.Negative()
	if err != nil || !ns.Loaded || ns.Version != 11 || ns.Session != nil {
		t.Fatalf("Negative = %+v, %v; want version 11 loaded, no session", ns, err)
	}
	tests := []struct {
		name string
		fp   string
		want bool
	}{
		{"kept_from_snapshot", snap[100], true},
		{"added_by_delta", fps(200, 250)[7], true},
		{"removed_by_delta", snap[3], false},
		{"never_listed", fp(999999), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := blocked(t, st, tt.fp); got != tt.want {
				t.Fatalf("Blocked = %v, want %v", got, tt.want)
			}
		})
	}
	// A new snapshot replaces the file entirely.
	applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 12, fps(500, 510), nil))
	if blocked(t, st, snap[100]) || !blocked(t, st, fps(500, 510)[0]) {
		t.Fatal("snapshot 12 did not replace the file")
	}
	if _, err := st.Blocked("NOT-A-FINGERPRINT"); !errors.Is(err, offline.ErrInvalidRequest) {
		t.Fatalf("Blocked(malformed) = %v, want ErrInvalidRequest", err)
	}
}

func TestNegativeCutMidSync(t *testing.T) {
	tests := []struct {
		name    string
		restart bool
	}{{"resume", false}, {"restart", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, path := open(t, opts{})
			applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 1, fps(0, 20), nil))
			// Version 2 replaces the file; it travels in 3 chunks.
			next := fps(1000, 1070)
			cs := chunks(t, negfile.OpSnapshot, 0, 2, next, nil)
			if len(cs) != 3 {
				t.Fatalf("want 3 chunks, got %d", len(cs))
			}
			p, err := st.ApplyChunk(cs[0])
			if err != nil || p.Complete || p.Next != 2 || p.Version != 1 {
				t.Fatalf("chunk 1: %+v, %v", p, err)
			}
			// The cut: close and reopen the file.
			st.Close()
			st, _ = open(t, opts{path: path})
			ns, err := st.Negative()
			if err != nil {
				t.Fatal(err)
			}
			if ns.Version != 1 || ns.Session == nil || ns.Session.Next != 2 || ns.Session.Version != 2 {
				t.Fatalf("after the cut: %+v (session %+v), want version 1 in force and chunk 2 next", ns, ns.Session)
			}
			if !blocked(t, st, fps(0, 20)[5]) || blocked(t, st, next[0]) {
				t.Fatal("after the cut the old version is not the one in force")
			}
			if tt.restart {
				applyAll(t, st, cs)
			} else {
				// Resume; chunk 1 again is a harmless duplicate of an
				// already staged chunk.
				if _, err := st.ApplyChunk(cs[2]); !errors.Is(err, offline.ErrOutOfOrder) {
					t.Fatalf("chunk 3 before 2: %v, want ErrOutOfOrder", err)
				}
				applyAll(t, st, cs[1:])
			}
			ns, _ = st.Negative()
			if ns.Version != 2 || ns.Session != nil {
				t.Fatalf("after completing: %+v", ns)
			}
			if blocked(t, st, fps(0, 20)[5]) || !blocked(t, st, next[69]) || !blocked(t, st, next[0]) {
				t.Fatal("version 2 is not what Lookup sees")
			}
		})
	}
}

func TestNegativeRefusals(t *testing.T) {
	good := func(t *testing.T) *offline.Store {
		st, _ := open(t, opts{})
		applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 5, fps(0, 40), nil))
		return st
	}
	staleSnapshot := chunks(t, negfile.OpSnapshot, 0, 4, fps(100, 110), nil)[0]
	tests := []struct {
		name  string
		apply func(t *testing.T, st *offline.Store) error
		want  error
	}{
		{"snapshot_backwards", func(t *testing.T, st *offline.Store) error {
			_, err := st.ApplyChunk(staleSnapshot)
			return err
		}, offline.ErrVersionBackwards},
		{"delta_already_held", func(t *testing.T, st *offline.Store) error {
			_, err := st.ApplyChunk(chunks(t, negfile.OpAdd, 4, 5, fps(100, 101), nil)[0])
			return err
		}, offline.ErrVersionBackwards},
		{"delta_wrong_base", func(t *testing.T, st *offline.Store) error {
			_, err := st.ApplyChunk(chunks(t, negfile.OpAdd, 6, 7, fps(100, 101), nil)[0])
			return err
		}, offline.ErrBaseMismatch},
		{"corrupt_bytes", func(t *testing.T, st *offline.Store) error {
			b, _ := negfile.Marshal(chunks(t, negfile.OpAdd, 5, 6, fps(100, 110), nil)[0])
			b[40] ^= 0x01
			_, err := st.ApplyFileAction("301", b)
			return err
		}, offline.ErrCorruptChunk},
		{"truncated_bytes", func(t *testing.T, st *offline.Store) error {
			b, _ := negfile.Marshal(chunks(t, negfile.OpAdd, 5, 6, fps(100, 110), nil)[0])
			_, err := st.ApplyFileAction("301", b[:len(b)-7])
			return err
		}, offline.ErrCorruptChunk},
		{"wrong_function_code", func(t *testing.T, st *offline.Store) error {
			b, _ := negfile.Marshal(chunks(t, negfile.OpAdd, 5, 6, fps(100, 110), nil)[0])
			_, err := st.ApplyFileAction("304", b)
			return err
		}, negfile.ErrFunctionCode},
		{"snapshot_not_ascending_across_chunks", func(t *testing.T, st *offline.Store) error {
			cs := chunks(t, negfile.OpSnapshot, 0, 6, fps(200, 300), nil)
			cs[0].Fingerprints, cs[1].Fingerprints = cs[1].Fingerprints, cs[0].Fingerprints
			if _, err := st.ApplyChunk(cs[0]); err != nil {
				return err
			}
			_, err := st.ApplyChunk(cs[1])
			return err
		}, offline.ErrCorruptChunk},
		{"chunk_of_another_session", func(t *testing.T, st *offline.Store) error {
			a := chunks(t, negfile.OpSnapshot, 0, 6, fps(200, 300), nil)
			b := chunks(t, negfile.OpSnapshot, 0, 7, fps(200, 300), nil)
			if _, err := st.ApplyChunk(a[0]); err != nil {
				return err
			}
			_, err := st.ApplyChunk(b[1])
			return err
		}, offline.ErrSessionMismatch},
		{"hand_built_bad_fingerprint", func(t *testing.T, st *offline.Store) error {
			_, err := st.ApplyChunk(negfile.Chunk{Op: negfile.OpAdd, Base: 5, Version: 6, Seq: 1, Total: 1, Fingerprints: []string{"xyz"}})
			return err
		}, offline.ErrCorruptChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := good(t)
			err := tt.apply(t, st)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if bytes.Contains([]byte(err.Error()), []byte(fps(100, 110)[0])) {
				t.Fatal("error quotes a fingerprint")
			}
			ns, _ := st.Negative()
			if ns.Version != 5 || !blocked(t, st, fps(0, 40)[0]) || blocked(t, st, fps(100, 110)[0]) {
				t.Fatalf("version 5 is no longer in force unchanged: %+v", ns)
			}
		})
	}
}

func TestNegativeDuplicateChunkIgnored(t *testing.T) {
	st, _ := open(t, opts{})
	cs := chunks(t, negfile.OpSnapshot, 0, 3, fps(0, 100), nil)
	applyAll(t, st, cs[:2])
	p, err := st.ApplyChunk(cs[1])
	if err != nil || !p.Duplicate || p.Next != 3 {
		t.Fatalf("repeat of chunk 2: %+v, %v", p, err)
	}
	applyAll(t, st, cs[2:])
	if ns, _ := st.Negative(); ns.Version != 3 {
		t.Fatalf("version %d, want 3", ns.Version)
	}
}

func TestConfirmFreshens(t *testing.T) {
	clk := newClock()
	st, _ := open(t, opts{clock: clk})
	if ok, err := st.Confirm(1); err != nil || ok {
		t.Fatalf("Confirm with no file = %v, %v", ok, err)
	}
	applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 1, nil, nil))
	synced := clk.Now()
	clk.Add(30 * 3600e9)
	if ok, _ := st.Confirm(2); ok {
		t.Fatal("Confirm(2) with version 1 in force said current")
	}
	if ns, _ := st.Negative(); !ns.SyncedAt.Equal(synced) {
		t.Fatalf("SyncedAt moved on a failed confirm: %v", ns.SyncedAt)
	}
	if ok, _ := st.Confirm(1); !ok {
		t.Fatal("Confirm(1) with version 1 in force said not current")
	}
	if ns, _ := st.Negative(); !ns.SyncedAt.Equal(clk.Now()) {
		t.Fatalf("SyncedAt = %v, want now", ns.SyncedAt)
	}
}
