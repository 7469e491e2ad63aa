package rtpevent

import (
	"errors"
	"fmt"

	"github.com/pion/rtp"
)

// ErrPayloadType means a payload type given to NewCollector is outside the
// dynamic range 96..127 (RFC 3551 §3), where SDP negotiates
// telephone-event.
var ErrPayloadType = errors.New("rtpevent: telephone-event payload type outside 96..127")

// maxStreams is how many SSRCs a Collector remembers at once (a call has
// one; a re-INVITE or a transfer may start another while packets of the
// old one are still in flight).
const maxStreams = 4

// segmentSlack is how far past a full 0xFFFF segment a continuation of a
// long event may start (RFC 4733 §2.5.1.3), in timestamp units: one
// second at 8 kHz, for senders that do not report the full duration.
const segmentSlack = 8000

// A Collector turns the RTP packets of one call into DTMF digits, each
// exactly once, whichever of its packets arrive, in whatever order.
//
// An event is identified by its RTP timestamp (the instant it began), not
// by the marker bit, which some senders never set: every packet with the
// timestamp of an event already seen — the updates while a key is held
// and the end packet the sender repeats three times — adds nothing. A
// digit is reported by the first packet of its event that arrives, so
// losing the start or all three end packets loses nothing. A packet whose
// timestamp is older than the newest event of its SSRC is a late
// duplicate and is ignored. A long event that a sender splits into
// 0xFFFF-unit segments (§2.5.1.3) counts once.
//
// A Collector is not safe for concurrent use; one call owns one.
type Collector struct {
	pt      uint8
	streams [maxStreams]stream
	clock   uint64 // use counter for evicting the least recently used stream
	scratch []Event
}

type stream struct {
	used     bool
	ssrc     uint32
	lastUse  uint64
	ts       uint32 // start of the newest event
	code     uint8
	ended    bool
	duration uint16 // largest duration seen for the newest event
}

// NewCollector returns a Collector for telephone-events sent with payload
// type pt, the number the call's SDP negotiated for telephone-event/8000.
// It returns ErrPayloadType when pt is not a dynamic payload type.
func NewCollector(pt uint8) (*Collector, error) {
	if pt < 96 || pt > 127 {
		return nil, fmt.Errorf("%w: %d", ErrPayloadType, pt)
	}
	return &Collector{pt: pt, scratch: make([]Event, 0, 4)}, nil
}

// PayloadType returns the payload type the Collector reads.
func (c *Collector) PayloadType() uint8 { return c.pt }

// Push reads one RTP packet and appends the digits it starts to dst.
// Packets of another payload type (the call's audio) are ignored. A
// malformed payload returns dst unchanged and an error wrapping ErrPayload;
// an event whose code is not a digit is reported once, as ErrUnknownEvent,
// and otherwise ignored (its repeats are deduplicated like any event's).
// Either way the Collector stays usable for the next packet.
func (c *Collector) Push(dst []byte, p *rtp.Packet) ([]byte, error) {
	if p == nil || p.PayloadType != c.pt {
		return dst, nil
	}
	evs, err := ParseAll(c.scratch[:0], p.Payload)
	if err != nil {
		return dst, fmt.Errorf("telephone-event payload: %w", err)
	}
	c.scratch = evs[:0]
	s := c.stream(p.SSRC)
	var firstErr error
	start := p.Timestamp
	for _, e := range evs {
		if s.isNew(start, e) {
			s.ts, s.code, s.ended, s.duration = start, e.Code, e.End, e.Duration
			if d, err := e.Digit(); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("event code %d: %w", e.Code, err)
				}
			} else {
				dst = append(dst, d)
			}
		} else if start == s.ts {
			s.ended = s.ended || e.End
			s.duration = max(s.duration, e.Duration)
		}
		// Packed events follow one another without a pause (§2.5.1.5).
		start += uint32(e.Duration)
	}
	return dst, firstErr
}

// isNew reports whether an event starting at ts begins a new event of s,
// and records continuations of a long event.
func (s *stream) isNew(ts uint32, e Event) bool {
	if !s.used {
		s.used = true
		return true
	}
	d := ts - s.ts
	if d == 0 || int32(d) < 0 {
		return false // the current event again, or a late one
	}
	if !s.ended && e.Code == s.code && (d == 0xFFFF || s.duration == 0xFFFF && d <= 0xFFFF+segmentSlack) {
		s.ts, s.duration, s.ended = ts, e.Duration, e.End
		return false // the next segment of a long event
	}
	return true
}

// stream returns the state of ssrc, taking over the least recently used
// slot for a new one.
func (c *Collector) stream(ssrc uint32) *stream {
	c.clock++
	victim := 0
	for i := range c.streams {
		s := &c.streams[i]
		if s.used && s.ssrc == ssrc {
			s.lastUse = c.clock
			return s
		}
		if !s.used || (c.streams[victim].used && s.lastUse < c.streams[victim].lastUse) {
			victim = i
		}
	}
	c.streams[victim] = stream{ssrc: ssrc, lastUse: c.clock}
	return &c.streams[victim]
}
