// Package dtmf detects in-band DTMF: the dual tones of a telephone keypad
// in the decoded audio of a call (8 kHz linear PCM, G.711 decoded by
// protocol/g711), for callers whose PBX sends neither RFC 4733 events nor
// SIP INFO. docs/ivr.md gives the thresholds and why.
//
// The Detector runs the Goertzel algorithm for the eight DTMF frequencies
// over 10 ms Hann-windowed frames every 5 ms, and decides every 5 ms on
// the last 20 ms (three frames). A 20 ms window holds a digit when, for the
// strongest frequency of each group:
//
//   - each tone is at least MinLevel (energy threshold);
//   - the high tone is at most NormalTwist above the low tone and at most
//     ReverseTwist below it;
//   - its frequency, measured from the Goertzel phase advance between
//     frames, is within ±2.5 % of nominal: tones off by up to 1.5 % are
//     accepted and tones off by 3.5 % rejected, as ITU-T Q.24 asks;
//   - the two tones carry at least 70 % of the window's energy, and each
//     tone's level varies by at most 3 dB across the three frames (speech
//     and noise are neither that pure nor that steady: no talk-off).
//
// A digit is reported once, when it has held for MinTone; the same digit
// again needs MinGap without it first (shorter drop-outs are bridged), a
// different digit needs only its own MinTone.
package dtmf

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/posgate/posgate/protocol/g711"
)

// SampleRate is the only rate the Detector reads, in samples per second.
const SampleRate = 8000

// Analysis geometry, in samples.
const (
	hop      = 40  // 5 ms between decisions
	frameLen = 80  // 10 ms Goertzel frames, Hann-windowed
	window   = 160 // 20 ms decided at once: frames k-2, k-1, k
)

// Fixed thresholds (docs/ivr.md).
const (
	// freqTolerance is the largest accepted frequency error: midway
	// between Q.24's must-accept 1.5 % and must-reject 3.5 %.
	freqTolerance = 0.025
	// minPurity is the share of a window's energy the two tones carry.
	minPurity = 0.70
	// maxUnsteadyDB is how much a tone's level may vary across the three
	// frames of a window.
	maxUnsteadyDB = 3.0
)

// Low and high group frequencies, in Hz; Keys[row][col] is the digit.
var (
	lowFreqs  = [4]float64{697, 770, 852, 941}
	highFreqs = [4]float64{1209, 1336, 1477, 1633}
	keys      = [4][4]byte{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
)

// Freqs returns the low and high frequency of digit d, in Hz, and false
// when d is not a DTMF digit. Tests and tone generators use it.
func Freqs(d byte) (low, high float64, ok bool) {
	for r := range keys {
		for c := range keys[r] {
			if keys[r][c] == d {
				return lowFreqs[r], highFreqs[c], true
			}
		}
	}
	return 0, 0, false
}

// Config tunes a Detector. The zero value means every default.
type Config struct {
	// MinLevel is the weakest tone accepted, per tone, in dBm0 (a
	// negative number); 0 means -30.
	MinLevel float64
	// NormalTwist is how far the high tone may be above the low tone, in
	// dB; 0 means 8.
	NormalTwist float64
	// ReverseTwist is how far the high tone may be below the low tone, in
	// dB; 0 means 4.
	ReverseTwist float64
	// MinTone is the shortest tone reported as a digit; 0 means 40 ms.
	// It must be a multiple of 5 ms between 25 ms and 200 ms.
	MinTone time.Duration
	// MinGap is the shortest pause that separates two presses of the same
	// key; 0 means 40 ms. It must be a multiple of 5 ms between 15 ms and
	// 200 ms.
	MinGap time.Duration
}

// ErrConfig means a Config value is out of its range; the error names the
// field, its value and the rule.
var ErrConfig = errors.New("dtmf: invalid config")

func (c Config) withDefaults() Config {
	if c.MinLevel == 0 {
		c.MinLevel = -30
	}
	if c.NormalTwist == 0 {
		c.NormalTwist = 8
	}
	if c.ReverseTwist == 0 {
		c.ReverseTwist = 4
	}
	if c.MinTone == 0 {
		c.MinTone = 40 * time.Millisecond
	}
	if c.MinGap == 0 {
		c.MinGap = 40 * time.Millisecond
	}
	return c
}

// Validate reports every value out of range, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field string, v any, rule string) {
		errs = append(errs, fmt.Errorf("%w: %s = %v: %s", ErrConfig, field, v, rule))
	}
	if !(c.MinLevel >= -50 && c.MinLevel <= -6) {
		bad("MinLevel", c.MinLevel, "must be between -50 and -6 dBm0")
	}
	if !(c.NormalTwist > 0 && c.NormalTwist <= 12) {
		bad("NormalTwist", c.NormalTwist, "must be above 0 and at most 12 dB")
	}
	if !(c.ReverseTwist > 0 && c.ReverseTwist <= 12) {
		bad("ReverseTwist", c.ReverseTwist, "must be above 0 and at most 12 dB")
	}
	const step = 5 * time.Millisecond
	if c.MinTone < 25*time.Millisecond || c.MinTone > 200*time.Millisecond || c.MinTone%step != 0 {
		bad("MinTone", c.MinTone, "must be a multiple of 5ms from 25ms to 200ms")
	}
	if c.MinGap < 15*time.Millisecond || c.MinGap > 200*time.Millisecond || c.MinGap%step != 0 {
		bad("MinGap", c.MinGap, "must be a multiple of 5ms from 15ms to 200ms")
	}
	return errors.Join(errs...)
}

// Tone is one detected digit.
type Tone struct {
	// Digit is one of "0123456789*#ABCD".
	Digit byte
	// At is the index, counted from the first sample the Detector read, of
	// the first sample of the 20 ms window where the digit was first seen:
	// the tone's onset give or take 5 ms.
	At int64
}

// freq is one Goertzel filter.
type freq struct {
	coeff  float64 // 2 cos ω
	cw, sw float64 // cos ω, sin ω
	adv40  float64 // nominal phase advance over one hop
	adv80  float64 // nominal phase advance over one frame
	hz     float64
}

// frame is the analysis of one 10 ms frame.
type frame struct {
	re, im [8]float64 // Goertzel outputs, low group then high group
	energy float64    // Σ (w·x)²
}

// A Detector finds DTMF digits in one stream of 8 kHz audio. It is not
// safe for concurrent use; one call direction owns one.
type Detector struct {
	cfg       Config
	minPower  float64 // per tone, in (16-bit sample)²
	normTwist float64 // power ratios
	revTwist  float64
	holdHops  int // decisions a digit must hold
	gapHops   int // decisions without it that end it
	freqs     [8]freq
	win       [frameLen]float64
	winSum    float64 // Σ w
	winSq     float64 // Σ w²

	buf     [frameLen]float64
	fill    int   // samples of the current hop in buf[hop:]
	read    int64 // samples consumed
	frames  [3]frame
	nframes int64

	cand   byte  // candidate of the current run (0: none)
	run    int   // decisions the candidate has held
	runAt  int64 // window start of the run's first decision
	active byte  // digit reported and not yet ended (0: none)
	miss   int   // decisions since active was last seen

	scratch []int16
}

// New returns a Detector, or an error wrapping ErrConfig.
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Detector{cfg: cfg}
	amp := g711.RMS0dBm0 * math.Pow(10, cfg.MinLevel/20)
	d.minPower = amp * amp
	d.normTwist = math.Pow(10, cfg.NormalTwist/10)
	d.revTwist = math.Pow(10, cfg.ReverseTwist/10)
	hopDur := time.Duration(hop) * time.Second / SampleRate
	winDur := time.Duration(window) * time.Second / SampleRate
	// A tone of MinTone holds (MinTone-20ms)/5ms+1 whole windows when it
	// starts on a hop boundary and one fewer otherwise; the windows it
	// only partly covers may pass too, which is why tones a little
	// shorter than MinTone can pass (docs/ivr.md gives the measured
	// band). MinGap clears at least (MinGap+20ms)/5ms-1 windows, less the
	// two a partial overlap may still pass.
	d.holdHops = int((cfg.MinTone-winDur)/hopDur) + 1
	d.gapHops = int((cfg.MinGap+winDur)/hopDur) - 3
	for i := range d.freqs {
		hz := lowFreqs[i%4]
		if i >= 4 {
			hz = highFreqs[i-4]
		}
		w := 2 * math.Pi * hz / SampleRate
		d.freqs[i] = freq{coeff: 2 * math.Cos(w), cw: math.Cos(w), sw: math.Sin(w),
			adv40: wrap(w * hop), adv80: wrap(w * frameLen), hz: hz}
	}
	for n := range d.win {
		s := math.Sin(math.Pi * (float64(n) + 0.5) / frameLen)
		d.win[n] = s * s
		d.winSum += d.win[n]
		d.winSq += d.win[n] * d.win[n]
	}
	return d, nil
}

// Reset forgets all audio read so far, as for a new call.
func (d *Detector) Reset() {
	*d = Detector{cfg: d.cfg, minPower: d.minPower, normTwist: d.normTwist, revTwist: d.revTwist,
		holdHops: d.holdHops, gapHops: d.gapHops, freqs: d.freqs, win: d.win, winSum: d.winSum,
		winSq: d.winSq, scratch: d.scratch}
}

// WriteG711 decodes a G.711 payload and reads it like Write. It returns
// dst unchanged and an error only when law is not valid.
func (d *Detector) WriteG711(dst []Tone, law g711.Law, payload []byte) ([]Tone, error) {
	var err error
	if d.scratch, err = law.Decode(d.scratch[:0], payload); err != nil {
		return dst, err
	}
	return d.Write(dst, d.scratch), nil
}

// Write reads samples (8 kHz, 16-bit linear, any count) and appends the
// digits they complete to dst. Any audio is valid input.
func (d *Detector) Write(dst []Tone, samples []int16) []Tone {
	for len(samples) > 0 {
		n := min(hop-d.fill, len(samples))
		for i, s := range samples[:n] {
			d.buf[hop+d.fill+i] = float64(s)
		}
		d.fill += n
		d.read += int64(n)
		samples = samples[n:]
		if d.fill == hop {
			dst = d.step(dst)
			copy(d.buf[:hop], d.buf[hop:])
			d.fill = 0
		}
	}
	return dst
}

// step analyses the frame that just completed and takes one decision.
func (d *Detector) step(dst []Tone) []Tone {
	d.frames[0], d.frames[1] = d.frames[1], d.frames[2]
	f := &d.frames[2]
	var s1, s2 [8]float64
	energy := 0.0
	for n, x := range d.buf {
		x *= d.win[n]
		energy += x * x
		for i := range s1 {
			s0 := x + d.freqs[i].coeff*s1[i] - s2[i]
			s2[i], s1[i] = s1[i], s0
		}
	}
	for i := range s1 {
		// y = s[N-1] - e^{-jω} s[N-2]: the DFT at ω rotated by a constant
		// that cancels in every phase difference below.
		f.re[i] = s1[i] - d.freqs[i].cw*s2[i]
		f.im[i] = d.freqs[i].sw * s2[i]
	}
	f.energy = energy
	d.nframes++
	if d.nframes < 4 {
		return dst // the first frame began with 40 samples of nothing
	}
	digit := d.decide()
	at := d.read - window
	return d.track(dst, digit, at)
}

// decide returns the digit the last three frames hold, or 0.
func (d *Detector) decide() byte {
	fa, fb, fc := &d.frames[0], &d.frames[1], &d.frames[2]
	total := (fa.energy + fb.energy + fc.energy) / 3 / d.winSq
	if total < 2*d.minPower {
		return 0
	}
	row, pl := d.strongest(0)
	col, ph := d.strongest(4)
	if pl < d.minPower || ph < d.minPower {
		return 0
	}
	if ph > pl*d.normTwist || pl > ph*d.revTwist {
		return 0
	}
	if pl+ph < minPurity*total {
		return 0
	}
	if !d.steadyAndTuned(row) || !d.steadyAndTuned(4+col) {
		return 0
	}
	return keys[row][col]
}

// strongest returns the index within the group starting at base of its
// strongest frequency, and that frequency's mean power as the power
// (A²/2) of a sine of amplitude A.
func (d *Detector) strongest(base int) (int, float64) {
	best, bestP := 0, -1.0
	for i := range 4 {
		p := 0.0
		for k := range d.frames {
			f := &d.frames[k]
			p += f.re[base+i]*f.re[base+i] + f.im[base+i]*f.im[base+i]
		}
		if p > bestP {
			best, bestP = i, p
		}
	}
	return best, bestP / 3 * 2 / (d.winSum * d.winSum)
}

// steadyAndTuned reports whether filter i's level is steady across the
// three frames and its measured frequency within freqTolerance.
func (d *Detector) steadyAndTuned(i int) bool {
	fa, fb, fc := &d.frames[0], &d.frames[1], &d.frames[2]
	pa := fa.re[i]*fa.re[i] + fa.im[i]*fa.im[i]
	pb := fb.re[i]*fb.re[i] + fb.im[i]*fb.im[i]
	pc := fc.re[i]*fc.re[i] + fc.im[i]*fc.im[i]
	lo, hi := min(pa, pb, pc), max(pa, pb, pc)
	if hi == 0 || lo*math.Pow(10, maxUnsteadyDB/10) < hi {
		return false
	}
	fq := &d.freqs[i]
	// Coarse: mean phase advance over one hop (unambiguous to ±100 Hz).
	zr := fb.re[i]*fa.re[i] + fb.im[i]*fa.im[i] + fc.re[i]*fb.re[i] + fc.im[i]*fb.im[i]
	zi := fb.im[i]*fa.re[i] - fb.re[i]*fa.im[i] + fc.im[i]*fb.re[i] - fc.re[i]*fb.im[i]
	coarse := wrap(math.Atan2(zi, zr)-fq.adv40) * SampleRate / (2 * math.Pi * hop)
	// Fine: advance over one frame (±50 Hz), unwrapped next to coarse.
	zr = fc.re[i]*fa.re[i] + fc.im[i]*fa.im[i]
	zi = fc.im[i]*fa.re[i] - fc.re[i]*fa.im[i]
	fine := wrap(math.Atan2(zi, zr)-fq.adv80) * SampleRate / (2 * math.Pi * frameLen)
	const alias = SampleRate / frameLen // 100 Hz
	fine += alias * math.Round((coarse-fine)/alias)
	return math.Abs(fine) <= freqTolerance*fq.hz
}

// track turns per-window decisions into digits, each reported once.
func (d *Detector) track(dst []Tone, digit byte, at int64) []Tone {
	if d.active != 0 {
		if digit == d.active {
			d.miss = 0
		} else {
			d.miss++
			if d.miss >= d.gapHops {
				d.active = 0
			}
		}
	}
	if digit == 0 || digit == d.active {
		d.cand, d.run = 0, 0
		return dst
	}
	if digit != d.cand {
		d.cand, d.run, d.runAt = digit, 0, at
	}
	d.run++
	if d.run >= d.holdHops {
		dst = append(dst, Tone{Digit: digit, At: d.runAt})
		d.active, d.miss = digit, 0
		d.cand, d.run = 0, 0
	}
	return dst
}

// wrap returns a in (-π, π].
func wrap(a float64) float64 {
	a = math.Mod(a, 2*math.Pi)
	if a > math.Pi {
		a -= 2 * math.Pi
	} else if a <= -math.Pi {
		a += 2 * math.Pi
	}
	return a
}
