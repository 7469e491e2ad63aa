package offline_test

import (
	"testing"

	"github.com/posgate/posgate/protocol/negfile"
)

// FuzzApplyFileAction feeds arbitrary 1304 bytes to a store that holds
// version 5 with a session in progress: a refused chunk must leave the
// version and the session exactly as they were, and an accepted one must
// round-trip through the chunk encoder.
func FuzzApplyFileAction(f *testing.F) {
	seed := func(c negfile.Chunk) {
		b, err := negfile.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.Op.FunctionCode(), b)
	}
	seed(negfile.Chunk{Op: negfile.OpAdd, Base: 5, Version: 6, Seq: 1, Total: 1, Fingerprints: fps(0, 3)})
	seed(negfile.Chunk{Op: negfile.OpDelete, Base: 5, Version: 7, Seq: 2, Total: 2, Fingerprints: fps(0, 1)})
	seed(negfile.Chunk{Op: negfile.OpSnapshot, Version: 4, Seq: 1, Total: 1})
	seed(negfile.Chunk{Op: negfile.OpSnapshot, Version: 9, Seq: 2, Total: 3, Fingerprints: fps(5, 6)})
	f.Add("304", []byte("NF1 00000000 S 0 1 1 1"))

	st, _ := open(f, opts{})
	applyAll(f, st, chunks(f, negfile.OpSnapshot, 0, 5, fps(0, 30), nil))
	// A snapshot session to version 8 in progress (chunk 1 of 2 staged).
	applyAll(f, st, chunks(f, negfile.OpSnapshot, 0, 8, fps(100, 140), nil)[:1])

	f.Fuzz(func(t *testing.T, code string, b []byte) {
		before, err := st.Negative()
		if err != nil {
			t.Fatal(err)
		}
		p, err := st.ApplyFileAction(code, b)
		after, err2 := st.Negative()
		if err2 != nil {
			t.Fatal(err2)
		}
		if err != nil {
			if after.Version != before.Version || (after.Session == nil) != (before.Session == nil) ||
				(after.Session != nil && *after.Session != *before.Session) {
				t.Fatalf("a refused chunk changed the state: %+v → %+v", before, after)
			}
			return
		}
		c, perr := negfile.ParseFileAction(code, b)
		if perr != nil {
			t.Fatalf("applied bytes that do not parse: %v", perr)
		}
		if out, _ := negfile.Marshal(c); string(out) != string(b) {
			t.Fatal("applied chunk does not round-trip")
		}
		if p.Complete && after.Version != c.Version {
			t.Fatalf("complete session left version %d, want %d", after.Version, c.Version)
		}
	})
}
