package sigcap_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/posgate/posgate/protocol/sigcap"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		sig  sigcap.Signature
	}{
		{"no_strokes", sigcap.Signature{Width: 320, Height: 160, Strokes: [][]sigcap.Point{}}},
		{"one_point", sigcap.Signature{Width: 1, Height: 1, Strokes: [][]sigcap.Point{{{0, 0, 0}}}}},
		{"corners", sigcap.Signature{Width: 65535, Height: 65535, Strokes: [][]sigcap.Point{
			{{0, 0, 0}, {65534, 65534, 1}, {0, 65534, 4294967295}}}}},
		{"backwards_strokes", sigcap.Signature{Width: 100, Height: 50, Strokes: [][]sigcap.Point{
			{{90, 40, 0}, {80, 30, 10}}, {{5, 2, 10}, {4, 49, 500}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.sig.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got sigcap.Signature
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.sig) {
				t.Fatalf("round trip changed the signature:\n got  %+v\n want %+v", got, tt.sig)
			}
		})
	}
}

func TestGolden(t *testing.T) {
	s := sigcap.Signature{Width: 300, Height: 100, Strokes: [][]sigcap.Point{{{10, 20, 0}, {12, 19, 10}}, {{5, 5, 200}}}}
	want := []byte{'S', 'G', 1, 0xAC, 0x02, 0x64, 2, 2, 20, 40, 0, 4, 1, 10, 1, 13, 27, 190, 1}
	b, err := s.MarshalBinary()
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("encoding %x, %v; want %x", b, err, want)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	valid := []byte{'S', 'G', 1, 10, 10, 1, 1, 2, 2, 0}
	var probe sigcap.Signature
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
			s := sigcap.Signature{Width: 9}
			err := s.UnmarshalBinary(tt.b)
			if !errors.Is(err, sigcap.ErrEncoding) {
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
		sig  sigcap.Signature
	}{
		{"zero_pad", sigcap.Signature{}},
		{"empty_stroke", sigcap.Signature{Width: 5, Height: 5, Strokes: [][]sigcap.Point{{}}}},
		{"off_pad", sigcap.Signature{Width: 5, Height: 5, Strokes: [][]sigcap.Point{{{5, 0, 0}}}}},
		{"time_back", sigcap.Signature{Width: 5, Height: 5, Strokes: [][]sigcap.Point{{{1, 1, 9}}, {{1, 1, 8}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.sig.MarshalBinary(); !errors.Is(err, sigcap.ErrSignature) {
				t.Fatalf("MarshalBinary = %v, want ErrSignature", err)
			}
		})
	}
}

func FuzzSignature(f *testing.F) {
	for _, s := range []sigcap.Signature{
		synthesize(320, 120, 2, 20),
		{Width: 3, Height: 3, Strokes: [][]sigcap.Point{{{0, 0, 0}, {2, 2, 1}}}},
	} {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{'S', 'G', 1, 10, 10, 1, 1, 2, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s sigcap.Signature
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
	s := synthesize(640, 200, 4, 250)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	s := synthesize(640, 200, 4, 250)
	raw, _ := s.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		var out sigcap.Signature
		if err := out.UnmarshalBinary(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// synthesize returns a valid signature of strokes strokes of points points
// each, walking the pad in small steps 10 ms apart.
func synthesize(width, height uint16, strokes, points int) sigcap.Signature {
	s := sigcap.Signature{Width: width, Height: height}
	x, y, ms := 0, 0, uint32(0)
	for i := range strokes {
		st := make([]sigcap.Point, 0, points)
		for j := range points {
			x, y = (x+3+i)%int(width), (y+1+j%3)%int(height)
			st = append(st, sigcap.Point{X: uint16(x), Y: uint16(y), T: ms})
			ms += 10
		}
		s.Strokes = append(s.Strokes, st)
	}
	return s
}
