package negsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/negfile"
)

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
	st := gatewaytest.OpenStore(t, true, standin.Policy{}) // version 1: gatewaytest.BlockedFP
	var adds []string
	for i := range 60 {
		adds = append(adds, fmt.Sprintf("%032x", 5000+i))
	}
	chunks, err := negfile.Split(negfile.OpAdd, 1, 2, adds, []string{gatewaytest.BlockedFP}, negfile.MaxDE72)
	if err != nil || len(chunks) != 4 {
		t.Fatalf("split: %d chunks, %v", len(chunks), err)
	}
	center := &negCenter{chunks: chunks, version: 2, cutAt: 1}
	s := &NegFileSync{Store: st, Uplink: center, GatewayID: "GW000001", Logger: gatewaytest.Quiet()}
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
	check(gatewaytest.BlockedFP, true)
	check(adds[0], false)

	center.cutAt = -1
	ns, err = s.Sync(t.Context())
	if err != nil || ns.Version != 2 || ns.Session != nil {
		t.Fatalf("resumed sync: %+v, %v", ns, err)
	}
	check(gatewaytest.BlockedFP, false)
	check(adds[0], true)
	check(adds[59], true)
	if center.served != 1+3+1 {
		t.Fatalf("center served %d answers; want 1 before the cut, chunks 2 to 4, then current", center.served)
	}
}
