// Package dol parses EMV data object lists (DOLs: PDOL 9F38, CDOL1 8C,
// CDOL2 8D, DDOL 9F49, TDOL 97) and builds or splits the data they ask
// for (EMV 4.4 Book 3 section 5.4).
//
// A DOL is a concatenation of tag and length pairs, with BER tags and
// BER lengths in their shortest form, no values. The data built for it is
// the concatenation of the values, each fitted to its entry's length:
//
//   - a value of numeric format (n) is left-padded with 00 bytes or loses
//     its leftmost bytes;
//   - compressed numeric (cn) is right-padded with FF bytes or loses its
//     rightmost bytes;
//   - every other format, and tags missing from the dictionary, are
//     right-padded with 00 or lose their rightmost bytes;
//   - a tag with no value, and every constructed tag, is filled with 00
//     bytes.
//
// Functions are safe for concurrent use; a DOL is an immutable value once
// built.
package dol

import (
	"errors"
	"fmt"

	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

// Errors callers branch on.
var (
	// ErrMalformed means DOL bytes do not parse: a bad tag or length,
	// or an entry cut short.
	ErrMalformed = errors.New("dol: malformed data object list")
	// ErrDuplicateTag means a tag appears twice in one DOL.
	ErrDuplicateTag = errors.New("dol: duplicate tag")
	// ErrDataLength means data split by a DOL is not exactly as long as
	// the DOL asks for.
	ErrDataLength = errors.New("dol: data length does not match the list")
)

// Entry is one tag and the length of value the list asks for.
type Entry struct {
	Tag tlv.Tag
	Len int
}

// DOL is a parsed data object list.
type DOL []Entry

// Parse parses DOL bytes. An empty input is an empty DOL.
func Parse(b []byte) (DOL, error) {
	var d DOL
	for off := 0; off < len(b); {
		t, n, err := tlv.ReadTag(b[off:])
		if err != nil {
			return nil, fmt.Errorf("parse DOL entry at offset %d: %w: %w", off, ErrMalformed, err)
		}
		l, m, err := tlv.ReadLength(b[off+n:])
		if err != nil {
			return nil, fmt.Errorf("parse DOL entry %s at offset %d: %w: %w", t, off, ErrMalformed, err)
		}
		for _, e := range d {
			if e.Tag == t {
				return nil, fmt.Errorf("parse DOL entry %s at offset %d: %w", t, off, ErrDuplicateTag)
			}
		}
		d = append(d, Entry{Tag: t, Len: l})
		off += n + m
	}
	return d, nil
}

// Encode returns the DOL's bytes: each tag with its shortest BER length.
func (d DOL) Encode() []byte {
	var b []byte
	for _, e := range d {
		b = append(b, e.Tag.Bytes()...)
		b = tlv.AppendLength(b, e.Len)
	}
	return b
}

// DataLen returns the length of the data the DOL asks for.
func (d DOL) DataLen() int {
	n := 0
	for _, e := range d {
		n += e.Len
	}
	return n
}

// Values maps tags to the values a DOL's data is built from.
type Values map[tlv.Tag][]byte

// Build concatenates the values the DOL asks for, each fitted to its
// entry's length by the package's padding and truncation rules. Missing
// values and constructed tags give zeros. It never fails for a parsed
// DOL; the error reports entries with negative lengths in a DOL built by
// hand.
func (d DOL) Build(v Values) ([]byte, error) {
	out := make([]byte, 0, d.DataLen())
	for _, e := range d {
		if e.Len < 0 || e.Len > tlv.MaxLen {
			return nil, fmt.Errorf("build DOL data: entry %s of length %d: %w", e.Tag, e.Len, ErrMalformed)
		}
		out = append(out, Fit(e.Tag, v[e.Tag], e.Len)...)
	}
	return out, nil
}

// Fit returns value fitted to n bytes for tag by the package's padding
// and truncation rules; a constructed tag gives n zero bytes.
func Fit(tag tlv.Tag, value []byte, n int) []byte {
	out := make([]byte, n)
	if tag.Constructed() {
		return out
	}
	f := tags.Binary
	if i, ok := tags.Lookup(tag); ok {
		f = i.Format
	}
	switch f {
	case tags.Numeric:
		if len(value) >= n {
			copy(out, value[len(value)-n:])
		} else {
			copy(out[n-len(value):], value)
		}
	case tags.CompressedNumeric:
		c := copy(out, value)
		for i := c; i < n; i++ {
			out[i] = 0xFF
		}
	default:
		copy(out, value)
	}
	return out
}

// Split cuts data built for the DOL back into one primitive TLV per entry,
// in DOL order, each value exactly as long as its entry asks (padding is
// kept: the card cannot know what was padded). The values share data's
// memory.
func (d DOL) Split(data []byte) ([]tlv.TLV, error) {
	if len(data) != d.DataLen() {
		return nil, fmt.Errorf("split %d bytes by a DOL asking for %d: %w", len(data), d.DataLen(), ErrDataLength)
	}
	out := make([]tlv.TLV, 0, len(d))
	off := 0
	for _, e := range d {
		out = append(out, tlv.TLV{Tag: e.Tag, Value: data[off : off+e.Len : off+e.Len]})
		off += e.Len
	}
	return out, nil
}

// Lookup returns the value of tag in data built for the DOL.
func (d DOL) Lookup(data []byte, tag tlv.Tag) ([]byte, bool) {
	if len(data) != d.DataLen() {
		return nil, false
	}
	off := 0
	for _, e := range d {
		if e.Tag == tag {
			return data[off : off+e.Len], true
		}
		off += e.Len
	}
	return nil, false
}
