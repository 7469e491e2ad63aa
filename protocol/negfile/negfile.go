// Package negfile is the wire format of negative-file synchronisation: the
// chunks in which the center sends a full snapshot or a delta of its
// blocked-card list (PAN fingerprints, never PANs) to a gateway, either as
// the DE 72 data record of an ISO 8583 1304 file action (DE 101 "NEGFILE",
// DE 24 304 replace / 301 add / 303 delete) or, with larger chunks, on a
// control stream. docs/offline.md describes the format and the resume
// rules; the offline package applies chunks to the gateway's store.
//
// A chunk is printable ASCII:
//
//	NF1 <crc> <op> <base> <version> <seq> <total> [<fingerprints>]
//
// fields separated by one space; <crc> is the CRC-32C (Castagnoli) of
// everything after "NF1 <crc> " as 8 lower-case hex digits; <op> is S
// (snapshot), A (delta: add) or D (delta: delete); numbers are decimal
// without leading zeros; <fingerprints> is the concatenation of 32-hex
// fingerprints, absent when the chunk carries none.
//
// The package does no I/O and all its functions are safe for concurrent
// use.
package negfile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/posgate/posgate/protocol/iso93"
)

// FileName is the DE 101 file name of the negative file in 1304/1314.
const FileName = "NEGFILE"

// ISO 8583 function codes (DE 24) of a 1304 carrying a chunk.
const (
	FunctionAdd     = iso93.FunctionAddRecord    // delta chunk adding fingerprints
	FunctionDelete  = iso93.FunctionDeleteRecord // delta chunk removing fingerprints
	FunctionReplace = iso93.FunctionReplaceFile  // snapshot chunk: part of a full replacement
)

// Size limits.
const (
	// MaxDE72 is the longest chunk that fits ISO 8583 DE 72 (ans..999).
	MaxDE72 = 999
	// MaxChunkLen is the longest chunk Parse accepts (control-stream
	// chunks); about 32,000 fingerprints.
	MaxChunkLen = 1 << 20
	// FingerprintLen is the length of one fingerprint in a chunk.
	FingerprintLen = 32
)

const magic = "NF1"

// Op says what a chunk's fingerprints do.
type Op byte

// Chunk operations.
const (
	OpSnapshot Op = 'S' // part of a full snapshot at Version; Base is 0
	OpAdd      Op = 'A' // delta Base→Version: these fingerprints are blocked
	OpDelete   Op = 'D' // delta Base→Version: these fingerprints are unblocked
)

// String returns the op's letter.
func (o Op) String() string { return string(rune(o)) }

// FunctionCode returns the DE 24 function code of a 1304 carrying a chunk
// with op o, or "" for an unknown op.
func (o Op) FunctionCode() string {
	switch o {
	case OpSnapshot:
		return FunctionReplace
	case OpAdd:
		return FunctionAdd
	case OpDelete:
		return FunctionDelete
	}
	return ""
}

// Sentinel errors of chunk parsing, matched with errors.Is. Every parse
// error also wraps ErrMalformed.
var (
	// ErrMalformed is wrapped by every error Parse returns.
	ErrMalformed = errors.New("negfile: malformed chunk")
	// ErrChecksum reports a chunk whose CRC does not match its content
	// (corrupt or truncated in transit).
	ErrChecksum = errors.New("negfile: chunk checksum mismatch")
	// ErrTooLong reports a chunk longer than MaxChunkLen.
	ErrTooLong = errors.New("negfile: chunk too long")
	// ErrFunctionCode reports a DE 24 function code that does not match
	// the chunk's op.
	ErrFunctionCode = errors.New("negfile: function code does not match chunk")
)

// Chunk is one decoded piece of a sync session. A session is identified
// by (Op kind, Base, Version, Total): a snapshot session (OpSnapshot
// chunks) replaces the whole file with version Version; a delta session
// (OpAdd and OpDelete chunks, applied in Seq order) turns version Base
// into Version. Seq runs from 1 to Total.
//
// Fingerprints are 32 lower-case hex characters each. In a snapshot they
// are strictly ascending within a chunk and across the session's chunks.
type Chunk struct {
	Op           Op
	Base         uint64
	Version      uint64
	Seq          uint32
	Total        uint32
	Fingerprints []string
}

// Snapshot reports whether c belongs to a snapshot session.
func (c Chunk) Snapshot() bool { return c.Op == OpSnapshot }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Validate checks c's own invariants (not its fit with a store): a known
// op, Base 0 for a snapshot and Base < Version for a delta, 1 <= Seq <=
// Total, well-formed fingerprints, ascending in a snapshot.
func (c Chunk) Validate() error {
	switch c.Op {
	case OpSnapshot:
		if c.Base != 0 {
			return fmt.Errorf("snapshot chunk with base %d (must be 0): %w", c.Base, ErrMalformed)
		}
	case OpAdd, OpDelete:
		if c.Base >= c.Version {
			return fmt.Errorf("delta chunk from %d to %d does not go forward: %w", c.Base, c.Version, ErrMalformed)
		}
	default:
		return fmt.Errorf("unknown op %q: %w", byte(c.Op), ErrMalformed)
	}
	if c.Total == 0 || c.Seq == 0 || c.Seq > c.Total {
		return fmt.Errorf("chunk %d of %d: %w", c.Seq, c.Total, ErrMalformed)
	}
	for i, fp := range c.Fingerprints {
		if !validFingerprint(fp) {
			return fmt.Errorf("fingerprint %d is not 32 lower-case hex digits: %w", i, ErrMalformed)
		}
		if c.Op == OpSnapshot && i > 0 && fp <= c.Fingerprints[i-1] {
			return fmt.Errorf("snapshot fingerprint %d not in ascending order: %w", i, ErrMalformed)
		}
	}
	return nil
}

// Append appends the wire form of c to dst. It returns an error, and dst
// unchanged, when c is not valid.
func Append(dst []byte, c Chunk) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return dst, fmt.Errorf("encode chunk: %w", err)
	}
	start := len(dst)
	dst = append(dst, magic+" 00000000 "...)
	body := len(dst)
	dst = append(dst, byte(c.Op), ' ')
	dst = strconv.AppendUint(dst, c.Base, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, c.Version, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(c.Seq), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(c.Total), 10)
	if len(c.Fingerprints) > 0 {
		dst = append(dst, ' ')
		for _, fp := range c.Fingerprints {
			dst = append(dst, fp...)
		}
	}
	var sum [4]byte
	crc := crc32.Checksum(dst[body:], castagnoli)
	sum[0], sum[1], sum[2], sum[3] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	hex.Encode(dst[start+len(magic)+1:], sum[:])
	if len(dst)-start > MaxChunkLen {
		return dst[:start], fmt.Errorf("encode chunk of %d bytes: %w", len(dst)-start, ErrTooLong)
	}
	return dst, nil
}

// Marshal returns the wire form of c.
func Marshal(c Chunk) ([]byte, error) { return Append(nil, c) }

// Parse decodes one chunk. It accepts exactly the bytes Append produces:
// Marshal(Parse(b)) == b for every b Parse accepts. Errors wrap
// ErrMalformed (and ErrChecksum or ErrTooLong where that is the cause) and
// never quote fingerprints.
func Parse(b []byte) (Chunk, error) {
	var c Chunk
	if len(b) > MaxChunkLen {
		return c, fmt.Errorf("parse chunk of %d bytes: %w (%w)", len(b), ErrTooLong, ErrMalformed)
	}
	const head = len(magic) + 1 + 8 + 1
	if len(b) < head || string(b[:len(magic)]) != magic || b[len(magic)] != ' ' || b[head-1] != ' ' {
		return c, fmt.Errorf("parse chunk: no %s header: %w", magic, ErrMalformed)
	}
	var want [4]byte
	if !lowerHex(b[len(magic)+1 : head-1]) {
		return c, fmt.Errorf("parse chunk: checksum is not 8 lower-case hex digits: %w", ErrMalformed)
	}
	if _, err := hex.Decode(want[:], b[len(magic)+1:head-1]); err != nil {
		return c, fmt.Errorf("parse chunk: checksum: %w", ErrMalformed)
	}
	body := b[head:]
	got := crc32.Checksum(body, castagnoli)
	if got != uint32(want[0])<<24|uint32(want[1])<<16|uint32(want[2])<<8|uint32(want[3]) {
		return c, fmt.Errorf("parse chunk: %w (%w)", ErrChecksum, ErrMalformed)
	}
	fields := splitSpaces(body, 6)
	if len(fields) < 5 {
		return c, fmt.Errorf("parse chunk: %d header fields, want 5: %w", len(fields), ErrMalformed)
	}
	if len(fields[0]) != 1 {
		return c, fmt.Errorf("parse chunk: op field: %w", ErrMalformed)
	}
	c.Op = Op(fields[0][0])
	var err error
	if c.Base, err = parseNum(fields[1], 64); err != nil {
		return c, fmt.Errorf("parse chunk base: %w", err)
	}
	if c.Version, err = parseNum(fields[2], 64); err != nil {
		return c, fmt.Errorf("parse chunk version: %w", err)
	}
	seq, err := parseNum(fields[3], 32)
	if err != nil {
		return c, fmt.Errorf("parse chunk seq: %w", err)
	}
	total, err := parseNum(fields[4], 32)
	if err != nil {
		return c, fmt.Errorf("parse chunk total: %w", err)
	}
	c.Seq, c.Total = uint32(seq), uint32(total)
	if len(fields) == 6 {
		recs := fields[5]
		if len(recs) == 0 || len(recs)%FingerprintLen != 0 {
			return c, fmt.Errorf("parse chunk: %d record bytes is not a whole number of fingerprints: %w", len(recs), ErrMalformed)
		}
		c.Fingerprints = make([]string, 0, len(recs)/FingerprintLen)
		for i := 0; i < len(recs); i += FingerprintLen {
			c.Fingerprints = append(c.Fingerprints, string(recs[i:i+FingerprintLen]))
		}
	}
	if err := c.Validate(); err != nil {
		return Chunk{}, fmt.Errorf("parse chunk: %w", err)
	}
	return c, nil
}

// ParseFileAction decodes the DE 72 data record of a 1304 whose DE 24 is
// functionCode, and checks that the code matches the chunk's op.
func ParseFileAction(functionCode string, de72 []byte) (Chunk, error) {
	c, err := Parse(de72)
	if err != nil {
		return c, err
	}
	if c.Op.FunctionCode() != functionCode {
		return Chunk{}, fmt.Errorf("parse 1304 with function code %q for a %s chunk: %w (%w)", functionCode, c.Op, ErrFunctionCode, ErrMalformed)
	}
	return c, nil
}

// Split cuts one session into chunks whose wire form is at most maxLen
// bytes (MaxDE72 for ISO 8583, up to MaxChunkLen on a control stream).
// For a snapshot (op OpSnapshot, base 0) fps must be strictly ascending;
// for a delta, adds and deletes are given separately and the adds come
// first. A session always has at least one chunk, so an empty snapshot or
// delta still moves the version.
func Split(op Op, base, version uint64, fps []string, deletes []string, maxLen int) ([]Chunk, error) {
	const overhead = len(magic) + 1 + 8 + 1 + 2 + 3*21 + 11 // header with worst-case numbers
	per := (maxLen - overhead) / FingerprintLen
	if per < 1 || maxLen > MaxChunkLen {
		return nil, fmt.Errorf("split session into chunks of %d bytes: %w", maxLen, ErrTooLong)
	}
	var out []Chunk
	add := func(o Op, list []string) {
		for i := 0; i < len(list); i += per {
			out = append(out, Chunk{Op: o, Base: base, Version: version, Fingerprints: list[i:min(i+per, len(list))]})
		}
	}
	switch op {
	case OpSnapshot:
		if len(deletes) > 0 {
			return nil, fmt.Errorf("split snapshot with deletes: %w", ErrMalformed)
		}
		add(OpSnapshot, fps)
	case OpAdd, OpDelete:
		add(OpAdd, fps)
		add(OpDelete, deletes)
	default:
		return nil, fmt.Errorf("split session with op %q: %w", byte(op), ErrMalformed)
	}
	if len(out) == 0 {
		o := op
		if o == OpDelete {
			o = OpAdd
		}
		out = append(out, Chunk{Op: o, Base: base, Version: version})
	}
	for i := range out {
		out[i].Seq, out[i].Total = uint32(i+1), uint32(len(out))
		if err := out[i].Validate(); err != nil {
			return nil, fmt.Errorf("split session: chunk %d: %w", i+1, err)
		}
	}
	return out, nil
}

func validFingerprint(s string) bool {
	return len(s) == FingerprintLen && lowerHex([]byte(s))
}

func lowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// splitSpaces splits b at single spaces into at most n fields; an empty
// field (double space, leading or trailing space) is kept as empty so the
// number checks reject it.
func splitSpaces(b []byte, n int) [][]byte {
	var out [][]byte
	for len(out) < n-1 {
		i := indexByte(b, ' ')
		if i < 0 {
			break
		}
		out = append(out, b[:i])
		b = b[i+1:]
	}
	return append(out, b)
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// parseNum parses a canonical decimal number: digits only, no leading
// zero unless the number is 0.
func parseNum(b []byte, bits int) (uint64, error) {
	if len(b) == 0 || len(b) > 20 || (len(b) > 1 && b[0] == '0') {
		return 0, fmt.Errorf("not a canonical decimal number: %w", ErrMalformed)
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal number: %w", ErrMalformed)
		}
	}
	v, err := strconv.ParseUint(string(b), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("number out of range: %w", ErrMalformed)
	}
	return v, nil
}
