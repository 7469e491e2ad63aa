package offline_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
)

// advice returns a valid terminal advice with a unique idempotency key.
func advice(key, fingerprint string, amount int64) offline.Advice {
	return offline.Advice{IdempotencyKey: key, TerminalID: "T0000001", MerchantID: "M000000000001", Brand: "visa",
		Fingerprint: fingerprint, MaskedPAN: "411111******1111", Amount: amount, Currency: "392",
		ApprovalCode: "Y10042", Chip: standin.ChipTC, Message: []byte("advice-" + key)}
}

// TestEnqueueAdvice stores terminal advices between stand-in approvals:
// they keep their place by id, open with the terminal's approval code and
// message, count towards exposure but not velocity, go out as 1220 (1221
// when stored as sent), and a repeated key stores nothing.
func TestEnqueueAdvice(t *testing.T) {
	st, path := loaded(t, opts{})
	d1, err := st.Approve(sale("s-1", fp(1), 100))
	if err != nil || !d1.Approved {
		t.Fatalf("Approve: %+v, %v", d1, err)
	}
	a := advice("a-1", fp(2), 700)
	q1, err := st.Enqueue(a)
	if err != nil || q1.Duplicate || q1.RecordID != d1.RecordID+1 {
		t.Fatalf("Enqueue: %+v, %v; want record %d", q1, err, d1.RecordID+1)
	}
	sent := advice("a-2", fp(2), 300)
	sent.Sent = true
	q2, err := st.Enqueue(sent)
	if err != nil || q2.Duplicate {
		t.Fatalf("Enqueue sent: %+v, %v", q2, err)
	}
	// A repeat of a-1 (another message, same key) stores nothing.
	again := advice("a-1", fp(2), 700)
	again.Message = []byte("another copy")
	if q, err := st.Enqueue(again); err != nil || !q.Duplicate || q.RecordID != q1.RecordID {
		t.Fatalf("repeated Enqueue: %+v, %v; want duplicate of %d", q, err, q1.RecordID)
	}
	// A stand-in approval's key is not stored again as an advice either.
	if q, err := st.Enqueue(advice("s-1", fp(1), 100)); err != nil || !q.Duplicate || q.RecordID != d1.RecordID {
		t.Fatalf("Enqueue under a stand-in key: %+v, %v", q, err)
	}

	check := func(st *offline.Store) {
		t.Helper()
		recs, err := st.Queue().Next(10)
		if err != nil || len(recs) != 3 {
			t.Fatalf("Next: %d records, %v; want 3", len(recs), err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%d:%s:%s:%s:%s", r.ID, r.Origin, r.MTI(), r.State, r.ApprovalCode))
		}
		want := []string{
			fmt.Sprintf("%d:stand-in:1220:pending:%s", d1.RecordID, d1.ApprovalCode),
			fmt.Sprintf("%d:terminal:1220:pending:Y10042", q1.RecordID),
			fmt.Sprintf("%d:terminal:1221:sent:Y10042", q2.RecordID),
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("queue %v, want %v", got, want)
		}
		r := recs[1]
		if string(r.Message) != "advice-a-1" || r.Amount != 700 || r.Chip != standin.ChipTC || r.MaskedPAN != "411111******1111" ||
			r.Fingerprint != fp(2) || r.TerminalID != "T0000001" || r.MerchantID != "M000000000001" || r.Currency != "392" {
			t.Fatalf("advice record %v does not describe the advice", r)
		}
		stats, err := st.Queue().Stats()
		if err != nil {
			t.Fatal(err)
		}
		if stats.Pending != (offline.Total{Count: 2, Amount: 800}) || stats.Sent != (offline.Total{Count: 1, Amount: 300}) || stats.Exposure != 1100 {
			t.Fatalf("stats %+v", stats)
		}
	}
	check(st)
	// The advices survive a restart.
	st.Close()
	st2, _ := open(t, opts{path: path})
	check(st2)

	// Advices do not count towards the card's velocity: three stand-in
	// approvals of fp(2) (the default card count) are still approved.
	for i := range standin.DefaultCardCount {
		if d, err := st2.Approve(sale(fmt.Sprintf("v-%d", i), fp(2), 100)); err != nil || !d.Approved {
			t.Fatalf("stand-in approval %d of the advised card: %+v, %v", i, d, err)
		}
	}
	// Answering releases the exposure.
	recs, _ := st2.Queue().Next(10)
	for _, r := range recs {
		if err := st2.Queue().MarkSent(r.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st2.Queue().MarkAnswered(r.ID, "000"); err != nil {
			t.Fatal(err)
		}
	}
	if stats, _ := st2.Queue().Stats(); stats.Exposure != 0 || stats.Accepted.Count != 6 {
		t.Fatalf("stats after answers %+v", stats)
	}
}

// TestEnqueueBeyondExposure stores an advice over the total exposure cap
// (the terminal already approved it); stand-in then declines until the
// advice is answered.
func TestEnqueueBeyondExposure(t *testing.T) {
	st, _ := loaded(t, opts{policy: standin.Policy{TotalExposure: 1000}})
	q, err := st.Enqueue(advice("a-big", fp(3), 5000))
	if err != nil {
		t.Fatalf("Enqueue over the cap: %v", err)
	}
	d, err := st.Approve(sale("s-after", fp(4), 100))
	if err != nil || d.Approved || d.Reason != standin.ReasonTotalExposure {
		t.Fatalf("stand-in with the advice unanswered: %+v, %v; want total exposure decline", d, err)
	}
	if err := st.Queue().MarkSent(q.RecordID); err != nil {
		t.Fatal(err)
	}
	if out, err := st.Queue().MarkAnswered(q.RecordID, "116"); err != nil || out != offline.OutcomeRejected {
		t.Fatalf("MarkAnswered 116: %v, %v", out, err)
	}
	rej, err := st.Queue().Rejected()
	if err != nil || len(rej) != 1 || rej[0].Origin != offline.OriginTerminal || rej[0].ApprovalCode != "Y10042" {
		t.Fatalf("rejected %v, %v", rej, err)
	}
	if d, err := st.Approve(sale("s-later", fp(4), 100)); err != nil || !d.Approved {
		t.Fatalf("stand-in after the answer: %+v, %v", d, err)
	}
}

func TestEnqueueRefusals(t *testing.T) {
	tests := []struct {
		name   string
		change func(*offline.Advice)
	}{
		{"no_key", func(a *offline.Advice) { a.IdempotencyKey = "" }},
		{"key_too_long", func(a *offline.Advice) { a.IdempotencyKey = string(bytes.Repeat([]byte("k"), 65)) }},
		{"bad_fingerprint", func(a *offline.Advice) { a.Fingerprint = "not-hex" }},
		{"upper_case_fingerprint", func(a *offline.Advice) { a.Fingerprint = "00112233445566778899AABBCCDDEEFF" }},
		{"no_approval_code", func(a *offline.Advice) { a.ApprovalCode = "" }},
		{"approval_code_too_long", func(a *offline.Advice) { a.ApprovalCode = "Y100421" }},
		{"zero_amount", func(a *offline.Advice) { a.Amount = 0 }},
		{"merchant_too_long", func(a *offline.Advice) { a.MerchantID = string(bytes.Repeat([]byte("m"), 256)) }},
		{"no_message", func(a *offline.Advice) { a.Message = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := loaded(t, opts{})
			a := advice("a-bad", fp(5), 100)
			tt.change(&a)
			if _, err := st.Enqueue(a); !errors.Is(err, offline.ErrInvalidRequest) {
				t.Fatalf("Enqueue = %v, want ErrInvalidRequest", err)
			}
			if stats, _ := st.Queue().Stats(); stats.Pending.Count != 0 || stats.Exposure != 0 {
				t.Fatalf("a refused advice changed the store: %+v", stats)
			}
		})
	}
}

func TestEnqueueSealedAtRest(t *testing.T) {
	st, path := loaded(t, opts{})
	a := advice("idem-advice-sealed", fp(6), 4321)
	a.MaskedPAN, a.ApprovalCode = "999999******8888", "Y1ZZ99"
	a.Message = []byte("UNIQUE-CLEAR-MARKER-IN-THE-ADVICE")
	if _, err := st.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	st.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{a.MaskedPAN, string(a.Message), a.ApprovalCode, "T0000001"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the bbolt file holds a sealed field in clear (%d bytes)", len(secret))
		}
	}
}

func TestEnqueueClosed(t *testing.T) {
	st, _ := loaded(t, opts{})
	st.Close()
	if _, err := st.Enqueue(advice("a-closed", fp(7), 100)); !errors.Is(err, offline.ErrClosed) {
		t.Fatalf("Enqueue after Close = %v, want ErrClosed", err)
	}
}
