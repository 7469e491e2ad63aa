package offline_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/negfile"
)

func TestApproveDecisions(t *testing.T) {
	pol := standin.Policy{
		Default:       standin.Rules{FloorLimit: 5000, CardCount: 2, CardAmount: 6000, Window: time.Hour, MerchantExposure: 12000},
		TotalExposure: 100000,
	}
	blockedFP := fp(1)
	type step struct {
		sale    offline.Sale
		advance time.Duration
		want    standin.Reason
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, st *offline.Store)
		steps []step
	}{
		{"negative_hit_declines", nil, []step{{sale: sale("k1", blockedFP, 100), want: standin.ReasonBlocked}}},
		{"velocity_count_per_fingerprint", nil, []step{
			{sale: sale("k1", fp(2), 100), want: standin.ReasonApproved},
			{sale: sale("k2", fp(2), 100), want: standin.ReasonApproved},
			{sale: sale("k3", fp(2), 100), want: standin.ReasonCardCount},
			{sale: sale("k4", fp(3), 100), want: standin.ReasonApproved},
			// The window slides: an hour later the card may buy again.
			{sale: sale("k5", fp(2), 100), advance: time.Hour + time.Second, want: standin.ReasonApproved},
		}},
		{"velocity_amount", nil, []step{
			{sale: sale("k1", fp(2), 4000), want: standin.ReasonApproved},
			{sale: sale("k2", fp(2), 2001), want: standin.ReasonCardAmount},
			{sale: sale("k3", fp(2), 2000), want: standin.ReasonApproved},
		}},
		{"merchant_exposure", nil, []step{
			{sale: sale("k1", fp(2), 5000), want: standin.ReasonApproved},
			{sale: sale("k2", fp(3), 5000), want: standin.ReasonApproved},
			{sale: sale("k3", fp(4), 2001), want: standin.ReasonMerchantExposure},
		}},
		{"floor_and_refund", nil, []step{
			{sale: sale("k1", fp(2), 5001), want: standin.ReasonFloorLimit},
			{sale: func() offline.Sale { s := sale("k2", fp(2), 100); s.Refund = true; return s }(), want: standin.ReasonRefund},
		}},
		{"stale_negative_file", nil, []step{
			{sale: sale("k1", fp(2), 100), want: standin.ReasonApproved},
			{sale: sale("k2", fp(3), 100), advance: standin.DefaultMaxStaleness + time.Second, want: standin.ReasonNegativeStale},
		}},
		{"chip", nil, []step{
			{sale: func() offline.Sale { s := sale("k1", fp(2), 5500); s.Chip = standin.ChipTC; return s }(), want: standin.ReasonApproved},
			{sale: func() offline.Sale { s := sale("k2", fp(3), 100); s.Chip = standin.ChipAAC; return s }(), want: standin.ReasonCardDeclined},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			st, _ := open(t, opts{policy: pol, clock: clk})
			applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 1, []string{blockedFP}, nil))
			for i, s := range tt.steps {
				clk.Add(s.advance)
				d, err := st.Approve(s.sale)
				if err != nil {
					t.Fatalf("step %d: Approve: %v", i, err)
				}
				if d.Reason != s.want || d.Approved != (s.want == standin.ReasonApproved) || d.ActionCode != s.want.ActionCode() {
					t.Fatalf("step %d: decision %+v (%s), want %s", i, d, d.Reason, s.want)
				}
				if d.Approved && (d.RecordID == 0 || len(d.ApprovalCode) != 6) {
					t.Fatalf("step %d: approval without record id or approval code: %+v", i, d)
				}
			}
		})
	}
}

func TestApproveWithoutNegativeFileRefuses(t *testing.T) {
	st, _ := open(t, opts{})
	d, err := st.Approve(sale("k1", fp(1), 100))
	if err != nil || d.Approved || d.Reason != standin.ReasonNoNegativeFile {
		t.Fatalf("Approve with no negative file = %+v, %v", d, err)
	}
	h, err := st.Headroom(standin.Scope{TerminalID: "T0000001", MerchantID: "M1"})
	if err != nil || h.Available || h.Reason != standin.ReasonNoNegativeFile {
		t.Fatalf("Headroom with no negative file = %+v, %v", h, err)
	}
}

func TestApproveIsIdempotent(t *testing.T) {
	st, _ := loaded(t, opts{})
	first, err := st.Approve(sale("same-key", fp(1), 700))
	if err != nil || !first.Approved {
		t.Fatalf("first Approve = %+v, %v", first, err)
	}
	again, err := st.Approve(sale("same-key", fp(1), 700))
	if err != nil || !again.Duplicate || again.RecordID != first.RecordID || again.ApprovalCode != first.ApprovalCode {
		t.Fatalf("repeat Approve = %+v, %v; want the first approval %+v", again, err, first)
	}
	stats, _ := st.Queue().Stats()
	if stats.Pending.Count != 1 || stats.Pending.Amount != 700 || stats.Exposure != 700 {
		t.Fatalf("stats after a repeat: %+v", stats)
	}
}

func TestApproveRejectsBadInput(t *testing.T) {
	st, _ := loaded(t, opts{})
	tests := []struct {
		name string
		sale offline.Sale
	}{
		{"no_idempotency_key", sale("", fp(1), 100)},
		{"long_idempotency_key", sale(string(bytes.Repeat([]byte("k"), 65)), fp(1), 100)},
		{"bad_fingerprint", sale("k", "0622241201382A45912FB22828B3F7DB", 100)},
		{"short_fingerprint", sale("k", "0622", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.Approve(tt.sale); !errors.Is(err, offline.ErrInvalidRequest) {
				t.Fatalf("Approve = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func TestHeadroom(t *testing.T) {
	pol := standin.Policy{Default: standin.Rules{FloorLimit: 5000, MerchantExposure: 8000}}
	st, _ := loaded(t, opts{policy: pol})
	sc := standin.Scope{TerminalID: "T0000001", MerchantID: "M000000000001", Brand: "visa"}
	h, _ := st.Headroom(sc)
	if !h.Available || h.MaxAmount != 5000 {
		t.Fatalf("fresh Headroom = %+v", h)
	}
	if d, err := st.Approve(sale("k1", fp(1), 5000)); err != nil || !d.Approved {
		t.Fatalf("Approve: %+v, %v", d, err)
	}
	if h, _ = st.Headroom(sc); !h.Available || h.MaxAmount != 3000 {
		t.Fatalf("Headroom after 5000 = %+v, want 3000", h)
	}
	if d, err := st.Approve(sale("k2", fp(2), 3000)); err != nil || !d.Approved {
		t.Fatalf("Approve: %+v, %v", d, err)
	}
	if h, _ = st.Headroom(sc); h.Available || h.Reason != standin.ReasonMerchantExposure {
		t.Fatalf("Headroom at the cap = %+v", h)
	}
	// An answer from the center frees exposure.
	recs, _ := st.Queue().Next(1)
	if _, err := st.Queue().MarkAnswered(recs[0].ID, "000"); err != nil {
		t.Fatal(err)
	}
	if h, _ = st.Headroom(sc); !h.Available || h.MaxAmount != 5000 {
		t.Fatalf("Headroom after an accepted advice = %+v", h)
	}
}

// TestGroupCommit runs many concurrent approvals: every one gets a
// distinct record, the exposure cap holds exactly although decisions are
// made concurrently, and the store holds exactly the approvals reported.
func TestGroupCommit(t *testing.T) {
	const goroutines, each, amount = 32, 25, 100
	capAmount := int64(goroutines * each * amount / 2) // half can be approved
	pol := standin.Policy{TotalExposure: capAmount,
		Default: standin.Rules{FloorLimit: 1000, CardCount: 1000, CardAmount: 1 << 40, MerchantExposure: 1 << 40}}
	st, _ := loaded(t, opts{policy: pol})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		approved = map[uint64]bool{}
		declined int
		errs     []error
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				d, err := st.Approve(sale(fmt.Sprintf("g%d-%d", g, i), fp(g*1000+i), amount))
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case d.Approved:
					if approved[d.RecordID] {
						errs = append(errs, fmt.Errorf("record id %d given twice", d.RecordID))
					}
					approved[d.RecordID] = true
				case d.Reason == standin.ReasonTotalExposure:
					declined++
				default:
					errs = append(errs, fmt.Errorf("unexpected decline %s", d.Reason))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if int64(len(approved))*amount != capAmount || declined != goroutines*each-len(approved) {
		t.Fatalf("%d approved, %d declined; want exactly %d approved under the cap", len(approved), declined, capAmount/amount)
	}
	stats, err := st.Queue().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending.Count != int64(len(approved)) || stats.Exposure != capAmount {
		t.Fatalf("stats %+v, want %d pending", stats, len(approved))
	}
	recs, err := st.Queue().Next(10000)
	if err != nil || len(recs) != len(approved) {
		t.Fatalf("Next returned %d records (%v), want %d", len(recs), err, len(approved))
	}
	for _, r := range recs {
		if !approved[r.ID] {
			t.Fatalf("record %d in the queue was never reported approved", r.ID)
		}
	}
}

func TestRecordsAreSealedAtRest(t *testing.T) {
	st, path := loaded(t, opts{})
	s := sale("idem-sealed", fp(1), 4321)
	s.MaskedPAN = "999999******8888"
	s.Message = []byte("UNIQUE-CLEAR-MARKER-IN-THE-REQUEST")
	if d, err := st.Approve(s); err != nil || !d.Approved {
		t.Fatalf("Approve: %+v, %v", d, err)
	}
	st.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{s.MaskedPAN, string(s.Message), "T0000001"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the bbolt file holds a sealed field in clear (%d bytes)", len(secret))
		}
	}
	// With another key the record does not open.
	other, err := softSealerWith([]byte("another-key-another-key-32-bytes"))
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := open(t, opts{path: path, sealer: other})
	if _, err := st2.Queue().Next(1); !errors.Is(err, offline.ErrRecordSeal) {
		t.Fatalf("Next under the wrong key = %v, want ErrRecordSeal", err)
	}
}

func TestClosedStore(t *testing.T) {
	st, _ := loaded(t, opts{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"approve", func() error { _, err := st.Approve(sale("k", fp(1), 100)); return err }},
		{"blocked", func() error { _, err := st.Blocked(fp(1)); return err }},
		{"next", func() error { _, err := st.Queue().Next(1); return err }},
		{"mark_sent", func() error { return st.Queue().MarkSent(1) }},
		{"apply_chunk", func() error { _, err := st.ApplyChunk(chunks(t, negfile.OpSnapshot, 0, 2, nil, nil)[0]); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, offline.ErrClosed) {
				t.Fatalf("after Close: %v, want ErrClosed", err)
			}
		})
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
