package dtmf_test

import (
	"math/rand/v2"
	"testing"

	"github.com/posgate/posgate/gateway/ivr/dtmf"
	"github.com/posgate/posgate/protocol/g711"
)

// benchAudio is 2 s of keys in noise, μ-law encoded as a call carries it.
func benchAudio(b *testing.B) []byte {
	var s signal
	for _, k := range []byte("4111111111111111") {
		s.add(tone{digit: k, ms: 60, lowDB: -10, highDB: -8})
		s.silence(65)
	}
	addNoise(s.samples, 1e4, rand.New(rand.NewPCG(1, 1)))
	enc, _ := g711.Ulaw.Encode(nil, pcm(b, s.samples, g711.Law(255)))
	return enc[:len(enc)/160*160]
}

// BenchmarkDetect20ms is the in-band detection cost of one call for one
// 20 ms RTP packet (160 μ-law samples, decode included). calls/core is
// how many calls' worth of detection one core carries in real time.
func BenchmarkDetect20ms(b *testing.B) {
	audio := benchAudio(b)
	d, _ := dtmf.New(dtmf.Config{})
	dst := make([]dtmf.Tone, 0, 32)
	b.ReportAllocs()
	off := 0
	for b.Loop() {
		dst, _ = d.WriteG711(dst[:0], g711.Ulaw, audio[off:off+160])
		if off += 160; off == len(audio) {
			off = 0
		}
	}
	perFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(20e6/perFrame, "calls/core")
}

// BenchmarkDetect20msParallel runs one Detector per goroutine on every
// core (-cpu sets how many).
func BenchmarkDetect20msParallel(b *testing.B) {
	audio := benchAudio(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d, _ := dtmf.New(dtmf.Config{})
		dst := make([]dtmf.Tone, 0, 32)
		off := 0
		for pb.Next() {
			dst, _ = d.WriteG711(dst[:0], g711.Ulaw, audio[off:off+160])
			if off += 160; off == len(audio) {
				off = 0
			}
		}
	})
}
