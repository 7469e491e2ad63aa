package tlink

import (
	"encoding/binary"
	"fmt"
)

// Line bytes with a fixed meaning on the wire. Inside a frame (and in the
// sequence byte of ACK and NAK) any of these bytes is sent as DLE followed by
// the byte XOR 0x20, so a raw STX, ETX, ACK or NAK on the line is never data.
const (
	STX byte = 0x02 // start of a data frame
	ETX byte = 0x03 // end of a data frame's body; two check bytes follow
	ACK byte = 0x06 // positive acknowledgement; one sequence byte follows
	DLE byte = 0x10 // escape: the next byte is a special byte XOR 0x20
	NAK byte = 0x15 // negative acknowledgement; one sequence byte follows

	escXor byte = 0x20
)

// MaxPayload is the largest payload the 2-byte length field can announce.
const MaxPayload = 0xFFFF

// headerLen is the length of seq, kind and the 2-byte length.
const headerLen = 4

// FrameType says what a frame is on the wire.
type FrameType uint8

// Frame types.
const (
	FrameData FrameType = iota + 1 // STX seq kind length payload ETX crc
	FrameAck                       // ACK seq
	FrameNak                       // NAK seq
)

// String returns "data", "ack" or "nak".
func (t FrameType) String() string {
	switch t {
	case FrameData:
		return "data"
	case FrameAck:
		return "ack"
	case FrameNak:
		return "nak"
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// Frame is one unit on the line: a data frame carrying a message, or an ACK
// or NAK control frame. Kind and Payload are meaningful for data frames only.
type Frame struct {
	Type    FrameType
	Seq     uint8
	Kind    Kind
	Payload []byte
}

// isSpecial reports whether b must be escaped inside a frame.
func isSpecial(b byte) bool {
	switch b {
	case STX, ETX, ACK, DLE, NAK:
		return true
	}
	return false
}

// appendEsc appends b to dst, escaping it when it is a special byte.
func appendEsc(dst []byte, b byte) []byte {
	if isSpecial(b) {
		return append(dst, DLE, b^escXor)
	}
	return append(dst, b)
}

// AppendFrame appends the wire form of f to dst and returns the extended
// slice. It fails, leaving dst unchanged, for an unknown frame type or a
// payload longer than MaxPayload; a data frame with an empty payload is
// valid. The check value is computed here.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	switch f.Type {
	case FrameAck:
		return appendEsc(append(dst, ACK), f.Seq), nil
	case FrameNak:
		return appendEsc(append(dst, NAK), f.Seq), nil
	case FrameData:
	default:
		return dst, fmt.Errorf("encode frame of type %v: %w", f.Type, ErrFrameType)
	}
	if len(f.Payload) > MaxPayload {
		return dst, fmt.Errorf("encode frame with %d-byte payload, limit %d: %w", len(f.Payload), MaxPayload, ErrTooLong)
	}
	var hdr [headerLen]byte
	hdr[0], hdr[1] = f.Seq, byte(f.Kind)
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(f.Payload)))
	c := crcUpdate(crcInit, hdr[:]...)
	c = crcUpdate(c, f.Payload...)
	c = crcUpdate(c, ETX)

	dst = append(dst, STX)
	for _, b := range hdr {
		dst = appendEsc(dst, b)
	}
	for _, b := range f.Payload {
		dst = appendEsc(dst, b)
	}
	dst = append(dst, ETX)
	dst = appendEsc(dst, byte(c>>8))
	return appendEsc(dst, byte(c)), nil
}

// frameCheck returns the check value of a data frame.
func frameCheck(f Frame) uint16 {
	var hdr [headerLen]byte
	hdr[0], hdr[1] = f.Seq, byte(f.Kind)
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(f.Payload)))
	c := crcUpdate(crcInit, hdr[:]...)
	c = crcUpdate(c, f.Payload...)
	return crcUpdate(c, ETX)
}

// FrameError reports a data frame the decoder dropped. Seq is the frame's
// sequence byte as received when HaveSeq is set (it may itself be damaged);
// Err is one of the frame sentinels (ErrBadCheck, ErrBadLength, ErrTooLong,
// ErrBadEscape, ErrAborted, ErrShortFrame).
type FrameError struct {
	Seq     uint8
	HaveSeq bool
	Err     error
}

// Error describes the dropped frame without its contents.
func (e *FrameError) Error() string {
	if e.HaveSeq {
		return fmt.Sprintf("drop frame seq %d: %v", e.Seq, e.Err)
	}
	return fmt.Sprintf("drop frame: %v", e.Err)
}

// Unwrap returns the frame sentinel.
func (e *FrameError) Unwrap() error { return e.Err }

// decoder states.
const (
	stHunt  = iota // outside any frame: bytes other than STX, ACK, NAK are noise
	stBody         // after STX, collecting seq..payload until ETX
	stCheck        // after ETX, collecting two check bytes
	stCtrl         // after ACK or NAK, waiting for the sequence byte
)

// Decoder turns a byte stream into frames and resynchronises after line
// noise: a raw STX, ACK or NAK always starts a new unit (abandoning one in
// progress), and bytes outside any unit are skipped. The zero Decoder is
// ready to use with MaxPayload as its limit. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	// Limit is the largest payload accepted; zero means MaxPayload.
	Limit int

	state int
	esc   bool
	ctrl  FrameType
	buf   []byte // seq, kind, length, payload (unescaped)
	check [2]byte
	nchk  int
	noise int
}

// Noise returns how many bytes have been skipped outside any frame.
func (d *Decoder) Noise() int { return d.noise }

// InFrame reports whether a unit has started and not yet completed.
func (d *Decoder) InFrame() bool { return d.state != stHunt }

// Reset abandons any unit in progress, as after an inter-byte timeout. It
// returns a *FrameError wrapping ErrAborted when a data frame was dropped,
// nil otherwise.
func (d *Decoder) Reset() error {
	var err error
	if d.state == stBody || d.state == stCheck {
		err = d.drop(ErrAborted)
	}
	d.state, d.esc, d.buf = stHunt, false, d.buf[:0]
	return err
}

// drop builds the error for the data frame in progress.
func (d *Decoder) drop(sentinel error) error {
	fe := &FrameError{Err: sentinel}
	if len(d.buf) > 0 {
		fe.Seq, fe.HaveSeq = d.buf[0], true
	}
	return fe
}

// limit returns the effective payload limit.
func (d *Decoder) limit() int {
	if d.Limit <= 0 || d.Limit > MaxPayload {
		return MaxPayload
	}
	return d.Limit
}

// Next consumes bytes from p until one frame is complete or one is dropped,
// and returns how many bytes it consumed. On a complete frame f.Type is set
// and err is nil; f.Payload aliases the decoder's buffer and is valid only
// until the next call. On a dropped data frame err is a *FrameError. When p
// runs out first, n == len(p), f is zero and err is nil; the unit in
// progress continues with the next call.
func (d *Decoder) Next(p []byte) (n int, f Frame, err error) {
	for i, b := range p {
		switch b {
		case STX, ACK, NAK:
			if d.state == stBody || d.state == stCheck {
				// Do not consume b: report the abandoned frame, then
				// start the new unit on the next call.
				err = d.drop(ErrAborted)
				d.state, d.esc, d.buf = stHunt, false, d.buf[:0]
				return i, Frame{}, err
			}
			d.esc, d.buf, d.nchk = false, d.buf[:0], 0
			switch b {
			case STX:
				d.state = stBody
			case ACK:
				d.state, d.ctrl = stCtrl, FrameAck
			default:
				d.state, d.ctrl = stCtrl, FrameNak
			}
			continue
		case ETX:
			switch d.state {
			case stHunt:
				d.noise++
				continue
			case stBody:
				if d.esc {
					return i + 1, Frame{}, d.fail(ErrBadEscape)
				}
				d.state, d.nchk = stCheck, 0
				continue
			default:
				// ETX is never valid in a check or control byte.
				return i + 1, Frame{}, d.fail(ErrBadEscape)
			}
		case DLE:
			if d.state == stHunt {
				d.noise++
				continue
			}
			if d.esc {
				return i + 1, Frame{}, d.fail(ErrBadEscape)
			}
			d.esc = true
			continue
		}
		if d.state == stHunt {
			d.noise++
			continue
		}
		if d.esc {
			d.esc = false
			b ^= escXor
			if !isSpecial(b) {
				return i + 1, Frame{}, d.fail(ErrBadEscape)
			}
		}
		switch d.state {
		case stCtrl:
			d.state = stHunt
			return i + 1, Frame{Type: d.ctrl, Seq: b}, nil
		case stBody:
			if len(d.buf) >= headerLen+d.limit() {
				return i + 1, Frame{}, d.fail(ErrTooLong)
			}
			d.buf = append(d.buf, b)
		case stCheck:
			d.check[d.nchk] = b
			d.nchk++
			if d.nchk == 2 {
				f, err := d.finish()
				return i + 1, f, err
			}
		}
	}
	return len(p), Frame{}, nil
}

// fail drops the unit in progress with sentinel and returns to hunting.
// Control frames carry no data, so a damaged one is reported without a seq.
func (d *Decoder) fail(sentinel error) error {
	var err error
	if d.state == stCtrl {
		err = &FrameError{Err: sentinel}
	} else {
		err = d.drop(sentinel)
	}
	d.state, d.esc, d.buf = stHunt, false, d.buf[:0]
	return err
}

// finish validates a data frame whose check bytes have all arrived.
func (d *Decoder) finish() (Frame, error) {
	if len(d.buf) < headerLen {
		return Frame{}, d.fail(ErrShortFrame)
	}
	if n := int(binary.BigEndian.Uint16(d.buf[2:4])); n != len(d.buf)-headerLen {
		return Frame{}, d.fail(ErrBadLength)
	}
	want := binary.BigEndian.Uint16(d.check[:])
	if got := crcUpdate(crcUpdate(crcInit, d.buf...), ETX); got != want {
		return Frame{}, d.fail(ErrBadCheck)
	}
	f := Frame{Type: FrameData, Seq: d.buf[0], Kind: Kind(d.buf[1]), Payload: d.buf[headerLen:]}
	d.state = stHunt
	return f, nil
}
