package dtmf_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/posgate/posgate/gateway/ivr/dtmf"
	"github.com/posgate/posgate/protocol/g711"
)

// dBm0 returns the amplitude of a sine at level dB (dBm0).
func dBm0(level float64) float64 {
	return g711.RMS0dBm0 * math.Sqrt2 * math.Pow(10, level/20)
}

// tone describes one synthetic key press.
type tone struct {
	digit          byte
	ms             float64 // duration
	lowDB, highDB  float64 // levels, dBm0
	lowOff, hiOff  float64 // relative frequency offsets (0.015 = +1.5 %)
	phaseL, phaseH float64
}

// signal builds float audio: silence of lead ms, then each tone followed
// by gap ms of silence.
type signal struct {
	samples []float64
	starts  []int // sample index where each tone starts
}

func (s *signal) silence(ms float64) {
	s.samples = append(s.samples, make([]float64, int(ms*8))...)
}

func (s *signal) add(t tone) {
	lo, hi, ok := dtmf.Freqs(t.digit)
	if !ok {
		panic("not a digit")
	}
	lo *= 1 + t.lowOff
	hi *= 1 + t.hiOff
	al, ah := dBm0(t.lowDB), dBm0(t.highDB)
	n := int(math.Round(t.ms * 8))
	s.starts = append(s.starts, len(s.samples))
	for i := range n {
		x := float64(i) / dtmf.SampleRate
		s.samples = append(s.samples, al*math.Sin(2*math.Pi*lo*x+t.phaseL)+ah*math.Sin(2*math.Pi*hi*x+t.phaseH))
	}
}

// power returns the mean power of samples[from:to].
func power(x []float64) float64 {
	p := 0.0
	for _, v := range x {
		p += v * v
	}
	return p / float64(len(x))
}

// addNoise adds white Gaussian noise of the given power.
func addNoise(x []float64, p float64, rng *rand.Rand) {
	sd := math.Sqrt(p)
	for i := range x {
		x[i] += rng.NormFloat64() * sd
	}
}

// pcm clips to 16 bits and, when law is valid, passes the audio through
// G.711 as a call would.
func pcm(t testing.TB, x []float64, law g711.Law) []int16 {
	out := make([]int16, len(x))
	for i, v := range x {
		out[i] = int16(max(-32768, min(32767, math.Round(v))))
	}
	if !law.Valid() {
		return out
	}
	enc, err := law.Encode(nil, out)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := law.Decode(nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	return dec
}

// detect runs a fresh default Detector over samples in 20 ms packets.
func detect(t testing.TB, cfg dtmf.Config, samples []int16) []dtmf.Tone {
	d, err := dtmf.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []dtmf.Tone
	for len(samples) > 0 {
		n := min(160, len(samples))
		got = d.Write(got, samples[:n])
		samples = samples[n:]
	}
	return got
}

func digits(ts []dtmf.Tone) string {
	b := make([]byte, len(ts))
	for i, t := range ts {
		b[i] = t.Digit
	}
	return string(b)
}
