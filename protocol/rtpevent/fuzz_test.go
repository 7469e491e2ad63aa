package rtpevent_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"

	"github.com/posgate/posgate/protocol/rtpevent"
)

// FuzzParseAll: a payload either fails with ErrPayload or decodes to events
// that encode back to the same bytes with the reserved bit cleared, and
// each event decodes again to itself.
func FuzzParseAll(f *testing.F) {
	f.Add([]byte{5, 10, 0, 160})
	f.Add([]byte{11, 0x80 | 0x40 | 63, 0xff, 0xff, 1, 0, 0, 1})
	f.Add([]byte{200, 0, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		evs, err := rtpevent.ParseAll(nil, payload)
		if err != nil {
			if len(payload) != 0 && len(payload)%rtpevent.Size == 0 {
				t.Fatalf("whole payload refused: %v", err)
			}
			return
		}
		var out []byte
		for _, e := range evs {
			if e.Volume > rtpevent.MaxVolume {
				t.Fatalf("decoded volume %d", e.Volume)
			}
			if out, err = rtpevent.Append(out, e); err != nil {
				t.Fatal(err)
			}
			again, err := rtpevent.Parse(out[len(out)-rtpevent.Size:])
			if err != nil || again != e {
				t.Fatalf("re-parse %+v = %+v, %v", e, again, err)
			}
			if d, err := e.Digit(); err == nil && !rtpevent.IsDigit(d) {
				t.Fatalf("digit %q outside the alphabet", d)
			}
		}
		want := bytes.Clone(payload)
		for i := 1; i < len(want); i += rtpevent.Size {
			want[i] &^= 0x40
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("round trip %x -> %x", payload, out)
		}
	})
}

// FuzzCollector feeds arbitrary RTP packets (each prefixed by a 2-byte
// length) to a Collector: no panic, digits only from the alphabet, never
// more digits than event-carrying packets, and a packet pushed a second
// time yields no digit.
func FuzzCollector(f *testing.F) {
	seed := func(pkts ...rtp.Packet) []byte {
		var b []byte
		for _, p := range pkts {
			raw, _ := p.Marshal()
			b = binary.BigEndian.AppendUint16(b, uint16(len(raw)))
			b = append(b, raw...)
		}
		return b
	}
	h := rtp.Header{Version: 2, PayloadType: 101, Timestamp: 800, SSRC: 7}
	f.Add(seed(rtp.Packet{Header: h, Payload: []byte{1, 10, 0, 160}},
		rtp.Packet{Header: h, Payload: []byte{1, 0x8a, 1, 64}},
		rtp.Packet{Header: h, Payload: []byte{1, 0x8a, 1, 64}}))
	f.Add(seed(rtp.Packet{Header: h, Payload: []byte{17, 0x8a, 1, 64, 3, 0, 0, 0}}))
	f.Fuzz(func(t *testing.T, stream []byte) {
		c, err := rtpevent.NewCollector(101)
		if err != nil {
			t.Fatal(err)
		}
		var digits []byte
		eventPackets := 0
		for len(stream) >= 2 {
			n := int(binary.BigEndian.Uint16(stream))
			stream = stream[2:]
			if n > len(stream) {
				n = len(stream)
			}
			raw := stream[:n]
			stream = stream[n:]
			var p rtp.Packet
			if p.Unmarshal(raw) != nil {
				continue
			}
			if p.PayloadType == 101 {
				eventPackets += len(p.Payload) / rtpevent.Size
			}
			before := len(digits)
			digits, _ = c.Push(digits, &p)
			if len(digits) > before {
				if again, _ := c.Push(nil, &p); len(again) != 0 {
					t.Fatalf("the same packet counted twice")
				}
			}
		}
		for _, d := range digits {
			if !rtpevent.IsDigit(d) {
				t.Fatalf("digit %q outside the alphabet", d)
			}
		}
		if len(digits) > eventPackets {
			t.Fatalf("%d digits from %d events", len(digits), eventPackets)
		}
	})
}
