// Package tlv encodes and decodes EMV BER-TLV data objects (EMV 4.4 Book 3
// Annex B, ISO/IEC 8825-1 restricted as EMV restricts it).
//
// Decoding is strict: a tag must be well formed (at most 4 bytes, no
// leading 0x80 subsequent byte), a length must be in its shortest form
// (short form below 128, then 81, 82 or 83 followed by exactly as many
// bytes as needed), a value must not run past the end of its template,
// and a tag may occur at most once in one template (ErrDuplicateTag).
// Constructed objects (bit 6 of the first tag byte) are decoded
// recursively into Children, up to MaxDepth levels.
//
// Padding: Decode accepts no padding at all, which is what ISO 8583 DE 55
// and other network data carry. DecodeCard additionally skips '00' bytes
// before, between and after data objects at every level, which EMV Book 3
// Annex B1 allows in data read from a card (erased or modified objects).
// 'FF' padding, which ISO/IEC 7816-4 allows but EMV does not, is rejected
// by both as an invalid tag.
//
// Every accepted input is canonical apart from that padding: Encode of what
// Decode returns gives back the input bytes exactly.
//
// Values are card data (a PAN in 5A, track data in 57): String, Format
// and LogValue of a TLV show its tag and length, never its value, and no
// error of this package carries value bytes. The functions are safe for
// concurrent use; a TLV shares its Value with the decoded input.
package tlv

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// MaxDepth is the deepest nesting of constructed objects Decode accepts.
const MaxDepth = 8

// MaxLen is the largest value length this package encodes or decodes
// (the 83 form's limit, far above anything EMV uses).
const MaxLen = 1<<24 - 1

// Errors callers branch on. Decode errors wrap one of them in a *Error
// that carries the offset.
var (
	// ErrTruncated means a tag, length or value runs past the end of the
	// data or of its enclosing template.
	ErrTruncated = errors.New("tlv: truncated")
	// ErrBadTag means a tag is malformed: first byte 00 or FF, a
	// subsequent byte 80 right after the first, or more than 4 bytes.
	ErrBadTag = errors.New("tlv: malformed tag")
	// ErrBadLength means a length is not in its shortest form, uses a
	// form other than short, 81, 82 or 83, or exceeds MaxLen.
	ErrBadLength = errors.New("tlv: malformed length")
	// ErrDuplicateTag means a tag occurs twice in one template.
	ErrDuplicateTag = errors.New("tlv: duplicate tag")
	// ErrTooDeep means constructed objects nest deeper than MaxDepth.
	ErrTooDeep = errors.New("tlv: nesting too deep")
	// ErrShape means a TLV given to Encode is inconsistent: a primitive
	// tag with Children, or a constructed tag with a Value.
	ErrShape = errors.New("tlv: primitive/constructed mismatch")
)

// Error locates a decoding error. It carries no value bytes.
type Error struct {
	Offset int   // byte offset in the outermost input
	Tag    Tag   // the tag being read, 0 if not yet known
	Err    error // one of the package's sentinel errors
}

// Error describes the problem with its offset and tag.
func (e *Error) Error() string {
	if e.Tag != 0 {
		return fmt.Sprintf("tlv: at offset %d, tag %s: %v", e.Offset, e.Tag, e.Err)
	}
	return fmt.Sprintf("tlv: at offset %d: %v", e.Offset, e.Err)
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// Tag is a BER tag: its bytes read as a big-endian number (9F26 is
// 0x9F26). The zero Tag is invalid.
type Tag uint32

// Len returns the number of bytes of the tag's encoding.
func (t Tag) Len() int {
	switch {
	case t > 0xFFFFFF:
		return 4
	case t > 0xFFFF:
		return 3
	case t > 0xFF:
		return 2
	}
	return 1
}

// first returns the tag's first byte.
func (t Tag) first() byte { return byte(t >> (8 * (t.Len() - 1))) }

// Constructed reports whether the tag denotes a constructed object (bit 6
// of its first byte).
func (t Tag) Constructed() bool { return t.first()&0x20 != 0 }

// Bytes returns the tag's encoding.
func (t Tag) Bytes() []byte { return t.appendTo(nil) }

func (t Tag) appendTo(b []byte) []byte {
	for i := t.Len() - 1; i >= 0; i-- {
		b = append(b, byte(t>>(8*i)))
	}
	return b
}

// Valid reports whether the tag is a well-formed BER tag that Decode
// accepts.
func (t Tag) Valid() bool {
	b := t.Bytes()
	n, err := readTag(b)
	return err == nil && n == len(b)
}

// String returns the tag in upper-case hex, e.g. "9F26".
func (t Tag) String() string {
	return strings.ToUpper(fmt.Sprintf("%0*X", 2*t.Len(), uint32(t)))
}

// ParseTag parses a tag written in hex ("9F26") and checks that it is
// well formed.
func ParseTag(s string) (Tag, error) {
	if len(s) == 0 || len(s)%2 != 0 || len(s) > 8 {
		return 0, fmt.Errorf("parse tag %q: %w", s, ErrBadTag)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse tag %q: %w", s, ErrBadTag)
	}
	t := Tag(v)
	if t.Len() != len(s)/2 || !t.Valid() {
		return 0, fmt.Errorf("parse tag %q: %w", s, ErrBadTag)
	}
	return t, nil
}

// TLV is one data object. A primitive object has a Value (possibly
// empty); a constructed one has Children and a nil Value.
type TLV struct {
	Tag      Tag
	Value    []byte
	Children []TLV
}

// String shows the tag and the value's length, never the value.
func (t TLV) String() string {
	if t.Tag.Constructed() {
		return fmt.Sprintf("%s{%d objects}", t.Tag, len(t.Children))
	}
	return fmt.Sprintf("%s[%d]", t.Tag, len(t.Value))
}

// Format prints String for every verb, so no fmt verb can show the value.
func (t TLV) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

// LogValue returns String.
func (t TLV) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Find returns the first object with tag among t's children, searching
// depth first.
func (t TLV) Find(tag Tag) (TLV, bool) { return Find(t.Children, tag) }

// Find returns the first object with tag in list, searching depth first
// through constructed objects.
func Find(list []TLV, tag Tag) (TLV, bool) {
	for _, x := range list {
		if x.Tag == tag {
			return x, true
		}
		if x.Tag.Constructed() {
			if y, ok := Find(x.Children, tag); ok {
				return y, true
			}
		}
	}
	return TLV{}, false
}

// Decode parses data as a sequence of BER-TLV objects with no padding
// (ISO 8583 DE 55, issuer data). An empty input gives an empty list.
func Decode(data []byte) ([]TLV, error) {
	d := decoder{data: data}
	return d.list(0, len(data), 0)
}

// DecodeCard parses data read from a card: like Decode, but '00' bytes
// before, between and after objects are skipped at every level.
func DecodeCard(data []byte) ([]TLV, error) {
	d := decoder{data: data, padding: true}
	return d.list(0, len(data), 0)
}

type decoder struct {
	data    []byte
	padding bool
}

func (d *decoder) list(off, end, depth int) ([]TLV, error) {
	if depth > MaxDepth {
		return nil, &Error{Offset: off, Err: ErrTooDeep}
	}
	// An object takes at least 2 bytes and EMV values average a few more:
	// one allocation for a typical DE 55 instead of a doubling series.
	var out []TLV
	if n := (end - off) / 6; n > 0 {
		out = make([]TLV, 0, min(n+1, 64))
	}
	for off < end {
		if d.padding && d.data[off] == 0x00 {
			off++
			continue
		}
		n, err := readTag(d.data[off:end])
		if err != nil {
			return nil, &Error{Offset: off, Err: err}
		}
		var tag Tag
		for _, b := range d.data[off : off+n] {
			tag = tag<<8 | Tag(b)
		}
		tagOff := off
		off += n
		l, m, err := readLen(d.data[off:end])
		if err != nil {
			return nil, &Error{Offset: off, Tag: tag, Err: err}
		}
		off += m
		if l > end-off {
			return nil, &Error{Offset: off, Tag: tag, Err: ErrTruncated}
		}
		for _, x := range out {
			if x.Tag == tag {
				return nil, &Error{Offset: tagOff, Tag: tag, Err: ErrDuplicateTag}
			}
		}
		x := TLV{Tag: tag}
		if tag.Constructed() {
			x.Children, err = d.list(off, off+l, depth+1)
			if err != nil {
				return nil, err
			}
			if x.Children == nil {
				x.Children = []TLV{}
			}
		} else {
			x.Value = d.data[off : off+l : off+l]
		}
		off += l
		out = append(out, x)
	}
	return out, nil
}

// readTag returns the length of the tag at the start of b.
func readTag(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, ErrTruncated
	}
	if b[0] == 0x00 || b[0] == 0xFF {
		return 0, ErrBadTag
	}
	if b[0]&0x1F != 0x1F {
		return 1, nil
	}
	for i := 1; ; i++ {
		if i >= 4 {
			return 0, ErrBadTag
		}
		if i >= len(b) {
			return 0, ErrTruncated
		}
		if i == 1 && b[1] == 0x80 {
			return 0, ErrBadTag
		}
		if b[i]&0x80 == 0 {
			return i + 1, nil
		}
	}
}

// readLen returns the value length and the length field's size.
func readLen(b []byte) (l, n int, err error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	if b[0] < 0x80 {
		return int(b[0]), 1, nil
	}
	k := int(b[0] & 0x7F)
	if k == 0 || k > 3 {
		return 0, 0, ErrBadLength
	}
	if len(b) < 1+k {
		return 0, 0, ErrTruncated
	}
	for _, x := range b[1 : 1+k] {
		l = l<<8 | int(x)
	}
	if lenSize(l) != 1+k {
		return 0, 0, ErrBadLength
	}
	return l, 1 + k, nil
}

func lenSize(l int) int {
	switch {
	case l < 0x80:
		return 1
	case l <= 0xFF:
		return 2
	case l <= 0xFFFF:
		return 3
	}
	return 4
}

func appendLen(b []byte, l int) []byte {
	switch lenSize(l) {
	case 1:
		return append(b, byte(l))
	case 2:
		return append(b, 0x81, byte(l))
	case 3:
		return append(b, 0x82, byte(l>>8), byte(l))
	}
	return append(b, 0x83, byte(l>>16), byte(l>>8), byte(l))
}

// Encode returns the canonical encoding of list: shortest lengths, no
// padding. It refuses malformed tags, a tag twice in one template,
// values longer than MaxLen, and objects whose Value/Children do not match
// their tag's primitive/constructed bit.
func Encode(list []TLV) ([]byte, error) {
	return appendList(nil, list, 0)
}

// Append appends the encoding of list to b, as Encode does.
func Append(b []byte, list []TLV) ([]byte, error) { return appendList(b, list, 0) }

func appendList(b []byte, list []TLV, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("encode: %w", ErrTooDeep)
	}
	for i, x := range list {
		if !x.Tag.Valid() {
			return nil, fmt.Errorf("encode tag %s: %w", x.Tag, ErrBadTag)
		}
		for _, y := range list[:i] {
			if y.Tag == x.Tag {
				return nil, fmt.Errorf("encode tag %s: %w", x.Tag, ErrDuplicateTag)
			}
		}
		b = x.Tag.appendTo(b)
		if !x.Tag.Constructed() {
			if x.Children != nil {
				return nil, fmt.Errorf("encode primitive tag %s with children: %w", x.Tag, ErrShape)
			}
			if len(x.Value) > MaxLen {
				return nil, fmt.Errorf("encode tag %s: value of %d bytes: %w", x.Tag, len(x.Value), ErrBadLength)
			}
			b = appendLen(b, len(x.Value))
			b = append(b, x.Value...)
			continue
		}
		if x.Value != nil {
			return nil, fmt.Errorf("encode constructed tag %s with a value: %w", x.Tag, ErrShape)
		}
		inner, err := appendList(nil, x.Children, depth+1)
		if err != nil {
			return nil, fmt.Errorf("encode template %s: %w", x.Tag, err)
		}
		if len(inner) > MaxLen {
			return nil, fmt.Errorf("encode template %s of %d bytes: %w", x.Tag, len(inner), ErrBadLength)
		}
		b = appendLen(b, len(inner))
		b = append(b, inner...)
	}
	return b, nil
}

// New returns a primitive TLV; a shorthand for TLV{Tag: tag, Value: v}.
func New(tag Tag, v []byte) TLV { return TLV{Tag: tag, Value: v} }

// Template returns a constructed TLV with children.
func Template(tag Tag, children ...TLV) TLV {
	if children == nil {
		children = []TLV{}
	}
	return TLV{Tag: tag, Children: children}
}

// ReadTag reads the tag at the start of b and returns it with its encoded
// length, under Decode's rules. It is for formats that reuse BER tags
// without values, such as data object lists.
func ReadTag(b []byte) (Tag, int, error) {
	n, err := readTag(b)
	if err != nil {
		return 0, 0, err
	}
	var t Tag
	for _, x := range b[:n] {
		t = t<<8 | Tag(x)
	}
	return t, n, nil
}

// ReadLength reads a BER length at the start of b under Decode's rules
// (shortest form, at most 83 xx xx xx) and returns it with the number of
// bytes it took.
func ReadLength(b []byte) (l, n int, err error) { return readLen(b) }

// AppendLength appends the shortest BER encoding of l (0..MaxLen) to b.
func AppendLength(b []byte, l int) []byte { return appendLen(b, l) }
