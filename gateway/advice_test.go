package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/negfile"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

// approveOffline stores n stand-in approvals through the forwarder.
func approveOffline(t *testing.T, st *offline.Store, n int) map[string]string {
	t.Helper()
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), Offline: st}
	codes := map[string]string{}
	for i := range n {
		stan := fmt.Sprintf("%06d", 100+i)
		raw := saleWith(t, stan, func(r *iso93.FinancialRequest) {
			r.Fingerprint = fmt.Sprintf("%032x", 1000+i) // distinct cards: no velocity limit
		})
		resp, err := f.Handle(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		var r iso93.FinancialResponse
		if err := iso93.UnpackInto(resp, &r); err != nil || r.ActionCode != iso93.ActionApproved {
			t.Fatalf("offline sale %d: %s %v", i, r.ActionCode, err)
		}
		codes[r.IdempotencyKey] = r.ApprovalCode
	}
	return codes
}

// fakeCenter answers advices: 208 for the keys in reject, 000 otherwise,
// recording each advice it saw.
type fakeCenter struct {
	mu     sync.Mutex
	seen   []iso93.Advice
	mtis   []string
	reject map[string]bool
	down   bool
}

func (c *fakeCenter) RoundTrip(_ context.Context, req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errors.Join(link.ErrLinkDown, link.ErrOutcomeUnknown)
	}
	var a iso93.Advice
	if err := iso93.UnpackInto(req, &a); err != nil {
		return nil, err
	}
	c.seen = append(c.seen, a)
	c.mtis = append(c.mtis, string(req[:4]))
	action := iso93.ActionApproved
	if c.reject[a.IdempotencyKey] {
		action = iso93.ActionLostCard
	}
	return iso93.Pack(a.Response(action), iso93.MTIAdviceResponse)
}

func TestAdviceForwarder(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	codes := approveOffline(t, st, 20)
	center := &fakeCenter{reject: map[string]bool{"T0000001-000105": true}, down: true}
	a := &AdviceForwarder{Queue: st.Queue(), Uplink: center, Window: 4, Rate: 10_000, Logger: quiet()}

	// The link drops with the first window in flight: nothing is answered,
	// the records stay queued and go again as repeats.
	if n, err := a.Pass(t.Context()); n != 0 || !errors.Is(err, link.ErrOutcomeUnknown) {
		t.Fatalf("pass over a dropped link: %d answered, %v", n, err)
	}
	center.down = false
	n, err := a.Pass(t.Context())
	if err != nil || n != 20 {
		t.Fatalf("pass: %d answered, %v; want 20", n, err)
	}
	if left, _ := st.Queue().Next(100); len(left) != 0 {
		t.Fatalf("%d records still queued", len(left))
	}
	rej, err := st.Queue().Rejected()
	if err != nil || len(rej) != 1 || rej[0].IdempotencyKey != "T0000001-000105" || rej[0].Action != "208" {
		t.Fatalf("rejected list %v, %v", rej, err)
	}
	keys := map[string]int{}
	for i, adv := range center.seen {
		keys[adv.IdempotencyKey]++
		want := iso93.MTIAdvice
		if i < 4 {
			want = iso93.MTIAdviceRepeat // the first window was sent before the drop
		}
		if center.mtis[i] != want {
			t.Errorf("advice %d is a %s, want %s", i, center.mtis[i], want)
		}
		if adv.FunctionCode != iso93.FunctionPreviousApproval || adv.ReasonCode != iso93.ReasonStandIn ||
			adv.ApprovalCode != codes[adv.IdempotencyKey] || adv.Amount != 1200 || !strings.HasPrefix(adv.MaskedPAN, "411111") {
			t.Errorf("advice %s: DE 24 %s, DE 25 %s, DE 38 %s (terminal got %s)", adv.IdempotencyKey, adv.FunctionCode, adv.ReasonCode, adv.ApprovalCode, codes[adv.IdempotencyKey])
		}
	}
	if len(keys) != 20 || len(center.seen) != 20 {
		t.Fatalf("center saw %d advices for %d keys, want 20 each", len(center.seen), len(keys))
	}
	st2, _ := st.Queue().Stats()
	if st2.Exposure != 0 || st2.Accepted.Count != 19 || st2.Rejected.Count != 1 {
		t.Fatalf("stats after forwarding: %+v", st2)
	}
}

// negCenter serves one delta session (1 -> 2) in chunks and can cut the
// link after a number of chunks.
type negCenter struct {
	chunks  []negfile.Chunk
	version uint64
	cutAt   int // answers served before the link drops; <0: never
	served  int
}

func (c *negCenter) RoundTrip(_ context.Context, req []byte) ([]byte, error) {
	if c.cutAt >= 0 && c.served >= c.cutAt {
		return nil, link.ErrLinkDown
	}
	c.served++
	var fa iso93.FileAction
	if err := iso93.UnpackInto(req, &fa); err != nil {
		return nil, err
	}
	f := strings.Fields(fa.DataRecord)
	resp := fa.Response(iso93.ActionApproved)
	if f[1] == fmt.Sprint(c.version) {
		return iso93.Pack(resp, iso93.MTIFileActionResponse)
	}
	next := 1
	if len(f) == 7 {
		fmt.Sscan(f[6], &next)
	}
	ch := c.chunks[next-1]
	b, err := negfile.Marshal(ch)
	if err != nil {
		return nil, err
	}
	_, msg, err := iso93.Unpack(mustPack(resp))
	if err != nil {
		return nil, err
	}
	msg.Field(iso93.FieldFunctionCode, ch.Op.FunctionCode())
	msg.Field(iso93.FieldDataRecord, string(b))
	return iso93.PackMessage(msg)
}

func mustPack(r *iso93.FileActionResponse) []byte {
	b, err := iso93.Pack(r, iso93.MTIFileActionResponse)
	if err != nil {
		panic(err)
	}
	return b
}

// TestNegFileSyncCutMidTransfer cuts the link after the first chunk of a
// four-chunk delta (three of adds, one delete): version 1 stays in force and its card stays the only
// blocked one; the next pass resumes at chunk 2 and puts version 2 in force.
func TestNegFileSyncCutMidTransfer(t *testing.T) {
	st := openStore(t, true, standin.Policy{}) // version 1: blockedFP
	var adds []string
	for i := range 60 {
		adds = append(adds, fmt.Sprintf("%032x", 5000+i))
	}
	chunks, err := negfile.Split(negfile.OpAdd, 1, 2, adds, []string{blockedFP}, negfile.MaxDE72)
	if err != nil || len(chunks) != 4 {
		t.Fatalf("split: %d chunks, %v", len(chunks), err)
	}
	center := &negCenter{chunks: chunks, version: 2, cutAt: 1}
	s := &NegFileSync{Store: st, Uplink: center, GatewayID: "GW000001", Logger: quiet()}
	ns, err := s.Sync(t.Context())
	if !errors.Is(err, link.ErrLinkDown) {
		t.Fatalf("cut sync returned %v", err)
	}
	if ns.Version != 1 || ns.Session == nil || ns.Session.Next != 2 {
		t.Fatalf("after the cut: %+v; want version 1 with chunk 2 next", ns)
	}
	check := func(fp string, want bool) {
		t.Helper()
		if got, err := st.Blocked(fp); err != nil || got != want {
			t.Fatalf("Blocked(%s…) = %v, %v; want %v", fp[:6], got, err, want)
		}
	}
	check(blockedFP, true)
	check(adds[0], false)

	center.cutAt = -1
	ns, err = s.Sync(t.Context())
	if err != nil || ns.Version != 2 || ns.Session != nil {
		t.Fatalf("resumed sync: %+v, %v", ns, err)
	}
	check(blockedFP, false)
	check(adds[0], true)
	check(adds[59], true)
	if center.served != 1+3+1 {
		t.Fatalf("center served %d answers; want 1 before the cut, chunks 2 to 4, then current", center.served)
	}
}
