// Package sigcap is signature capture's wire formats: the stroke encoding
// of a signature (Signature, what a sign pad produces and the center
// archives) and the DE 72 record format of signature capture file
// actions: the ISO 8583:1993 1304 messages (DE 101 "SIGCAP") a gateway
// sends to carry a cardholder's signature to the center, one chunk per
// message (docs/signatures.md). Both ends use it: the gateway to split a
// signature into records, the center to parse them.
//
// A record is printable ASCII, fields separated by one space:
//
//	SIG1 <terminal> <stan> <local-time> <idempotency-key> <format> <offset> <total> <data>
//
// terminal is DE 41 of the sale (1..16 characters 0x21..0x7E), stan its DE
// 11 (6 digits), local-time its DE 12 (12 digits, YYMMDDhhmmss),
// idempotency-key its DE 123 (1..64 characters 0x21..0x7E), format the
// signature encoding (1: sign pad version 1), offset and total decimal
// without leading zeros (total 1..MaxTotal, offset < total), data the chunk
// in standard base64 with padding (1..ChunkBytes bytes, offset + length ≤
// total). The encoding is canonical: every valid record parses to one Chunk
// that marshals back to the same string.
package sigcap

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits and names.
const (
	// FileName is DE 101 of a signature file action.
	FileName = "SIGCAP"
	// Magic starts every record (format of the record, version 1).
	Magic = "SIG1"
	// ChunkBytes is the most signature bytes one record carries: 800
	// base64 characters, so that a record with the longest identifiers
	// stays under DE 72's 999.
	ChunkBytes = 600
	// MaxTotal is the largest signature, 64 KiB.
	MaxTotal = 64 << 10
	// FormatSignpadV1 is the sign pad's stroke encoding, version 1.
	FormatSignpadV1 = 1
)

// ErrRecord means a DE 72 string is not a valid signature record; the error
// says which rule broke, never the value.
var ErrRecord = errors.New("sigcap: malformed signature record")

// Chunk is one record: a piece of the signature of the sale named by
// terminal, STAN, local time and idempotency key. No card data.
type Chunk struct {
	TerminalID     string
	STAN           string
	LocalTime      string
	IdempotencyKey string
	Format         uint8
	Offset, Total  uint32
	Data           []byte
}

// Split cuts data into the chunks of one signature, each at most ChunkBytes,
// with meta's identifiers and format.
func Split(meta Chunk, data []byte) ([]Chunk, error) {
	if len(data) == 0 || len(data) > MaxTotal {
		return nil, fmt.Errorf("split signature of %d bytes: must be 1..%d: %w", len(data), MaxTotal, ErrRecord)
	}
	var out []Chunk
	for off := 0; off < len(data); off += ChunkBytes {
		c := meta
		c.Offset, c.Total = uint32(off), uint32(len(data))
		c.Data = data[off:min(off+ChunkBytes, len(data))]
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("split signature: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

func bad(field, rule string) error {
	return fmt.Errorf("%s: %s: %w", field, rule, ErrRecord)
}

func token(field, s string, maxLen int) error {
	if s == "" || len(s) > maxLen {
		return bad(field, fmt.Sprintf("must be 1..%d characters", maxLen))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7E {
			return bad(field, "must be printable ASCII without spaces")
		}
	}
	return nil
}

func digits(field, s string, n int) error {
	if len(s) != n {
		return bad(field, fmt.Sprintf("must be %d digits", n))
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return bad(field, fmt.Sprintf("must be %d digits", n))
		}
	}
	return nil
}

func (c *Chunk) validate() error {
	if err := errors.Join(token("terminal", c.TerminalID, 16), digits("stan", c.STAN, 6),
		digits("local time", c.LocalTime, 12), token("idempotency key", c.IdempotencyKey, 64)); err != nil {
		return err
	}
	switch {
	case c.Format != FormatSignpadV1:
		return bad("format", "must be 1")
	case c.Total == 0 || c.Total > MaxTotal:
		return bad("total", fmt.Sprintf("must be 1..%d", MaxTotal))
	case len(c.Data) == 0 || len(c.Data) > ChunkBytes:
		return bad("data", fmt.Sprintf("must be 1..%d bytes", ChunkBytes))
	case uint64(c.Offset)+uint64(len(c.Data)) > uint64(c.Total):
		return bad("offset", "chunk ends past total")
	}
	return nil
}

// Marshal returns the record of c (DE 72).
func (c Chunk) Marshal() (string, error) {
	if err := c.validate(); err != nil {
		return "", fmt.Errorf("marshal signature record: %w", err)
	}
	return strings.Join([]string{Magic, c.TerminalID, c.STAN, c.LocalTime, c.IdempotencyKey,
		strconv.Itoa(int(c.Format)), strconv.FormatUint(uint64(c.Offset), 10), strconv.FormatUint(uint64(c.Total), 10),
		base64.StdEncoding.EncodeToString(c.Data)}, " "), nil
}

// Parse reads a record (DE 72). It accepts exactly the strings Marshal
// makes.
func Parse(s string) (Chunk, error) {
	f := strings.Split(s, " ")
	if len(f) != 9 || f[0] != Magic {
		return Chunk{}, bad("record", "must be "+Magic+" and 8 fields separated by single spaces")
	}
	c := Chunk{TerminalID: f[1], STAN: f[2], LocalTime: f[3], IdempotencyKey: f[4]}
	format, err := number("format", f[5])
	if err != nil {
		return Chunk{}, err
	}
	off, err := number("offset", f[6])
	if err != nil {
		return Chunk{}, err
	}
	total, err := number("total", f[7])
	if err != nil {
		return Chunk{}, err
	}
	if format > 255 || total > MaxTotal {
		return Chunk{}, bad("format or total", "out of range")
	}
	c.Format, c.Offset, c.Total = uint8(format), uint32(off), uint32(total)
	if len(f[8]) > base64.StdEncoding.EncodedLen(ChunkBytes) {
		return Chunk{}, bad("data", fmt.Sprintf("must be 1..%d bytes", ChunkBytes))
	}
	if c.Data, err = base64.StdEncoding.Strict().DecodeString(f[8]); err != nil {
		return Chunk{}, bad("data", "must be standard base64 with padding")
	}
	if err := c.validate(); err != nil {
		return Chunk{}, err
	}
	return c, nil
}

// number reads a decimal without sign or leading zeros, at most 10 digits.
func number(field, s string) (uint64, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, bad(field, "must be a decimal without leading zeros")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad(field, "must be a decimal without leading zeros")
		}
	}
	v, _ := strconv.ParseUint(s, 10, 64)
	return v, nil
}
