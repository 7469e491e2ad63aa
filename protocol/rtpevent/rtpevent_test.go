package rtpevent_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"

	"github.com/posgate/posgate/protocol/rtpevent"
)

func TestParseAppend(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want rtpevent.Event
	}{
		{"digit_5_start", []byte{5, 10, 0x00, 0xa0}, rtpevent.Event{Code: 5, Volume: 10, Duration: 160}},
		{"hash_end", []byte{11, 0x80 | 7, 0x03, 0x20}, rtpevent.Event{Code: 11, End: true, Volume: 7, Duration: 800}},
		{"max_fields", []byte{15, 0x80 | 63, 0xff, 0xff}, rtpevent.Event{Code: 15, End: true, Volume: 63, Duration: 0xffff}},
		{"unknown_code_still_decodes", []byte{16, 0, 0, 0}, rtpevent.Event{Code: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rtpevent.Parse(tt.wire)
			if err != nil || got != tt.want {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tt.want)
			}
			b, err := rtpevent.Append(nil, got)
			if err != nil || !bytes.Equal(b, tt.wire) {
				t.Fatalf("Append = %x, %v; want %x", b, err, tt.wire)
			}
		})
	}
}

func TestParseIgnoresReservedBit(t *testing.T) {
	e, err := rtpevent.Parse([]byte{1, 0x80 | 0x40 | 9, 0, 80})
	if err != nil {
		t.Fatal(err)
	}
	if want := (rtpevent.Event{Code: 1, End: true, Volume: 9, Duration: 80}); e != want {
		t.Fatalf("got %+v, want %+v", e, want)
	}
	b, _ := rtpevent.Append(nil, e)
	if b[1]&0x40 != 0 {
		t.Fatalf("Append set the R bit: %x", b)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := rtpevent.Append(nil, rtpevent.Event{Volume: 64}); !errors.Is(err, rtpevent.ErrVolume) {
		t.Fatalf("volume 64: %v", err)
	}
	for _, n := range []int{0, 3, 5, 7} {
		if _, err := rtpevent.ParseAll(nil, make([]byte, n)); !errors.Is(err, rtpevent.ErrPayload) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
	if _, err := rtpevent.Parse([]byte{1, 2}); !errors.Is(err, rtpevent.ErrPayload) {
		t.Fatalf("short Parse: %v", err)
	}
}

func TestDigitMapping(t *testing.T) {
	for code := 0; code < 256; code++ {
		d, err := rtpevent.DigitOf(uint8(code))
		if code >= 16 {
			if !errors.Is(err, rtpevent.ErrUnknownEvent) {
				t.Fatalf("code %d: %v", code, err)
			}
			continue
		}
		if err != nil || d != rtpevent.Digits[code] || !rtpevent.IsDigit(d) {
			t.Fatalf("code %d: %q %v", code, d, err)
		}
		back, err := rtpevent.CodeOf(d)
		if err != nil || back != uint8(code) {
			t.Fatalf("CodeOf(%q) = %d, %v", d, back, err)
		}
	}
	if c, err := rtpevent.CodeOf('c'); err != nil || c != 14 {
		t.Fatalf("CodeOf('c') = %d, %v", c, err)
	}
	for _, b := range []byte{'E', 'e', ' ', 0, 'a' - 1, '+'} {
		if _, err := rtpevent.CodeOf(b); !errors.Is(err, rtpevent.ErrNotDigit) {
			t.Fatalf("CodeOf(%q): %v", b, err)
		}
	}
}

func TestNewCollectorPayloadType(t *testing.T) {
	for _, pt := range []uint8{96, 100, 101, 126, 127} {
		c, err := rtpevent.NewCollector(pt)
		if err != nil || c.PayloadType() != pt {
			t.Fatalf("pt %d: %v", pt, err)
		}
	}
	for _, pt := range []uint8{0, 8, 13, 72, 95, 128, 255} {
		if _, err := rtpevent.NewCollector(pt); !errors.Is(err, rtpevent.ErrPayloadType) {
			t.Fatalf("pt %d: %v", pt, err)
		}
	}
}

// pkt is one packet of a test stream.
type pkt struct {
	pt     uint8
	ssrc   uint32
	ts     uint32
	marker bool
	events []rtpevent.Event
	raw    []byte // payload instead of events
}

// wire marshals p with pion/rtp and parses it back, as a receiver would.
func wire(t testing.TB, seq uint16, p pkt) *rtp.Packet {
	t.Helper()
	payload := p.raw
	for _, e := range p.events {
		var err error
		if payload, err = rtpevent.Append(payload, e); err != nil {
			t.Fatal(err)
		}
	}
	out := rtp.Packet{Header: rtp.Header{Version: 2, Marker: p.marker, PayloadType: p.pt,
		SequenceNumber: seq, Timestamp: p.ts, SSRC: p.ssrc}, Payload: payload}
	b, err := out.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var in rtp.Packet
	if err := in.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return &in
}

// press is the packets a typical sender emits for one key: a start packet
// (marker set when marker is true), updates every 50 ms, and the end
// packet three times.
func press(pt uint8, ssrc, ts uint32, code uint8, marker bool) []pkt {
	var ps []pkt
	for i, d := range []uint16{400, 800, 1200} {
		ps = append(ps, pkt{pt: pt, ssrc: ssrc, ts: ts, marker: marker && i == 0,
			events: []rtpevent.Event{{Code: code, Volume: 10, Duration: d}}})
	}
	for range 3 {
		ps = append(ps, pkt{pt: pt, ssrc: ssrc, ts: ts,
			events: []rtpevent.Event{{Code: code, End: true, Volume: 10, Duration: 1280}}})
	}
	return ps
}

func concat(parts ...[]pkt) []pkt {
	var out []pkt
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestCollector(t *testing.T) {
	const pt = 97 // deliberately not 101
	audio := pkt{pt: 0, ssrc: 1, ts: 5000, raw: bytes.Repeat([]byte{0xff}, 160)}
	tests := []struct {
		name    string
		packets []pkt
		want    string
		unknown int // ErrUnknownEvent reports expected
	}{
		{"one_press_with_marker", press(pt, 1, 1000, 5, true), "5", 0},
		{"one_press_never_marked", press(pt, 1, 1000, 5, false), "5", 0},
		{"same_digit_twice", concat(press(pt, 1, 1000, 1, false), press(pt, 1, 3000, 1, false)), "11", 0},
		{"every_digit", func() []pkt {
			var ps []pkt
			for c := range 16 {
				ps = append(ps, press(pt, 1, uint32(1000+c*2000), uint8(c), c%2 == 0)...)
			}
			return ps
		}(), rtpevent.Digits, 0},
		{"only_end_packets_arrive", press(pt, 1, 1000, 9, true)[3:], "9", 0},
		{"only_start_arrives", press(pt, 1, 1000, 9, true)[:1], "9", 0},
		{"late_end_of_previous_after_next", concat(press(pt, 1, 1000, 2, true)[:4], press(pt, 1, 3000, 3, true),
			press(pt, 1, 1000, 2, true)[4:]), "23", 0},
		{"audio_and_other_event_pt_ignored", concat([]pkt{audio}, press(101, 1, 1000, 4, true), press(pt, 1, 9000, 6, true)), "6", 0},
		{"unknown_code_reported_once", concat(press(pt, 1, 1000, 16, true), press(pt, 1, 3000, 7, true)), "7", 1},
		{"timestamp_wraps", concat(press(pt, 1, 0xffffff00, 1, true), press(pt, 1, 0x00000100, 2, true)), "12", 0},
		{"new_ssrc_new_stream", concat(press(pt, 1, 1000, 1, true), press(pt, 2, 1000, 1, true)), "11", 0},
		{"packed_events", []pkt{
			{pt: pt, ssrc: 1, ts: 1000, events: []rtpevent.Event{{Code: 1, End: true, Duration: 400}, {Code: 2, Duration: 160}}},
			{pt: pt, ssrc: 1, ts: 1400, events: []rtpevent.Event{{Code: 2, End: true, Duration: 480}}},
			{pt: pt, ssrc: 1, ts: 1000, events: []rtpevent.Event{{Code: 1, End: true, Duration: 400}, {Code: 2, End: true, Duration: 480}}},
		}, "12", 0},
		{"long_event_segments_count_once", []pkt{
			{pt: pt, ssrc: 1, ts: 100, marker: true, events: []rtpevent.Event{{Code: 0, Duration: 0xfff0}}},
			{pt: pt, ssrc: 1, ts: 100, events: []rtpevent.Event{{Code: 0, Duration: 0xffff}}},
			{pt: pt, ssrc: 1, ts: 100 + 0xffff, events: []rtpevent.Event{{Code: 0, Duration: 800}}},
			{pt: pt, ssrc: 1, ts: 100 + 0xffff, events: []rtpevent.Event{{Code: 0, End: true, Duration: 960}}},
			{pt: pt, ssrc: 1, ts: 100 + 0xffff + 0x4000, events: []rtpevent.Event{{Code: 0, End: true, Duration: 400}}},
		}, "00", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := rtpevent.NewCollector(pt)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			unknown := 0
			for i, p := range tt.packets {
				got, err = c.Push(got, wire(t, uint16(i), p))
				switch {
				case errors.Is(err, rtpevent.ErrUnknownEvent):
					unknown++
				case err != nil:
					t.Fatalf("packet %d: %v", i, err)
				}
			}
			if string(got) != tt.want || unknown != tt.unknown {
				t.Fatalf("digits %q, unknown %d; want %q, %d", got, unknown, tt.want, tt.unknown)
			}
		})
	}
}

func TestCollectorMalformedPayloadKeepsGoing(t *testing.T) {
	c, _ := rtpevent.NewCollector(120)
	got, err := c.Push(nil, wire(t, 1, pkt{pt: 120, ssrc: 1, ts: 10, raw: []byte{1, 2, 3}}))
	if !errors.Is(err, rtpevent.ErrPayload) || len(got) != 0 {
		t.Fatalf("3-byte payload: %q, %v", got, err)
	}
	for i, p := range press(120, 1, 20, 8, false) {
		if got, err = c.Push(got, wire(t, uint16(i+2), p)); err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "8" {
		t.Fatalf("after a bad packet: %q", got)
	}
	if got, _ := c.Push(nil, nil); len(got) != 0 {
		t.Fatal("nil packet gave digits")
	}
}

func TestCollectorEvictsOldStreams(t *testing.T) {
	c, _ := rtpevent.NewCollector(96)
	var got []byte
	// Six SSRCs, more than a Collector keeps; each press counts once and
	// the repeats of the newest stream's end packet add nothing.
	for ssrc := uint32(1); ssrc <= 6; ssrc++ {
		for i, p := range press(96, ssrc, 500, uint8(ssrc), ssrc%2 == 0) {
			got, _ = c.Push(got, wire(t, uint16(i), p))
		}
	}
	if string(got) != "123456" {
		t.Fatalf("got %q", got)
	}
}

func BenchmarkCollectorPush(b *testing.B) {
	c, _ := rtpevent.NewCollector(101)
	ps := press(101, 1, 0, 5, true)
	packets := make([]*rtp.Packet, len(ps))
	for i, p := range ps {
		packets[i] = wire(b, uint16(i), p)
	}
	dst := make([]byte, 0, 16)
	b.ReportAllocs()
	ts := uint32(0)
	for b.Loop() {
		ts += 2000
		for _, p := range packets {
			p.Timestamp = ts
			dst, _ = c.Push(dst[:0], p)
		}
	}
}

func TestLogValueHidesDigit(t *testing.T) {
	v := rtpevent.Event{Code: 7, Duration: 160}.LogValue().String()
	if bytes.ContainsRune([]byte(v), '7') {
		t.Fatalf("LogValue shows the digit: %s", v)
	}
	if v := (rtpevent.Event{Code: 16}).LogValue().String(); !bytes.Contains([]byte(v), []byte("16")) {
		t.Fatalf("unknown code hidden: %s", v)
	}
}
