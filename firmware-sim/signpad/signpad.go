// Package signpad simulates a signature capture pad: it records a
// cardholder's signature as vector strokes from pen events (Pad) or makes
// one up (Synthesize). The stroke encoding the pad sends to the center's
// signature archive is protocol/sigcap's Signature (docs/signatures.md).
package signpad

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/posgate/posgate/protocol/sigcap"
)

// ErrPenState means a pen event came in the wrong order (Move or Up
// without Down, Down twice).
var ErrPenState = errors.New("signpad: pen event out of order")

// Pad captures one signature from pen events. The zero Pad is not usable;
// use NewPad. A Pad is not safe for concurrent use.
type Pad struct {
	sig   sigcap.Signature
	now   func() time.Time
	start time.Time
	down  bool
	last  uint32
}

// NewPad returns a pad of width × height points that timestamps pen events
// with now (time.Now when nil).
func NewPad(width, height uint16, now func() time.Time) (*Pad, error) {
	if width == 0 || height == 0 {
		return nil, fmt.Errorf("new pad %dx%d: %w", width, height, sigcap.ErrSignature)
	}
	if now == nil {
		now = time.Now
	}
	return &Pad{sig: sigcap.Signature{Width: width, Height: height}, now: now}, nil
}

func (p *Pad) add(x, y uint16) error {
	if x >= p.sig.Width || y >= p.sig.Height {
		return fmt.Errorf("pen at %d,%d is off the %dx%d pad: %w", x, y, p.sig.Width, p.sig.Height, sigcap.ErrSignature)
	}
	if p.sig.Points() >= sigcap.MaxPoints {
		return fmt.Errorf("pen sample %d: %w", sigcap.MaxPoints+1, sigcap.ErrSignature)
	}
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	ms := now.Sub(p.start).Milliseconds()
	t := uint32(min(max(ms, int64(p.last)), math.MaxUint32)) // a clock step back keeps time still
	p.last = t
	st := &p.sig.Strokes[len(p.sig.Strokes)-1]
	*st = append(*st, sigcap.Point{X: x, Y: y, T: t})
	return nil
}

// Down puts the pen on the pad at x, y, starting a stroke.
func (p *Pad) Down(x, y uint16) error {
	if p.down {
		return fmt.Errorf("pen down while down: %w", ErrPenState)
	}
	if len(p.sig.Strokes) >= sigcap.MaxStrokes {
		return fmt.Errorf("stroke %d: %w", sigcap.MaxStrokes+1, sigcap.ErrSignature)
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
func (p *Pad) Signature() sigcap.Signature {
	s := sigcap.Signature{Width: p.sig.Width, Height: p.sig.Height}
	for _, st := range p.sig.Strokes {
		s.Strokes = append(s.Strokes, slices.Clone(st))
	}
	return s
}

// Synthesize returns a plausible signature for the simulator: strokes
// strokes of about points points each, sampled every 10 ms, drawn left to
// right across a width × height pad by a random walk seeded with seed (the
// same seed gives the same signature).
func Synthesize(seed uint64, width, height uint16, strokes, points int) sigcap.Signature {
	r := rand.New(rand.NewPCG(seed, seed^0x5349474e))
	s := sigcap.Signature{Width: max(width, 1), Height: max(height, 1)}
	strokes = min(max(strokes, 1), sigcap.MaxStrokes)
	points = min(max(points, 1), sigcap.MaxPoints/strokes)
	var t uint32
	clamp := func(v, hi int) uint16 { return uint16(min(max(v, 0), hi-1)) }
	for i := range strokes {
		x := int(s.Width) * (2*i + 1) / (2*strokes + 1)
		y := int(s.Height) / 2
		st := make([]sigcap.Point, 0, points)
		for range points {
			st = append(st, sigcap.Point{X: clamp(x, int(s.Width)), Y: clamp(y, int(s.Height)), T: t})
			x += r.IntN(7) - 1
			y += r.IntN(9) - 4
			t += 10
		}
		t += 150 // pen lift
		s.Strokes = append(s.Strokes, st)
	}
	return s
}
