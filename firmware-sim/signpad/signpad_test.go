package signpad_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/signpad"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		sig  signpad.Signature
	}{
		{"no_strokes", signpad.Signature{Width: 320, Height: 160, Strokes: [][]signpad.Point{}}},
		{"one_point", signpad.Signature{Width: 1, Height: 1, Strokes: [][]signpad.Point{{{0, 0, 0}}}}},
		{"corners", signpad.Signature{Width: 65535, Height: 65535, Strokes: [][]signpad.Point{
			{{0, 0, 0}, {65534, 65534, 1}, {0, 65534, 4294967295}}}}},
		{"backwards_strokes", signpad.Signature{Width: 100, Height: 50, Strokes: [][]signpad.Point{
			{{90, 40, 0}, {80, 30, 10}}, {{5, 2, 10}, {4, 49, 500}}}}},
		{"synthesized", signpad.Synthesize(1, 640, 200, 3, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.sig.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got signpad.Signature
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.sig) {
				t.Fatalf("round trip changed the signature:\n got  %+v\n want %+v", got, tt.sig)
			}
		})
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

func TestGolden(t *testing.T) {
	s := signpad.Signature{Width: 300, Height: 100, Strokes: [][]signpad.Point{{{10, 20, 0}, {12, 19, 10}}, {{5, 5, 200}}}}
	want := []byte{'S', 'G', 1, 0xAC, 0x02, 0x64, 2, 2, 20, 40, 0, 4, 1, 10, 1, 13, 27, 190, 1}
	b, err := s.MarshalBinary()
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("encoding %x, %v; want %x", b, err, want)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	valid := []byte{'S', 'G', 1, 10, 10, 1, 1, 2, 2, 0}
	var probe signpad.Signature
	if err := probe.UnmarshalBinary(valid); err != nil {
		t.Fatalf("base case: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad_magic", []byte{'S', 'X', 1, 10, 10, 0}},
		{"bad_version", []byte{'S', 'G', 2, 10, 10, 0}},
		{"zero_width", []byte{'S', 'G', 1, 0, 10, 0}},
		{"width_too_big", []byte{'S', 'G', 1, 0x80, 0x80, 0x04, 10, 0}},
		{"overlong_varint", []byte{'S', 'G', 1, 0x8A, 0x00, 10, 0}},
		{"truncated", valid[:len(valid)-1]},
		{"trailing_byte", append(append([]byte{}, valid...), 0)},
		{"empty_stroke", []byte{'S', 'G', 1, 10, 10, 1, 0}},
		{"off_pad_x", []byte{'S', 'G', 1, 10, 10, 1, 1, 20, 2, 0}},
		{"negative_y", []byte{'S', 'G', 1, 10, 10, 1, 1, 2, 1, 0}},
		{"too_many_strokes", []byte{'S', 'G', 1, 10, 10, 0x81, 0x08}},
		{"time_past_32_bits", []byte{'S', 'G', 1, 10, 10, 1, 2, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := signpad.Signature{Width: 9}
			err := s.UnmarshalBinary(tt.b)
			if !errors.Is(err, signpad.ErrEncoding) {
				t.Fatalf("UnmarshalBinary(%x) = %v, want ErrEncoding", tt.b, err)
			}
			if s.Width != 9 || s.Strokes != nil {
				t.Fatal("a failed decode changed the signature")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		sig  signpad.Signature
	}{
		{"zero_pad", signpad.Signature{}},
		{"empty_stroke", signpad.Signature{Width: 5, Height: 5, Strokes: [][]signpad.Point{{}}}},
		{"off_pad", signpad.Signature{Width: 5, Height: 5, Strokes: [][]signpad.Point{{{5, 0, 0}}}}},
		{"time_back", signpad.Signature{Width: 5, Height: 5, Strokes: [][]signpad.Point{{{1, 1, 9}}, {{1, 1, 8}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.sig.MarshalBinary(); !errors.Is(err, signpad.ErrSignature) {
				t.Fatalf("MarshalBinary = %v, want ErrSignature", err)
			}
		})
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
		{"move_off_pad", func() error { return p.Move(100, 12) }, signpad.ErrSignature},
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
	want := signpad.Signature{Width: 100, Height: 50, Strokes: [][]signpad.Point{{{10, 10, 0}, {11, 12, 15}}, {{50, 5, 30}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("captured %+v, want %+v", got, want)
	}
}

func FuzzSignature(f *testing.F) {
	for _, s := range []signpad.Signature{
		signpad.Synthesize(1, 320, 120, 2, 20),
		{Width: 3, Height: 3, Strokes: [][]signpad.Point{{{0, 0, 0}, {2, 2, 1}}}},
	} {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{'S', 'G', 1, 10, 10, 1, 1, 2, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s signpad.Signature
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded signature does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("encoding is not canonical:\n in  %x\n out %x", b, out)
		}
	})
}

func BenchmarkMarshal(b *testing.B) {
	s := signpad.Synthesize(3, 640, 200, 4, 250)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	s := signpad.Synthesize(3, 640, 200, 4, 250)
	raw, _ := s.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		var out signpad.Signature
		if err := out.UnmarshalBinary(raw); err != nil {
			b.Fatal(err)
		}
	}
}
