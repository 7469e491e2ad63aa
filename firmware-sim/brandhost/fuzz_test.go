package brandhost

import (
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/protocol/brandspec"
	"github.com/posgate/posgate/protocol/iso93"
)

// FuzzHandle feeds arbitrary bodies to the simulator. Invariant: an answer
// is a well-formed response of the request's class carrying the request's
// STAN, and every message that unpacks is recorded.
func FuzzHandle(f *testing.F) {
	m := iso8583.NewMessage(brandspec.Spec)
	m.MTI("1200")
	for id, v := range map[int]string{2: "4500000000000007", 3: "000000", 4: "100", 7: "1124101500", 11: "000001", 12: "261124101500",
		14: "3012", 22: "000000000000", 24: "200", 32: "99999", 41: "TERM0001", 42: "M0000001       ", 49: "392"} {
		_ = m.Field(id, v)
	}
	raw, _ := m.Pack()
	f.Add(raw)
	echo, _ := iso93.NetworkCodec{}.Echo("x", 1)
	f.Add(echo)
	f.Add([]byte("1420garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Server{changed: make(chan struct{})}
		out, err := s.handle(in)
		if err != nil {
			if len(s.Records()) != 0 {
				t.Fatal("refused message was recorded")
			}
			return
		}
		if len(s.Records()) != 1 {
			t.Fatalf("records %d, want 1", len(s.Records()))
		}
		if out == nil {
			return
		}
		resp := iso8583.NewMessage(brandspec.Spec)
		if err := resp.Unpack(out); err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		mti, _ := resp.GetMTI()
		if !iso93.IsResponse(mti) || mti[:2] != string(in[:2]) {
			t.Fatalf("answer MTI %s to %q", mti, in[:4])
		}
		want := iso8583.NewMessage(brandspec.Spec)
		_ = want.Unpack(in)
		ws, _ := want.GetString(11)
		gs, _ := resp.GetString(11)
		if ws != gs {
			t.Fatalf("answer STAN %q, request %q", gs, ws)
		}
	})
}
