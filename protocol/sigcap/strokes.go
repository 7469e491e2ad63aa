package sigcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Limits of a stroke signature.
const (
	MaxStrokes = 1024
	MaxPoints  = 1 << 16 // points over all strokes
	// StrokeVersion is the stroke encoding's version byte.
	StrokeVersion = 1
)

const strokeMagic = "SG"

// IsSignpadV1 reports whether b starts like a version 1 stroke encoding
// (magic and version byte); UnmarshalBinary checks the rest.
func IsSignpadV1(b []byte) bool {
	return len(b) >= 3 && string(b[:2]) == strokeMagic && b[2] == StrokeVersion
}

// Sentinel errors of the stroke encoding.
var (
	// ErrEncoding means bytes are not a valid signature encoding; the error
	// says which rule broke.
	ErrEncoding = errors.New("sigcap: malformed signature encoding")
	// ErrSignature means a Signature value breaks a rule (a point off the
	// pad, time going back, an empty stroke, a limit exceeded).
	ErrSignature = errors.New("sigcap: invalid signature")
)

// Point is one pen sample.
type Point struct {
	X, Y uint16
	T    uint32 // milliseconds since the signature's first point
}

// Signature is a captured signature: the pad's resolution and the strokes
// drawn on it, in order. Its binary form is the stroke encoding, version 1
// (FormatSignpadV1): vector strokes (pen-down to pen-up runs of points with
// x, y and a time in milliseconds since the first point) encoded compactly
// for the center's signature archive. The sign pad (firmware-sim/signpad)
// encodes it; the center checks it (IsSignpadV1) before it archives.
//
// All integers are unsigned LEB128 varints ("uvarint", as encoding/binary
// writes them), and must be minimal (no trailing 0x80 continuation group).
// Signed deltas are zigzag-mapped first ((d << 1) ^ (d >> 63)).
//
//	"SG" 0x01                      magic and StrokeVersion
//	uvarint width, uvarint height  pad resolution, 1..65535 each
//	uvarint strokes                0..MaxStrokes
//	per stroke:
//	  uvarint points               1..MaxPoints (total over strokes)
//	  per point:
//	    zigzag varint dx, dy       from the previous point (the first point of
//	                               the signature is relative to 0,0; the first
//	                               point of a later stroke to the last point of
//	                               the stroke before)
//	    uvarint dt                 ms since the previous point (times never
//	                               go back; the first point's dt is its time)
//
// Nothing may follow the last stroke. Points lie inside the pad
// (x < width, y < height) and times fit in 32 bits. Every valid encoding
// decodes to exactly one Signature and re-encodes to the same bytes. A
// typical signature (3 strokes, 300 points sampled every 10 ms with small
// moves) takes 3 bytes per point, against 8 for fixed 16+16+32-bit points.
type Signature struct {
	Width, Height uint16
	Strokes       [][]Point
}

// Points returns the number of points over all strokes.
func (s *Signature) Points() int {
	n := 0
	for _, st := range s.Strokes {
		n += len(st)
	}
	return n
}

// Validate checks s against the rules of the encoding.
func (s *Signature) Validate() error {
	if s.Width == 0 || s.Height == 0 {
		return fmt.Errorf("pad %dx%d: both sides must be at least 1: %w", s.Width, s.Height, ErrSignature)
	}
	if len(s.Strokes) > MaxStrokes {
		return fmt.Errorf("%d strokes, at most %d: %w", len(s.Strokes), MaxStrokes, ErrSignature)
	}
	if n := s.Points(); n > MaxPoints {
		return fmt.Errorf("%d points, at most %d: %w", n, MaxPoints, ErrSignature)
	}
	var last uint32
	for i, st := range s.Strokes {
		if len(st) == 0 {
			return fmt.Errorf("stroke %d is empty: %w", i, ErrSignature)
		}
		for j, p := range st {
			if p.X >= s.Width || p.Y >= s.Height {
				return fmt.Errorf("stroke %d point %d at %d,%d is off the %dx%d pad: %w", i, j, p.X, p.Y, s.Width, s.Height, ErrSignature)
			}
			if p.T < last {
				return fmt.Errorf("stroke %d point %d: time %d ms before the previous %d ms: %w", i, j, p.T, last, ErrSignature)
			}
			last = p.T
		}
	}
	return nil
}

func zigzag(d int64) uint64   { return uint64(d<<1) ^ uint64(d>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// AppendBinary appends the encoding of s to b, after Validate.
func (s *Signature) AppendBinary(b []byte) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return b, fmt.Errorf("encode signature: %w", err)
	}
	b = append(b, strokeMagic...)
	b = append(b, StrokeVersion)
	b = binary.AppendUvarint(b, uint64(s.Width))
	b = binary.AppendUvarint(b, uint64(s.Height))
	b = binary.AppendUvarint(b, uint64(len(s.Strokes)))
	var px, py int64
	var pt uint32
	for _, st := range s.Strokes {
		b = binary.AppendUvarint(b, uint64(len(st)))
		for _, p := range st {
			b = binary.AppendUvarint(b, zigzag(int64(p.X)-px))
			b = binary.AppendUvarint(b, zigzag(int64(p.Y)-py))
			b = binary.AppendUvarint(b, uint64(p.T-pt))
			px, py, pt = int64(p.X), int64(p.Y), p.T
		}
	}
	return b, nil
}

// MarshalBinary returns the encoding of s.
func (s *Signature) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// decoder reads minimal uvarints.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) uvarint(what string, max uint64) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, fmt.Errorf("%s at byte %d: truncated or overlong varint: %w", what, d.off, ErrEncoding)
	}
	if n > 1 && d.b[d.off+n-1] == 0 {
		return 0, fmt.Errorf("%s at byte %d: varint not minimal: %w", what, d.off, ErrEncoding)
	}
	if v > max {
		return 0, fmt.Errorf("%s at byte %d: %d over %d: %w", what, d.off, v, max, ErrEncoding)
	}
	d.off += n
	return v, nil
}

// UnmarshalBinary decodes an encoding into s; s is unchanged on error.
func (s *Signature) UnmarshalBinary(b []byte) error {
	if len(b) < 3 || string(b[:2]) != strokeMagic {
		return fmt.Errorf("decode signature: no %q magic: %w", strokeMagic, ErrEncoding)
	}
	if b[2] != StrokeVersion {
		return fmt.Errorf("decode signature: version %d, want %d: %w", b[2], StrokeVersion, ErrEncoding)
	}
	d := decoder{b: b, off: 3}
	w, err := d.uvarint("width", math.MaxUint16)
	if err != nil {
		return fmt.Errorf("decode signature: %w", err)
	}
	h, err := d.uvarint("height", math.MaxUint16)
	if err != nil {
		return fmt.Errorf("decode signature: %w", err)
	}
	if w == 0 || h == 0 {
		return fmt.Errorf("decode signature: pad %dx%d: %w", w, h, ErrEncoding)
	}
	ns, err := d.uvarint("stroke count", MaxStrokes)
	if err != nil {
		return fmt.Errorf("decode signature: %w", err)
	}
	out := Signature{Width: uint16(w), Height: uint16(h), Strokes: make([][]Point, 0, ns)}
	var x, y, t int64
	total := 0
	for i := range int(ns) {
		np, err := d.uvarint("point count", uint64(MaxPoints-total))
		if err != nil {
			return fmt.Errorf("decode signature: stroke %d: %w", i, err)
		}
		if np == 0 {
			return fmt.Errorf("decode signature: stroke %d is empty: %w", i, ErrEncoding)
		}
		total += int(np)
		st := make([]Point, 0, np)
		for j := range int(np) {
			var v [3]uint64
			for k, what := range [3]string{"dx", "dy", "dt"} {
				if v[k], err = d.uvarint(what, math.MaxUint64); err != nil {
					return fmt.Errorf("decode signature: stroke %d point %d: %w", i, j, err)
				}
			}
			dx, dy := unzigzag(v[0]), unzigzag(v[1])
			if dx < -int64(w) || dx > int64(w) || dy < -int64(h) || dy > int64(h) || v[2] > math.MaxUint32 {
				return fmt.Errorf("decode signature: stroke %d point %d: delta out of range: %w", i, j, ErrEncoding)
			}
			x, y, t = x+dx, y+dy, t+int64(v[2])
			if x < 0 || y < 0 || x >= int64(w) || y >= int64(h) || t > math.MaxUint32 {
				return fmt.Errorf("decode signature: stroke %d point %d off the pad or past the time limit: %w", i, j, ErrEncoding)
			}
			st = append(st, Point{X: uint16(x), Y: uint16(y), T: uint32(t)})
		}
		out.Strokes = append(out.Strokes, st)
	}
	if d.off != len(b) {
		return fmt.Errorf("decode signature: %d bytes after the last stroke: %w", len(b)-d.off, ErrEncoding)
	}
	*s = out
	return nil
}
