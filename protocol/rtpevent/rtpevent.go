// Package rtpevent is the RFC 4733 telephone-event payload (DTMF digits
// carried as named events in RTP, docs/ivr.md), encoder and decoder side
// by side, and a Collector that turns a stream of RTP packets into digits,
// each exactly once.
//
// One event is four bytes in network order:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// event is the event code (0-9 the digits, 10 '*', 11 '#', 12-15 'A'-'D'),
// E marks the end of the event, R is reserved (sent as zero, ignored on
// receipt, RFC 4733 §2.3), volume is the power level in -dBm0 (0..63) and
// duration the event's length so far in RTP timestamp units (8 kHz for
// G.711 calls). A payload may pack several consecutive events (§2.5.1.5):
// its length is a non-zero multiple of four.
//
// The payload type of telephone-event is dynamic, negotiated in SDP
// (a=rtpmap:<pt> telephone-event/8000); nothing in this package assumes a
// number.
package rtpevent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
)

// Size is the length in bytes of one event in a payload.
const Size = 4

// MaxVolume is the largest volume field (6 bits): -63 dBm0.
const MaxVolume = 63

// Digits is the DTMF alphabet in event-code order: Digits[code] is the
// digit of event code 0..15.
const Digits = "0123456789*#ABCD"

// Errors. None of them carries a digit or a payload byte.
var (
	// ErrPayload means a payload is not a whole number of events (empty,
	// or a length that is not a multiple of Size).
	ErrPayload = errors.New("rtpevent: payload is not a whole number of 4-byte events")
	// ErrVolume means an Event to encode has a volume above MaxVolume.
	ErrVolume = errors.New("rtpevent: volume above 63")
	// ErrUnknownEvent means an event code is not a DTMF digit (16 and up:
	// flash, modem and fax tones, or codes nobody assigned). Receivers
	// ignore such events.
	ErrUnknownEvent = errors.New("rtpevent: event code is not a DTMF digit")
	// ErrNotDigit means a byte is not one of Digits.
	ErrNotDigit = errors.New("rtpevent: not a DTMF digit")
)

// Event is one decoded telephone-event.
type Event struct {
	// Code is the event code; Digit maps 0..15 to a digit.
	Code uint8
	// End is the E bit: the event has ended and Duration is final.
	End bool
	// Volume is the power level in -dBm0, 0..MaxVolume.
	Volume uint8
	// Duration is the length so far in RTP timestamp units.
	Duration uint16
}

// Digit returns the DTMF digit of the event's code, or ErrUnknownEvent.
func (e Event) Digit() (byte, error) { return DigitOf(e.Code) }

// DigitOf returns the digit of event code c ('0'..'9', '*', '#', 'A'..'D'),
// or ErrUnknownEvent for codes above 15.
func DigitOf(c uint8) (byte, error) {
	if int(c) >= len(Digits) {
		return 0, ErrUnknownEvent
	}
	return Digits[c], nil
}

// CodeOf returns the event code of digit d, or ErrNotDigit. Lower-case
// 'a'..'d' are accepted as 'A'..'D'.
func CodeOf(d byte) (uint8, error) {
	if d >= 'a' && d <= 'd' {
		d -= 'a' - 'A'
	}
	for i := 0; i < len(Digits); i++ {
		if Digits[i] == d {
			return uint8(i), nil
		}
	}
	return 0, ErrNotDigit
}

// IsDigit reports whether d is one of Digits (upper case only).
func IsDigit(d byte) bool {
	for i := 0; i < len(Digits); i++ {
		if Digits[i] == d {
			return true
		}
	}
	return false
}

// Append appends the 4-byte encoding of e to dst. The R bit is written as
// zero. It returns ErrVolume, and dst unchanged, when e.Volume is above
// MaxVolume.
func Append(dst []byte, e Event) ([]byte, error) {
	if e.Volume > MaxVolume {
		return dst, ErrVolume
	}
	b1 := e.Volume
	if e.End {
		b1 |= 0x80
	}
	dst = append(dst, e.Code, b1)
	return binary.BigEndian.AppendUint16(dst, e.Duration), nil
}

// Parse decodes one event from the first Size bytes of b. The R bit is
// ignored. It returns ErrPayload when b is shorter than Size; bytes after
// the first event are not looked at (see ParseAll).
func Parse(b []byte) (Event, error) {
	if len(b) < Size {
		return Event{}, ErrPayload
	}
	return Event{
		Code:     b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3f,
		Duration: binary.BigEndian.Uint16(b[2:4]),
	}, nil
}

// ParseAll decodes a whole payload, appending its events to dst in order.
// The payload must be a non-zero multiple of Size bytes, else ParseAll
// returns dst unchanged and an error wrapping ErrPayload.
func ParseAll(dst []Event, payload []byte) ([]Event, error) {
	if len(payload) == 0 || len(payload)%Size != 0 {
		return dst, fmt.Errorf("%w (%d bytes)", ErrPayload, len(payload))
	}
	for i := 0; i < len(payload); i += Size {
		e, _ := Parse(payload[i:])
		dst = append(dst, e)
	}
	return dst, nil
}

// LogValue hides the code of a DTMF digit: a log of events must not spell
// a card number. Codes above 15 are shown.
func (e Event) LogValue() slog.Value {
	code := slog.String("code", "[redacted]")
	if int(e.Code) >= len(Digits) {
		code = slog.Int("code", int(e.Code))
	}
	return slog.GroupValue(code, slog.Bool("end", e.End), slog.Int("volume", int(e.Volume)), slog.Int("duration", int(e.Duration)))
}
