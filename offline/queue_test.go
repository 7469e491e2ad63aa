package offline_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
)

func approveN(t *testing.T, st *offline.Store, n int) []uint64 {
	t.Helper()
	var ids []uint64
	for i := range n {
		d, err := st.Approve(sale(fmt.Sprintf("q-%d", i), fp(i), int64(100*(i+1))))
		if err != nil || !d.Approved {
			t.Fatalf("Approve %d: %+v, %v", i, d, err)
		}
		ids = append(ids, d.RecordID)
	}
	return ids
}

func TestQueueForwarding(t *testing.T) {
	st, _ := loaded(t, opts{})
	q := st.Queue()
	ids := approveN(t, st, 5)

	recs, err := q.Next(3)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Next(3) = %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.ID != ids[i] || r.MTI() != "1220" || r.State != offline.StatePending || r.IdempotencyKey != fmt.Sprintf("q-%d", i) ||
			r.Amount != int64(100*(i+1)) || string(r.Message) != "request-"+r.IdempotencyKey || r.MaskedPAN != "411111******1111" {
			t.Fatalf("record %d = %v, want id %d in order as a first send", i, r, ids[i])
		}
	}
	// Record 0: sent, answered approved → leaves the queue.
	must(t, q.MarkSent(ids[0]))
	if out, err := q.MarkAnswered(ids[0], "000"); err != nil || out != offline.OutcomeAccepted {
		t.Fatalf("MarkAnswered 000 = %v, %v", out, err)
	}
	// Record 1: sent, link drops; it comes back as a repeat.
	must(t, q.MarkSent(ids[1]))
	// Record 2: sent, center declines (card blocked meanwhile).
	must(t, q.MarkSent(ids[2]))
	if out, err := q.MarkAnswered(ids[2], "208"); err != nil || out != offline.OutcomeRejected {
		t.Fatalf("MarkAnswered 208 = %v, %v", out, err)
	}
	// Record 3: center busy; stays queued.
	must(t, q.MarkSent(ids[3]))
	if out, err := q.MarkAnswered(ids[3], "909"); err != nil || out != offline.OutcomeRetry {
		t.Fatalf("MarkAnswered 909 = %v, %v", out, err)
	}

	recs, err = q.Next(10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%d:%s", r.ID, r.MTI()))
	}
	want := []string{fmt.Sprintf("%d:1221", ids[1]), fmt.Sprintf("%d:1221", ids[3]), fmt.Sprintf("%d:1220", ids[4])}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Next after answers = %v, want %v", got, want)
	}

	rej, err := q.Rejected()
	if err != nil || len(rej) != 1 || rej[0].ID != ids[2] || rej[0].Action != "208" || rej[0].State != offline.StateRejected || rej[0].AnsweredAt.IsZero() {
		t.Fatalf("Rejected = %v, %v", rej, err)
	}
	stats, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	wantStats := offline.Stats{
		Pending:  offline.Total{Count: 1, Amount: 500},
		Sent:     offline.Total{Count: 2, Amount: 200 + 400},
		Accepted: offline.Total{Count: 1, Amount: 100},
		Rejected: offline.Total{Count: 1, Amount: 300},
		Exposure: 200 + 400 + 500,
	}
	stats.Oldest = time.Time{}
	if stats != wantStats {
		t.Fatalf("Stats = %+v, want %+v", stats, wantStats)
	}

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"send_answered", func() error { return q.MarkSent(ids[0]) }, offline.ErrAnswered},
		{"answer_answered", func() error { _, err := q.MarkAnswered(ids[0], "000"); return err }, offline.ErrAnswered},
		{"answer_rejected", func() error { _, err := q.MarkAnswered(ids[2], "000"); return err }, offline.ErrAnswered},
		{"unknown_id", func() error { return q.MarkSent(9999) }, offline.ErrNotFound},
		{"bad_action", func() error { _, err := q.MarkAnswered(ids[1], "00"); return err }, offline.ErrInvalidRequest},
		{"requeue_not_expired", func() error { return q.Requeue(ids[1]) }, offline.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestQueueSurvivesReopen(t *testing.T) {
	st, path := loaded(t, opts{})
	ids := approveN(t, st, 3)
	must(t, st.Queue().MarkSent(ids[0]))
	if _, err := st.Queue().MarkAnswered(ids[1], "000"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, _ = open(t, opts{path: path})
	recs, err := st.Queue().Next(10)
	if err != nil || len(recs) != 2 || recs[0].ID != ids[0] || recs[0].MTI() != "1221" || recs[1].ID != ids[2] || recs[1].MTI() != "1220" {
		t.Fatalf("after reopen Next = %v, %v", recs, err)
	}
}

func TestQueueExpiry(t *testing.T) {
	clk := newClock()
	pol := standin.Policy{MaxAge: 48 * time.Hour, MaxStaleness: 1000 * time.Hour}
	st, _ := loaded(t, opts{clock: clk, policy: pol})
	q := st.Queue()
	old := approveN(t, st, 1)[0]
	clk.Add(24 * time.Hour)
	d, err := st.Approve(sale("young", fp(77), 900))
	if err != nil || !d.Approved {
		t.Fatal(d, err)
	}
	clk.Add(24*time.Hour + time.Second) // the first is now older than 48h

	recs, err := q.Next(10)
	if err != nil || len(recs) != 1 || recs[0].ID != d.RecordID {
		t.Fatalf("Next = %v, %v; want only the young record", recs, err)
	}
	exp, err := q.Expired()
	if err != nil || len(exp) != 1 || exp[0].ID != old || exp[0].State != offline.StateExpired {
		t.Fatalf("Expired = %v, %v", exp, err)
	}
	if err := q.MarkSent(old); !errors.Is(err, offline.ErrExpired) {
		t.Fatalf("MarkSent(expired) = %v", err)
	}
	stats, _ := q.Stats()
	if stats.Expired.Count != 1 || stats.Exposure != 100+900 {
		t.Fatalf("Stats = %+v: an expired record is still exposure", stats)
	}
	must(t, q.Requeue(old))
	recs, _ = q.Next(10)
	if len(recs) != 2 || recs[0].ID != old {
		t.Fatalf("after Requeue Next = %v", recs)
	}
}

func TestQueuePurge(t *testing.T) {
	clk := newClock()
	st, _ := loaded(t, opts{clock: clk})
	q := st.Queue()
	ids := approveN(t, st, 3)
	for _, id := range ids[:2] {
		if _, err := q.MarkAnswered(id, "000"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.MarkAnswered(ids[2], "100"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	n, err := q.Purge(clk.Now())
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	if _, err := q.Get(ids[0]); !errors.Is(err, offline.ErrNotFound) {
		t.Fatalf("purged record still there: %v", err)
	}
	if r, err := q.Get(ids[2]); err != nil || r.State != offline.StateRejected {
		t.Fatalf("rejected record after purge: %v, %v", r, err)
	}
	stats, _ := q.Stats()
	if stats.Accepted.Count != 0 || stats.Rejected.Count != 1 {
		t.Fatalf("Stats after purge = %+v", stats)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		action string
		want   offline.Outcome
	}{
		{"000", offline.OutcomeAccepted}, {"001", offline.OutcomeAccepted}, {"913", offline.OutcomeAccepted},
		{"100", offline.OutcomeRejected}, {"208", offline.OutcomeRejected}, {"904", offline.OutcomeRejected},
		{"907", offline.OutcomeRetry}, {"909", offline.OutcomeRetry}, {"911", offline.OutcomeRetry}, {"923", offline.OutcomeRetry},
	}
	for _, tt := range tests {
		t.Run("action_"+tt.action, func(t *testing.T) {
			if got := offline.Classify(tt.action); got != tt.want {
				t.Fatalf("Classify = %v, want %v", got, tt.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
