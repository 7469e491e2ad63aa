package offline_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/protocol/negfile"
)

// fillStore writes the content of testdata/schema1.db into st through the
// store's API, with clk as st's clock (started at newClock's time): every
// bucket of the file holds records, and every bucket sequence is above
// its largest key. testdata/schema1.db is what this function wrote with
// the schema-1 code (commit ac31a45, sealed under testKey); the migration
// test runs it again on a new file to compare the two.
func fillStore(t testing.TB, st *offline.Store, clk *clock) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Negative file: snapshot 1 (staged in, then live in, the second
	// bucket), delta 1→2, and chunk 1 of 2 of a delta 2→3 staged.
	applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 1, fps(0, 10), nil))
	applyAll(t, st, chunks(t, negfile.OpAdd, 1, 2, fps(20, 25), fps(0, 10)[:2]))
	// Forwarding queue: id 1 expires, 2 and 4 are accepted and purged, 3
	// is rejected, 5 is a terminal's advice, 6 a terminal's advice already
	// sent, 7 pending.
	approve := func(key string, f string, amount int64) {
		t.Helper()
		d, err := st.Approve(sale(key, f, amount))
		if err != nil || !d.Approved {
			t.Fatalf("Approve %s = %+v, %v", key, d, err)
		}
	}
	approve("G-1", fp(1001), 1000)
	clk.Add(73 * time.Hour)
	if ok, err := st.Confirm(2); err != nil || !ok {
		t.Fatalf("Confirm(2) = %v, %v", ok, err)
	}
	approve("G-2", fp(1002), 2000)
	approve("G-3", fp(1003), 3000)
	approve("G-4", fp(1002), 4000)
	for i, sent := range []bool{false, true} {
		a := offline.Advice{IdempotencyKey: fmt.Sprintf("G-%d", 5+i), TerminalID: "T0000002", MerchantID: "M000000000002",
			Brand: "jcb", Fingerprint: fp(1005 + i), MaskedPAN: "353011******0000", Amount: int64(5000 + i), Currency: "392",
			ApprovalCode: fmt.Sprintf("A%d", 5+i), Sent: sent, Message: []byte(fmt.Sprintf("1220 advice %d", 5+i))}
		if _, err := st.Enqueue(a); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	q := st.Queue()
	if _, err := q.Next(10); err != nil {
		t.Fatal(err)
	}
	must(q.MarkSent(2, 3, 4))
	for id, action := range map[uint64]string{2: "000", 3: "116", 4: "001"} {
		if _, err := q.MarkAnswered(id, action); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Minute)
	if n, err := q.Purge(clk.Now()); err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	approve("G-7", fp(1007), 700)
	dc := chunks(t, negfile.OpAdd, 2, 3, fps(100, 140), nil)
	if len(dc) < 2 {
		t.Fatalf("delta 2→3 in %d chunks, want at least 2", len(dc))
	}
	applyAll(t, st, dc[:1])
	// POS journal: ids 1 and 2 kept (1 updated), 3 deleted.
	var pos []uint64
	for i := range 3 {
		id, err := st.AddPOS("POSA", fmt.Sprintf("pk-%d", i+1), []byte(fmt.Sprintf(`{"n":%d}`, i+1)))
		must(err)
		pos = append(pos, id)
	}
	must(st.UpdatePOS(pos[0], "POSA", "pk-1", []byte(`{"n":10}`)))
	must(st.DeletePOS(pos[2]))
	// Outboxes: reversal 1 kept, 2 deleted; signature 1 kept.
	r1, err := st.AddReversal("G-2-R", []byte("1420 one"))
	must(err)
	r2, err := st.AddReversal("G-3-R", []byte("1420 two"))
	must(err)
	must(st.DeleteReversal(r2))
	_, err = st.AddSignature("G-3", []byte("signature of G-3"))
	must(err)
	_ = r1
}
