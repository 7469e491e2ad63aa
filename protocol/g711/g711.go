// Package g711 is the ITU-T G.711 audio of the IVR's RTP streams: μ-law
// (PCMU, static RTP payload type 0) and A-law (PCMA, payload type 8), one
// byte per sample at 8 kHz, converted to and from 16-bit linear PCM. The
// tables are github.com/zaf/g711's (BSD-3-Clause, docs/ivr.md); this
// package gives them the allocation-free, append-style shape the IVR's
// per-packet path wants and pins them to G.711's own table values in its
// tests.
//
// Decoded samples are scaled to 16 bits: μ-law spans ±32124, A-law ±32256.
// A sine at 0 dBm0 (the digital milliwatt) has an RMS of RMS0dBm0.
package g711

import (
	"errors"
	"fmt"

	zg "github.com/zaf/g711"
)

// Law is a G.711 companding law.
type Law uint8

// The two laws, valued as their static RTP payload types (RFC 3551).
const (
	Ulaw Law = 0 // PCMU
	Alaw Law = 8 // PCMA
)

// RMS0dBm0 is the RMS of a 0 dBm0 sine in decoded 16-bit samples: G.711's
// μ-law digital milliwatt decodes to 16,017 RMS, the A-law one to 16,139;
// this is their mean, within 0.04 dB of both.
const RMS0dBm0 = 16078

// ErrLaw means a Law is neither Ulaw nor Alaw.
var ErrLaw = errors.New("g711: unknown companding law")

// Valid reports whether l is Ulaw or Alaw.
func (l Law) Valid() bool { return l == Ulaw || l == Alaw }

// String returns "PCMU" or "PCMA".
func (l Law) String() string {
	switch l {
	case Ulaw:
		return "PCMU"
	case Alaw:
		return "PCMA"
	}
	return fmt.Sprintf("Law(%d)", uint8(l))
}

// Decode appends the linear samples of the G.711 bytes src to dst. It
// returns dst unchanged and ErrLaw when l is not valid. Every byte is a
// valid sample: Decode never fails on audio.
func (l Law) Decode(dst []int16, src []byte) ([]int16, error) {
	var f func(uint8) int16
	switch l {
	case Ulaw:
		f = zg.DecodeUlawFrame
	case Alaw:
		f = zg.DecodeAlawFrame
	default:
		return dst, ErrLaw
	}
	dst = grow(dst, len(src))
	for _, b := range src {
		dst = append(dst, f(b))
	}
	return dst, nil
}

// Encode appends the G.711 bytes of the linear samples src to dst. It
// returns dst unchanged and ErrLaw when l is not valid.
func (l Law) Encode(dst []byte, src []int16) ([]byte, error) {
	var f func(int16) uint8
	switch l {
	case Ulaw:
		f = zg.EncodeUlawFrame
	case Alaw:
		f = zg.EncodeAlawFrame
	default:
		return dst, ErrLaw
	}
	if cap(dst)-len(dst) < len(src) {
		dst = append(make([]byte, 0, len(dst)+len(src)), dst...)
	}
	for _, s := range src {
		dst = append(dst, f(s))
	}
	return dst, nil
}

func grow(dst []int16, n int) []int16 {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	return append(make([]int16, 0, len(dst)+n), dst...)
}
