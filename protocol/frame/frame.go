// Package frame reads and writes length-prefixed messages: a 2-byte
// big-endian length followed by that many bytes of message. It is the framing
// of every ISO 8583 stream posgate speaks: QUIC link streams, the
// center-to-center TCP port and the terminal TCP transport.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxLen is the largest body a 2-byte length header can announce.
const MaxLen = 0xFFFF

var (
	// ErrEmpty is returned for a frame whose header announces zero bytes.
	ErrEmpty = errors.New("frame: empty frame")
	// ErrTooLong is returned when a frame is longer than the reader allows
	// or than a 2-byte header can carry.
	ErrTooLong = errors.New("frame: frame too long")
	// ErrTruncated is returned when the stream ends inside a frame.
	ErrTruncated = errors.New("frame: truncated frame")
)

// Read reads one frame from r and returns its body. max bounds the body
// length (0 means MaxLen). At a clean end of stream before any header byte it
// returns io.EOF; a stream that ends inside a frame returns ErrTruncated.
func Read(r io.Reader, max int) ([]byte, error) {
	if max <= 0 || max > MaxLen {
		max = MaxLen
	}
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame header: %w", ErrTruncated)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 {
		return nil, ErrEmpty
	}
	if n > max {
		return nil, fmt.Errorf("frame of %d bytes, limit %d: %w", n, max, ErrTooLong)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame body of %d bytes: %w", n, ErrTruncated)
		}
		return nil, err
	}
	return body, nil
}

// Append appends the framed form of body to dst and returns the result.
func Append(dst, body []byte) ([]byte, error) {
	if len(body) == 0 {
		return dst, ErrEmpty
	}
	if len(body) > MaxLen {
		return dst, fmt.Errorf("frame of %d bytes: %w", len(body), ErrTooLong)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...), nil
}

// Write writes body to w as one frame with a single Write call, so that
// concurrent writers serialised by the caller never interleave a header and
// its body.
func Write(w io.Writer, body []byte) error {
	buf, err := Append(make([]byte, 0, 2+len(body)), body)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// ReadLength reads one 2-byte header from r and returns the body length it
// announces: the header alone, in the form github.com/moov-io/iso8583-connection
// takes as its MessageLengthReader. A header announcing zero bytes is ErrEmpty.
func ReadLength(r io.Reader) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 {
		return 0, ErrEmpty
	}
	return n, nil
}

// WriteLength writes the 2-byte header announcing a body of n bytes to w,
// in the form iso8583-connection takes as its MessageLengthWriter. n must
// be 1..MaxLen.
func WriteLength(w io.Writer, n int) (int, error) {
	if n <= 0 {
		return 0, ErrEmpty
	}
	if n > MaxLen {
		return 0, fmt.Errorf("frame of %d bytes: %w", n, ErrTooLong)
	}
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(n))
	return w.Write(hdr[:])
}
