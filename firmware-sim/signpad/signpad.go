// Package signpad simulates a signature capture pad: it records a
// cardholder's signature as vector strokes (pen-down to pen-up runs of
// points with x, y and a time in milliseconds since the first point) and
// encodes it compactly for the center's signature archive.
//
// # Encoding (version 1)
//
// All integers are unsigned LEB128 varints ("uvarint", as encoding/binary
// writes them), and must be minimal (no trailing 0x80 continuation group).
// Signed deltas are zigzag-mapped first ((d << 1) ^ (d >> 63)).
//
//	"SG" 0x01                      magic and version
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
package signpad

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Limits of a signature.
const (
	MaxStrokes = 1024
	MaxPoints  = 1 << 16 // points over all strokes
	// Version is the encoding version byte.
	Version = 1
)

const magic = "SG"

// Sentinel errors.
var (
	// ErrEncoding means bytes are not a valid signature encoding; the error
	// says which rule broke.
	ErrEncoding = errors.New("signpad: malformed signature encoding")
	// ErrSignature means a Signature value breaks a rule (a point off the
	// pad, time going back, an empty stroke, a limit exceeded).
	ErrSignature = errors.New("signpad: invalid signature")
	// ErrPenState means a pen event came in the wrong order (Move or Up
	// without Down, Down twice).
	ErrPenState = errors.New("signpad: pen event out of order")
)

// Point is one pen sample.
type Point struct {
	X, Y uint16
	T    uint32 // milliseconds since the signature's first point
}

// Signature is a captured signature: the pad's resolution and the strokes
// drawn on it, in order.
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
	b = append(b, magic...)
	b = append(b, Version)
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
	if len(b) < 3 || string(b[:2]) != magic {
		return fmt.Errorf("decode signature: no %q magic: %w", magic, ErrEncoding)
	}
	if b[2] != Version {
		return fmt.Errorf("decode signature: version %d, want %d: %w", b[2], Version, ErrEncoding)
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

// Pad captures one signature from pen events. The zero Pad is not usable;
// use NewPad. A Pad is not safe for concurrent use.
type Pad struct {
	sig   Signature
	now   func() time.Time
	start time.Time
	down  bool
	last  uint32
}

// NewPad returns a pad of width × height points that timestamps pen events
// with now (time.Now when nil).
func NewPad(width, height uint16, now func() time.Time) (*Pad, error) {
	if width == 0 || height == 0 {
		return nil, fmt.Errorf("new pad %dx%d: %w", width, height, ErrSignature)
	}
	if now == nil {
		now = time.Now
	}
	return &Pad{sig: Signature{Width: width, Height: height}, now: now}, nil
}

func (p *Pad) add(x, y uint16) error {
	if x >= p.sig.Width || y >= p.sig.Height {
		return fmt.Errorf("pen at %d,%d is off the %dx%d pad: %w", x, y, p.sig.Width, p.sig.Height, ErrSignature)
	}
	if p.sig.Points() >= MaxPoints {
		return fmt.Errorf("pen sample %d: %w", MaxPoints+1, ErrSignature)
	}
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	ms := now.Sub(p.start).Milliseconds()
	t := uint32(min(max(ms, int64(p.last)), math.MaxUint32)) // a clock step back keeps time still
	p.last = t
	st := &p.sig.Strokes[len(p.sig.Strokes)-1]
	*st = append(*st, Point{X: x, Y: y, T: t})
	return nil
}

// Down puts the pen on the pad at x, y, starting a stroke.
func (p *Pad) Down(x, y uint16) error {
	if p.down {
		return fmt.Errorf("pen down while down: %w", ErrPenState)
	}
	if len(p.sig.Strokes) >= MaxStrokes {
		return fmt.Errorf("stroke %d: %w", MaxStrokes+1, ErrSignature)
	}
	p.sig.Strokes = append(p.sig.Strokes, nil)
	if err := p.add(x, y); err != nil {
		p.sig.Strokes = p.sig.Strokes[:len(p.sig.Strokes)-1]
		return err
	}
	p.down = true
	return nil
}

// Move records the pen at x, y while it is down.
func (p *Pad) Move(x, y uint16) error {
	if !p.down {
		return fmt.Errorf("pen move while up: %w", ErrPenState)
	}
	return p.add(x, y)
}

// Up lifts the pen, ending the stroke.
func (p *Pad) Up() error {
	if !p.down {
		return fmt.Errorf("pen up while up: %w", ErrPenState)
	}
	p.down = false
	return nil
}

// Signature returns a copy of what has been captured; a stroke still in
// progress is included as far as it goes.
func (p *Pad) Signature() Signature {
	s := Signature{Width: p.sig.Width, Height: p.sig.Height}
	for _, st := range p.sig.Strokes {
		s.Strokes = append(s.Strokes, slices.Clone(st))
	}
	return s
}

// Synthesize returns a plausible signature for the simulator: strokes
// strokes of about points points each, sampled every 10 ms, drawn left to
// right across a width × height pad by a random walk seeded with seed (the
// same seed gives the same signature).
func Synthesize(seed uint64, width, height uint16, strokes, points int) Signature {
	r := rand.New(rand.NewPCG(seed, seed^0x5349474e))
	s := Signature{Width: max(width, 1), Height: max(height, 1)}
	strokes = min(max(strokes, 1), MaxStrokes)
	points = min(max(points, 1), MaxPoints/strokes)
	var t uint32
	clamp := func(v, hi int) uint16 { return uint16(min(max(v, 0), hi-1)) }
	for i := range strokes {
		x := int(s.Width) * (2*i + 1) / (2*strokes + 1)
		y := int(s.Height) / 2
		st := make([]Point, 0, points)
		for range points {
			st = append(st, Point{X: clamp(x, int(s.Width)), Y: clamp(y, int(s.Height)), T: t})
			x += r.IntN(7) - 1
			y += r.IntN(9) - 4
			t += 10
		}
		t += 150 // pen lift
		s.Strokes = append(s.Strokes, st)
	}
	return s
}
