package g711_test

import (
	"errors"
	"math"
	"testing"

	"github.com/posgate/posgate/protocol/g711"
)

// Decoder outputs from the ITU-T G.711 tables (14-bit μ-law and 13-bit
// A-law values), scaled to 16 bits (×4 and ×8).
func TestDecodeKnownValues(t *testing.T) {
	tests := []struct {
		name string
		law  g711.Law
		in   byte
		want int16
	}{
		{"ulaw_plus_zero", g711.Ulaw, 0xff, 0},
		{"ulaw_minus_zero", g711.Ulaw, 0x7f, 0},
		{"ulaw_max", g711.Ulaw, 0x80, 8031 * 4},
		{"ulaw_min", g711.Ulaw, 0x00, -8031 * 4},
		{"ulaw_dmw_1e", g711.Ulaw, 0x1e, -2207 * 4},
		{"ulaw_dmw_0b", g711.Ulaw, 0x0b, -5215 * 4},
		{"ulaw_dmw_9e", g711.Ulaw, 0x9e, 2207 * 4},
		{"ulaw_first_step", g711.Ulaw, 0xfe, 2 * 4},
		{"alaw_smallest_plus", g711.Alaw, 0xd5, 1 * 8},
		{"alaw_smallest_minus", g711.Alaw, 0x55, -1 * 8},
		{"alaw_max", g711.Alaw, 0xaa, 4032 * 8},
		{"alaw_min", g711.Alaw, 0x2a, -4032 * 8},
		{"alaw_dmw_34", g711.Alaw, 0x34, -1120 * 8},
		{"alaw_dmw_a1", g711.Alaw, 0xa1, 2624 * 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.law.Decode(nil, []byte{tt.in})
			if err != nil || len(got) != 1 || got[0] != tt.want {
				t.Fatalf("Decode(%#x) = %v, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// The digital milliwatt sequences of G.711 are a 1 kHz sine at 0 dBm0.
func TestDigitalMilliwatt(t *testing.T) {
	for _, tt := range []struct {
		law g711.Law
		dmw []byte
	}{
		{g711.Ulaw, []byte{0x1e, 0x0b, 0x0b, 0x1e, 0x9e, 0x8b, 0x8b, 0x9e}},
		{g711.Alaw, []byte{0x34, 0x21, 0x21, 0x34, 0xb4, 0xa1, 0xa1, 0xb4}},
	} {
		s, err := tt.law.Decode(nil, tt.dmw)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, v := range s {
			sum += float64(v) * float64(v)
		}
		if db := 20 * math.Log10(math.Sqrt(sum/8)/g711.RMS0dBm0); math.Abs(db) > 0.05 {
			t.Fatalf("%v digital milliwatt at %.3f dBm0", tt.law, db)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, law := range []g711.Law{g711.Ulaw, g711.Alaw} {
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		lin, err := law.Decode(nil, all)
		if err != nil {
			t.Fatal(err)
		}
		back, err := law.Encode(nil, lin)
		if err != nil {
			t.Fatal(err)
		}
		for i := range all {
			// μ-law has two zeros (0x7f and 0xff); every other code is its own.
			if back[i] != all[i] && !(law == g711.Ulaw && all[i] == 0x7f && back[i] == 0xff) {
				t.Fatalf("%v: %#x -> %d -> %#x", law, all[i], lin[i], back[i])
			}
		}
		// The quantization error of a linear ramp stays within one step
		// of the top segment (1,024 in 16-bit samples, either law).
		for v := -32000; v <= 32000; v += 97 {
			e, _ := law.Encode(nil, []int16{int16(v)})
			d, _ := law.Decode(nil, e)
			if diff := math.Abs(float64(int(d[0]) - v)); diff > 1100 {
				t.Fatalf("%v: %d decodes to %d", law, v, d[0])
			}
		}
	}
}

func TestBadLaw(t *testing.T) {
	if _, err := g711.Law(3).Decode(nil, []byte{1}); !errors.Is(err, g711.ErrLaw) {
		t.Fatal(err)
	}
	if _, err := g711.Law(3).Encode(nil, []int16{1}); !errors.Is(err, g711.ErrLaw) {
		t.Fatal(err)
	}
	if g711.Law(3).Valid() || !g711.Alaw.Valid() || g711.Ulaw.String() != "PCMU" || g711.Alaw.String() != "PCMA" {
		t.Fatal("Valid/String")
	}
}

func BenchmarkDecodeUlaw20ms(b *testing.B) {
	src := make([]byte, 160)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]int16, 0, 160)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = g711.Ulaw.Decode(dst[:0], src)
	}
}

// FuzzDecode: any bytes decode under either law, and decoding is a fixed
// point of encode-then-decode (every decoded value is exactly a table
// value).
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x00, 0x7f, 0x80, 0xff, 0xd5, 0x55})
	f.Fuzz(func(t *testing.T, audio []byte) {
		for _, law := range []g711.Law{g711.Ulaw, g711.Alaw} {
			lin, err := law.Decode(nil, audio)
			if err != nil || len(lin) != len(audio) {
				t.Fatalf("%v: %d samples, %v", law, len(lin), err)
			}
			enc, _ := law.Encode(nil, lin)
			again, _ := law.Decode(nil, enc)
			for i := range lin {
				if again[i] != lin[i] {
					t.Fatalf("%v: sample %d: %d then %d", law, i, lin[i], again[i])
				}
			}
		}
	})
}
