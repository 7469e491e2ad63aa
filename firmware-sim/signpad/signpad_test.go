package signpad_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/signpad"
	"github.com/posgate/posgate/protocol/sigcap"
)

// TestSynthesizedRoundTrip: what Synthesize makes encodes and decodes
// back unchanged.
func TestSynthesizedRoundTrip(t *testing.T) {
	sig := signpad.Synthesize(1, 640, 200, 3, 100)
	b, err := sig.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got sigcap.Signature
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sig) {
		t.Fatalf("round trip changed the signature:\n got  %+v\n want %+v", got, sig)
	}
}

func TestCompact(t *testing.T) {
	s := signpad.Synthesize(7, 640, 200, 3, 100)
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if fixed := s.Points() * 8; len(b) > fixed/2 {
		t.Fatalf("encoding of %d points is %d bytes, more than half of fixed-width %d", s.Points(), len(b), fixed)
	}
}

func TestPad(t *testing.T) {
	clock := time.Unix(1000, 0)
	now := func() time.Time { clock = clock.Add(15 * time.Millisecond); return clock }
	p, err := signpad.NewPad(100, 50, now)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		err  error
	}{
		{"move_before_down", func() error { return p.Move(1, 1) }, signpad.ErrPenState},
		{"up_before_down", p.Up, signpad.ErrPenState},
		{"down", func() error { return p.Down(10, 10) }, nil},
		{"down_twice", func() error { return p.Down(10, 10) }, signpad.ErrPenState},
		{"move", func() error { return p.Move(11, 12) }, nil},
		{"move_off_pad", func() error { return p.Move(100, 12) }, sigcap.ErrSignature},
		{"up", p.Up, nil},
		{"second_stroke", func() error { return p.Down(50, 5) }, nil},
		{"up_again", p.Up, nil},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
			t.Fatalf("step %s: %v, want %v", s.name, err, s.err)
		}
	}
	got := p.Signature()
	want := sigcap.Signature{Width: 100, Height: 50, Strokes: [][]sigcap.Point{{{X: 10, Y: 10, T: 0}, {X: 11, Y: 12, T: 15}}, {{X: 50, Y: 5, T: 30}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("captured %+v, want %+v", got, want)
	}
}
