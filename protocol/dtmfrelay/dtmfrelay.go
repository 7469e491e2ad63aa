// Package dtmfrelay is the body of a SIP INFO request with content type
// application/dtmf-relay, the third way a PBX reports DTMF (besides RFC
// 4733 events and in-band tones; docs/ivr.md), parser and encoder side by
// side.
//
// A body is lines of key=value, separated by CRLF (LF alone is accepted):
//
//	Signal=5
//	Duration=160
//
// Signal is the key: one of "0123456789*#ABCD" (a-d accepted as A-D) or,
// as some PBXs send it, the RFC 4733 event code 0..15 in decimal ("10" for
// '*', "11" for '#'). Duration is the key's length in milliseconds,
// 0..65535, optional. Keys are case-insensitive, spaces around keys and
// values are ignored, other keys are skipped, a key given twice is an
// error. Each INFO is one key press: retransmissions of the same request
// are absorbed by the SIP transaction layer (same Call-ID and CSeq), not
// here.
package dtmfrelay

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/posgate/posgate/protocol/rtpevent"
)

// ContentType is the Content-Type of the SIP INFO bodies this package reads.
const ContentType = "application/dtmf-relay"

// MaxBody is the longest body Parse reads, in bytes.
const MaxBody = 512

// Errors. None of them carries the body or the digit: a sequence of key
// presses may be a card number.
var (
	// ErrBody means the body is not a well-formed dtmf-relay body; the
	// wrapping error says which rule broke.
	ErrBody = errors.New("dtmfrelay: malformed application/dtmf-relay body")
	// ErrUnknownSignal means Signal names no DTMF key (a hook flash "!",
	// event code 16 and up, or anything else). The INFO is answered and
	// the key ignored.
	ErrUnknownSignal = errors.New("dtmfrelay: signal is not a DTMF key")
)

// Relay is one key press.
type Relay struct {
	// Digit is one of rtpevent.Digits.
	Digit byte
	// Duration is the press length in milliseconds; 0 when not given.
	Duration uint16
}

// LogValue hides the digit: a log of key presses must not spell a card
// number.
func (r Relay) LogValue() slog.Value {
	return slog.GroupValue(slog.String("digit", "[redacted]"), slog.Int("duration_ms", int(r.Duration)))
}

// Append appends the canonical body of r ("Signal=5\r\nDuration=160\r\n")
// to dst. It returns ErrUnknownSignal, and dst unchanged, when r.Digit is
// not a DTMF digit.
func Append(dst []byte, r Relay) ([]byte, error) {
	if !rtpevent.IsDigit(r.Digit) {
		return dst, ErrUnknownSignal
	}
	dst = append(dst, "Signal="...)
	dst = append(dst, r.Digit)
	dst = append(dst, "\r\nDuration="...)
	dst = strconv.AppendUint(dst, uint64(r.Duration), 10)
	return append(dst, "\r\n"...), nil
}

// Parse reads one body. Every error wraps ErrBody or ErrUnknownSignal.
func Parse(body []byte) (Relay, error) {
	if len(body) > MaxBody {
		return Relay{}, fmt.Errorf("%w: body longer than %d bytes", ErrBody, MaxBody)
	}
	var r Relay
	var haveSignal, haveDuration bool
	for n, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; (c < 0x20 && c != '\t') || c > 0x7e {
				return Relay{}, fmt.Errorf("%w: line %d: control or non-ASCII byte", ErrBody, n+1)
			}
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return Relay{}, fmt.Errorf("%w: line %d: no '='", ErrBody, n+1)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case strings.EqualFold(key, "Signal"):
			if haveSignal {
				return Relay{}, fmt.Errorf("%w: Signal given twice", ErrBody)
			}
			haveSignal = true
			d, err := parseSignal(value)
			if err != nil {
				return Relay{}, err
			}
			r.Digit = d
		case strings.EqualFold(key, "Duration"):
			if haveDuration {
				return Relay{}, fmt.Errorf("%w: Duration given twice", ErrBody)
			}
			haveDuration = true
			if value == "" || len(value) > 5 || strings.TrimLeft(value, "0123456789") != "" {
				return Relay{}, fmt.Errorf("%w: Duration is not 1-5 decimal digits", ErrBody)
			}
			ms, _ := strconv.ParseUint(value, 10, 32)
			if ms > 0xffff {
				return Relay{}, fmt.Errorf("%w: Duration above 65535 ms", ErrBody)
			}
			r.Duration = uint16(ms)
		case key == "":
			return Relay{}, fmt.Errorf("%w: line %d: empty key", ErrBody, n+1)
		}
	}
	if !haveSignal {
		return Relay{}, fmt.Errorf("%w: no Signal", ErrBody)
	}
	return r, nil
}

func parseSignal(v string) (byte, error) {
	switch {
	case len(v) == 1:
		code, err := rtpevent.CodeOf(v[0])
		if err != nil {
			return 0, ErrUnknownSignal
		}
		return rtpevent.Digits[code], nil
	case len(v) == 2 && strings.TrimLeft(v, "0123456789") == "":
		n, _ := strconv.Atoi(v)
		d, err := rtpevent.DigitOf(uint8(n))
		if err != nil {
			return 0, ErrUnknownSignal
		}
		return d, nil
	case v == "":
		return 0, fmt.Errorf("%w: empty Signal", ErrBody)
	}
	return 0, ErrUnknownSignal
}
