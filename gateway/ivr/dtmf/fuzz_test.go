package dtmf_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/posgate/posgate/gateway/ivr/dtmf"
	"github.com/posgate/posgate/protocol/g711"
	"github.com/posgate/posgate/protocol/rtpevent"
)

// FuzzDetector reads arbitrary audio, as G.711 μ-law bytes and as 16-bit
// linear samples: it never panics, reports digits only from the DTMF
// alphabet with onsets in order and inside the audio read, and gives the
// same digits however the audio is cut into packets.
func FuzzDetector(f *testing.F) {
	var s signal
	s.add(tone{digit: '9', ms: 60, lowDB: -10, highDB: -8})
	s.silence(50)
	seed, _ := g711.Ulaw.Encode(nil, pcm(f, s.samples, g711.Law(255)))
	f.Add(seed, uint8(160))
	f.Add([]byte{0x00, 0x80, 0xff, 0x7f}, uint8(1))
	f.Fuzz(func(t *testing.T, audio []byte, cut uint8) {
		lin := make([]int16, len(audio)/2)
		for i := range lin {
			lin[i] = int16(binary.LittleEndian.Uint16(audio[2*i:]))
		}
		ulaw, _ := g711.Ulaw.Decode(nil, audio)
		for _, in := range [][]int16{lin, ulaw} {
			whole := detect(t, dtmf.Config{}, in)
			check(t, whole, int64(len(in)))
			d, _ := dtmf.New(dtmf.Config{})
			var pieces []dtmf.Tone
			step := int(cut)%200 + 1
			for p := in; len(p) > 0; p = p[min(step, len(p)):] {
				pieces = d.Write(pieces, p[:min(step, len(p))])
			}
			if len(pieces) != len(whole) {
				t.Fatalf("%d digits whole, %d in %d-sample pieces", len(whole), len(pieces), step)
			}
			for i := range whole {
				if whole[i] != pieces[i] {
					t.Fatalf("digit %d differs by packetization", i)
				}
			}
		}
	})
}

func check(t *testing.T, ts []dtmf.Tone, read int64) {
	t.Helper()
	last := int64(math.MinInt64)
	for _, tn := range ts {
		if !rtpevent.IsDigit(tn.Digit) {
			t.Fatalf("digit %q outside the alphabet", tn.Digit)
		}
		if tn.At < 0 || tn.At >= read || tn.At < last {
			t.Fatalf("onset %d out of order or outside [0,%d)", tn.At, read)
		}
		last = tn.At
	}
}
