package dtmf_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/posgate/posgate/gateway/ivr/dtmf"
	"github.com/posgate/posgate/protocol/g711"
	"github.com/posgate/posgate/protocol/rtpevent"
)

// Levels of a typical keypad: low tone -10 dBm0, high tone -8 dBm0.
const lowDB, highDB = -10.0, -8.0

// one returns the digits detected in a single tone of t, preceded and
// followed by silence, starting lead ms in.
func one(t *testing.T, tn tone, lead float64, law g711.Law) []dtmf.Tone {
	t.Helper()
	var s signal
	s.silence(lead)
	s.add(tn)
	s.silence(80)
	return detect(t, dtmf.Config{}, pcm(t, s.samples, law))
}

func TestEveryDigit(t *testing.T) {
	for _, law := range []g711.Law{g711.Ulaw, g711.Alaw, g711.Law(255)} {
		for _, d := range []byte(rtpevent.Digits) {
			t.Run(fmt.Sprintf("%v_%c", law, d), func(t *testing.T) {
				got := one(t, tone{digit: d, ms: 60, lowDB: lowDB, highDB: highDB}, 100, law)
				if digits(got) != string(d) {
					t.Fatalf("got %q", digits(got))
				}
				if onset := int64(800); got[0].At < onset-80 || got[0].At > onset+80 {
					t.Fatalf("At %d, tone starts at %d", got[0].At, onset)
				}
			})
		}
	}
}

func TestFrequencyTolerance(t *testing.T) {
	tests := []struct {
		name          string
		lowOff, hiOff float64
		detect        bool
	}{
		{"both_plus_1.5", 0.015, 0.015, true},
		{"both_minus_1.5", -0.015, -0.015, true},
		{"low_plus_high_minus_1.5", 0.015, -0.015, true},
		{"low_minus_high_plus_1.5", -0.015, 0.015, true},
		{"low_plus_3.5", 0.035, 0, false},
		{"low_minus_3.5", -0.035, 0, false},
		{"high_plus_3.5", 0, 0.035, false},
		{"high_minus_3.5", 0, -0.035, false},
		{"both_plus_3.5", 0.035, 0.035, false},
		{"both_minus_3.5", -0.035, -0.035, false},
		{"low_plus_6", 0.06, 0, false},
		{"high_minus_6", 0, -0.06, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []byte(rtpevent.Digits) {
				for ph := 0.0; ph < 6; ph += 1.5 {
					got := digits(one(t, tone{digit: d, ms: 60, lowDB: lowDB, highDB: highDB,
						lowOff: tt.lowOff, hiOff: tt.hiOff, phaseL: ph, phaseH: 2 * ph}, 100+ph, g711.Ulaw))
					want := ""
					if tt.detect {
						want = string(d)
					}
					if got != want {
						t.Fatalf("digit %c phase %.1f: got %q, want %q", d, ph, got, want)
					}
				}
			}
		})
	}
}

func TestTwist(t *testing.T) {
	tests := []struct {
		name   string
		twist  float64 // high minus low, dB
		detect bool
	}{
		{"flat", 0, true},
		{"normal_4dB", 4, true},
		{"normal_7dB", 7, true},
		{"normal_10dB", 10, false},
		{"normal_12dB", 12, false},
		{"reverse_3dB", -3, true},
		{"reverse_6dB", -6, false},
		{"reverse_10dB", -10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []byte(rtpevent.Digits) {
				got := digits(one(t, tone{digit: d, ms: 60, lowDB: -14, highDB: -14 + tt.twist}, 100, g711.Ulaw))
				if (got == string(d)) != tt.detect || (got != "" && got != string(d)) {
					t.Fatalf("digit %c: got %q", d, got)
				}
			}
		})
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		name   string
		db     float64 // each tone
		detect bool
	}{
		{"loud_minus_3", -3, true},
		{"quiet_minus_25", -25, true},
		{"threshold_minus_28", -28, true},
		{"below_minus_33", -33, false},
		{"far_below_minus_45", -45, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []byte(rtpevent.Digits) {
				got := digits(one(t, tone{digit: d, ms: 60, lowDB: tt.db, highDB: tt.db}, 100, g711.Ulaw))
				if (got == string(d)) != tt.detect || (got != "" && got != string(d)) {
					t.Fatalf("digit %c: got %q", d, got)
				}
			}
		})
	}
}

// Every alignment of the tone against the 5 ms analysis hop, in 0.625 ms
// steps, and several starting phases.
func TestDuration(t *testing.T) {
	tests := []struct {
		ms     float64
		detect bool
	}{
		{20, false}, {25, false}, {30, false}, {40, true}, {45, true}, {60, true}, {500, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%gms", tt.ms), func(t *testing.T) {
			for _, d := range []byte(rtpevent.Digits) {
				for shift := 0.0; shift < 5; shift += 0.625 {
					got := digits(one(t, tone{digit: d, ms: tt.ms, lowDB: lowDB, highDB: highDB,
						phaseL: shift, phaseH: 3 * shift}, 50+shift, g711.Ulaw))
					if (got == string(d)) != tt.detect || (got != "" && got != string(d)) {
						t.Fatalf("digit %c shift %.3f ms: got %q", d, shift, got)
					}
				}
			}
		})
	}
}

func TestSequences(t *testing.T) {
	tests := []struct {
		name   string
		keys   string
		toneMS float64
		gapMS  float64
	}{
		{"all_keys_fastest", rtpevent.Digits, 40, 40},
		{"same_key_repeated_40ms_gaps", "5555", 40, 40},
		{"same_key_repeated_typical", "000111", 80, 60},
		{"card_like_test_pattern", "4111111111111111", 70, 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for shift := 0.0; shift < 5; shift += 1.25 {
				var s signal
				s.silence(30 + shift)
				for _, k := range []byte(tt.keys) {
					s.add(tone{digit: k, ms: tt.toneMS, lowDB: lowDB, highDB: highDB})
					s.silence(tt.gapMS)
				}
				if got := digits(detect(t, dtmf.Config{}, pcm(t, s.samples, g711.Alaw))); got != tt.keys {
					t.Fatalf("shift %.2f: got %q, want %q", shift, got, tt.keys)
				}
			}
		})
	}
}

// A 10 ms drop-out inside a held key is bridged: one digit, not two.
func TestDropoutBridged(t *testing.T) {
	for _, d := range []byte(rtpevent.Digits) {
		for shift := 0.0; shift < 5; shift += 1.25 {
			var s signal
			s.silence(40 + shift)
			s.add(tone{digit: d, ms: 60, lowDB: lowDB, highDB: highDB})
			s.silence(10)
			s.add(tone{digit: d, ms: 60, lowDB: lowDB, highDB: highDB, phaseL: 1, phaseH: 2})
			s.silence(60)
			if got := digits(detect(t, dtmf.Config{}, pcm(t, s.samples, g711.Ulaw))); got != string(d) {
				t.Fatalf("digit %c shift %.2f: got %q", d, shift, got)
			}
		}
	}
}

// noiseRun plays n random keys with white noise at snr dB below the
// tones' power, and returns how many were detected, in order, and how
// many digits were extra or wrong.
func noiseRun(t *testing.T, rng *rand.Rand, n int, toneMS, gapMS, snr float64, offsets bool) (hit, bad int) {
	t.Helper()
	var s signal
	keys := make([]byte, n)
	s.silence(50)
	for i := range keys {
		keys[i] = rtpevent.Digits[rng.IntN(16)]
		tn := tone{digit: keys[i], ms: toneMS, lowDB: lowDB, highDB: highDB,
			phaseL: rng.Float64() * 6.3, phaseH: rng.Float64() * 6.3}
		if offsets {
			tn.lowOff = (rng.Float64()*2 - 1) * 0.015
			tn.hiOff = (rng.Float64()*2 - 1) * 0.015
			tw := rng.Float64()*10 - 3.5 // -3.5 .. +6.5 dB twist
			tn.lowDB, tn.highDB = -12, -12+tw
		}
		s.add(tn)
		s.silence(gapMS + rng.Float64()*5)
	}
	// Signal power: the mean power of the tones themselves.
	var sig float64
	toneLen := int(toneMS * 8)
	for _, st := range s.starts {
		sig += power(s.samples[st : st+toneLen])
	}
	sig /= float64(len(s.starts))
	addNoise(s.samples, sig/math.Pow(10, snr/10), rng)
	got := detect(t, dtmf.Config{}, pcm(t, s.samples, g711.Ulaw))
	// Match each detection to the tone whose onset it reports.
	next := 0
	for _, g := range got {
		for next < len(keys) && int64(s.starts[next])+int64(toneLen) < g.At {
			next++
		}
		if next < len(keys) && g.At >= int64(s.starts[next])-200 && g.Digit == keys[next] {
			hit++
			next++
		} else {
			bad++
		}
	}
	return hit, bad
}

// The target: at least 99 % of digits detected at 15 dB SNR.
func TestNoiseDetectionRate(t *testing.T) {
	tests := []struct {
		name          string
		toneMS, gapMS float64
		offsets       bool
		minRate       float64
	}{
		{"typical_70ms_keys", 70, 70, false, 0.99},
		{"shortest_40ms_keys", 40, 40, false, 0.99},
		{"40ms_keys_off_frequency_and_twisted", 40, 40, true, 0.95},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 600
			rng := rand.New(rand.NewPCG(19, uint64(len(tt.name))))
			hit, bad := noiseRun(t, rng, n, tt.toneMS, tt.gapMS, 15, tt.offsets)
			rate := float64(hit) / n
			t.Logf("15 dB SNR, %g ms keys, %g ms gaps, offsets %v: %d/%d detected (%.2f %%), %d false", tt.toneMS, tt.gapMS, tt.offsets, hit, n, 100*rate, bad)
			if rate < tt.minRate || bad != 0 {
				t.Fatalf("detection rate %.4f (want ≥ %.2f), %d false digits", rate, tt.minRate, bad)
			}
		})
	}
}

// readWAV reads a mono 8 kHz WAV (PCM 16-bit, A-law or μ-law).
func readWAV(t *testing.T, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s: not a WAV file", path)
	}
	var format, channels, bits uint16
	var rate uint32
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:]))
		body := b[p+8 : min(len(b), p+8+size)]
		switch id {
		case "fmt ":
			format, channels = binary.LittleEndian.Uint16(body), binary.LittleEndian.Uint16(body[2:])
			rate, bits = binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint16(body[14:])
		case "data":
			if channels != 1 || rate != dtmf.SampleRate {
				t.Fatalf("%s: %d channels at %d Hz", path, channels, rate)
			}
			switch {
			case format == 7 && bits == 8:
				s, _ := g711.Ulaw.Decode(nil, body)
				return s
			case format == 6 && bits == 8:
				s, _ := g711.Alaw.Decode(nil, body)
				return s
			case format == 1 && bits == 16:
				s := make([]int16, len(body)/2)
				for i := range s {
					s[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
				}
				return s
			}
			t.Fatalf("%s: format %d, %d bits", path, format, bits)
		}
		p += 8 + size + size&1
	}
	t.Fatalf("%s: no data chunk", path)
	return nil
}

// Talk-off: English and Japanese speech (espeak-ng, scripts/dtmf-speech.sh)
// at its recorded level, louder and quieter, through both laws, with and
// without noise: not one digit.
func TestSpeechTalkOff(t *testing.T) {
	for _, file := range []string{"testdata/speech-en.wav", "testdata/speech-ja.wav"} {
		speech := readWAV(t, file)
		x := make([]float64, len(speech))
		for i, v := range speech {
			x[i] = float64(v)
		}
		t.Logf("%s: %.1f s at %.1f dBm0 RMS", file, float64(len(x))/dtmf.SampleRate,
			10*math.Log10(power(x)/(g711.RMS0dBm0*g711.RMS0dBm0)))
		for _, gain := range []float64{-10, 0, 6} {
			for _, law := range []g711.Law{g711.Ulaw, g711.Alaw} {
				for _, snr := range []float64{math.Inf(1), 20} {
					y := make([]float64, len(x))
					for i := range x {
						y[i] = x[i] * math.Pow(10, gain/20)
					}
					if !math.IsInf(snr, 1) {
						addNoise(y, power(y)/math.Pow(10, snr/10), rand.New(rand.NewPCG(1, 2)))
					}
					// Every packetization phase: the detector's 5 ms hop
					// falls on different samples.
					for lead := 0; lead < 40; lead += 13 {
						in := append(make([]float64, lead), y...)
						if got := detect(t, dtmf.Config{}, pcm(t, in, law)); len(got) != 0 {
							t.Fatalf("%s gain %+g dB %v snr %v lead %d: %d false digits at %v", file, gain, law, snr, lead, len(got), got)
						}
					}
				}
			}
		}
	}
}

func TestNoiseAndSilenceGiveNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, db := range []float64{-60, -30, -10, 0} {
		x := make([]float64, 8000*3)
		addNoise(x, math.Pow(dBm0(db), 2)/2, rng)
		if got := detect(t, dtmf.Config{}, pcm(t, x, g711.Ulaw)); len(got) != 0 {
			t.Fatalf("white noise at %g dBm0: %v", db, got)
		}
	}
	if got := detect(t, dtmf.Config{}, make([]int16, 8000)); len(got) != 0 {
		t.Fatalf("silence: %v", got)
	}
	// A single tone of either group is not a digit.
	var s signal
	s.add(tone{digit: '1', ms: 200, lowDB: -10, highDB: -80})
	s.add(tone{digit: '1', ms: 200, lowDB: -80, highDB: -10})
	if got := detect(t, dtmf.Config{}, pcm(t, s.samples, g711.Ulaw)); len(got) != 0 {
		t.Fatalf("single tones: %v", got)
	}
}

func TestConfig(t *testing.T) {
	good := []dtmf.Config{{}, {MinLevel: -40, NormalTwist: 6, ReverseTwist: 6, MinTone: 50 * time.Millisecond, MinGap: 30 * time.Millisecond}}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	bad := []struct {
		name string
		cfg  dtmf.Config
	}{
		{"level_too_low", dtmf.Config{MinLevel: -60}},
		{"level_positive", dtmf.Config{MinLevel: 3}},
		{"level_nan", dtmf.Config{MinLevel: math.NaN()}},
		{"normal_twist_negative", dtmf.Config{NormalTwist: -1}},
		{"reverse_twist_huge", dtmf.Config{ReverseTwist: 20}},
		{"tone_too_short", dtmf.Config{MinTone: 20 * time.Millisecond}},
		{"tone_not_5ms_step", dtmf.Config{MinTone: 42 * time.Millisecond}},
		{"gap_too_long", dtmf.Config{MinGap: time.Second}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dtmf.New(tt.cfg); !errors.Is(err, dtmf.ErrConfig) {
				t.Fatalf("New: %v", err)
			}
		})
	}
	err := dtmf.Config{MinLevel: -60, MinGap: time.Second}.Validate()
	if err == nil || !errors.Is(err, dtmf.ErrConfig) || len(fmt.Sprint(err)) < 60 {
		t.Fatalf("two bad keys: %v", err)
	}
}

// A longer MinTone rejects what the default accepts.
func TestMinToneConfigured(t *testing.T) {
	var s signal
	s.silence(20)
	s.add(tone{digit: '7', ms: 45, lowDB: lowDB, highDB: highDB})
	s.silence(60)
	in := pcm(t, s.samples, g711.Ulaw)
	if got := digits(detect(t, dtmf.Config{}, in)); got != "7" {
		t.Fatalf("default: %q", got)
	}
	if got := digits(detect(t, dtmf.Config{MinTone: 70 * time.Millisecond}, in)); got != "" {
		t.Fatalf("MinTone 70ms: %q", got)
	}
}

func TestWriteG711AndReset(t *testing.T) {
	var s signal
	s.silence(20)
	s.add(tone{digit: '#', ms: 80, lowDB: lowDB, highDB: highDB})
	s.silence(60)
	lin := pcm(t, s.samples, g711.Law(255))
	payload, _ := g711.Alaw.Encode(nil, lin)
	d, _ := dtmf.New(dtmf.Config{})
	var got []dtmf.Tone
	for p := payload; len(p) > 0; p = p[min(160, len(p)):] {
		var err error
		if got, err = d.WriteG711(got, g711.Alaw, p[:min(160, len(p))]); err != nil {
			t.Fatal(err)
		}
	}
	if digits(got) != "#" {
		t.Fatalf("got %q", digits(got))
	}
	if _, err := d.WriteG711(nil, g711.Law(42), payload); !errors.Is(err, g711.ErrLaw) {
		t.Fatalf("bad law: %v", err)
	}
	d.Reset()
	again, _ := d.WriteG711(nil, g711.Alaw, payload)
	if len(again) != 1 || again[0] != got[0] {
		t.Fatalf("after Reset: %v, first run %v", again, got)
	}
}

// A key held from the very first sample is reported with onset 0.
func TestToneFromFirstSample(t *testing.T) {
	var s signal
	s.add(tone{digit: 'B', ms: 60, lowDB: lowDB, highDB: highDB})
	s.silence(60)
	got := detect(t, dtmf.Config{}, pcm(t, s.samples, g711.Ulaw))
	if digits(got) != "B" || got[0].At != 0 {
		t.Fatalf("got %v", got)
	}
}
