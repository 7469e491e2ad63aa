package iso93

import (
	"fmt"

	"github.com/moov-io/iso8583/encoding"
)

// The two character encodings of Spec. Both are moov encoders (one byte per
// character, like encoding.ASCII) that additionally restrict the character
// set, so that a non-digit in a numeric field or a control byte in a text
// field is a decode error rather than a value. Their errors name the offset,
// never the byte.
var (
	digitsEncoding encoding.Encoder = &charsetEncoder{name: "digit", ok: isDigit}
	textEncoding   encoding.Encoder = &charsetEncoder{name: "printable ASCII character", ok: isPrintable}
)

func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isPrintable(c byte) bool { return c >= 0x20 && c <= 0x7E }

// charsetEncoder is an ASCII encoder that accepts only bytes for which ok
// returns true.
type charsetEncoder struct {
	name string
	ok   func(byte) bool
}

// Encode returns a copy of data, or an error if a byte is outside the set.
func (e *charsetEncoder) Encode(data []byte) ([]byte, error) {
	if i := e.invalid(data); i >= 0 {
		return nil, fmt.Errorf("byte %d is not a %s", i, e.name)
	}
	return append([]byte(nil), data...), nil
}

// Decode returns the first length bytes of data (aliasing data) and length.
func (e *charsetEncoder) Decode(data []byte, length int) ([]byte, int, error) {
	if length < 0 {
		return nil, 0, fmt.Errorf("invalid length %d", length)
	}
	if len(data) < length {
		return nil, 0, fmt.Errorf("need %d bytes, %d left", length, len(data))
	}
	data = data[:length:length]
	if i := e.invalid(data); i >= 0 {
		return nil, 0, fmt.Errorf("byte %d is not a %s", i, e.name)
	}
	return data, length, nil
}

func (e *charsetEncoder) invalid(data []byte) int {
	for i, c := range data {
		if !e.ok(c) {
			return i
		}
	}
	return -1
}
