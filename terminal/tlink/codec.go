package tlink

import "fmt"

// The payload codec is table-driven: every payload type lists its fields
// (fields), each a tag and a small value with one job: how its Go field is
// encoded, decoded, and when it is absent. marshalFields and
// unmarshalFields walk that one table, so encoder and decoder cannot drift
// apart, and every payload gets the same canonical rules (ascending tags,
// no empty values, zero integers omitted, unknown tags refused).

// field is one TLV field of a payload, bound to the Go field it fills.
type field struct {
	tag byte
	val value
	// always marks a field that is always on the wire, even when zero
	// (offsets, the KCV); decoding refuses a payload without it.
	always bool
}

// value encodes and decodes one Go field.
type value interface {
	// appendTLV appends the field's TLV to dst, or nothing when the value
	// is absent.
	appendTLV(dst []byte, tag byte) []byte
	// decode sets the value from one TLV value (at least one byte). It
	// checks the width, not the value rules: those are the payload's
	// validate, the same code the encoder runs.
	decode(tag byte, v []byte) error
}

// fielder is a payload type described by a field table.
type fielder interface {
	fields() []field
	validate() error
}

// marshalFields validates p and returns its canonical TLV encoding; what
// names the payload in errors.
func marshalFields(what string, p fielder) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return appendFields(make([]byte, 0, 64), p.fields()), nil
}

func appendFields(dst []byte, fs []field) []byte {
	for _, f := range fs {
		dst = f.val.appendTLV(dst, f.tag)
	}
	return dst
}

// unmarshalFields decodes a canonical TLV encoding into p (which the caller
// copies out only on success) and validates it; what names the payload in
// errors.
func unmarshalFields(what string, b []byte, p fielder) error {
	if err := decodeFields(b, p); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// decodeFields is unmarshalFields without the payload's name, for nested
// values.
func decodeFields(b []byte, p fielder) error {
	fs := p.fields()
	var seen uint64 // bit i: fs[i] was on the wire (tables have < 64 fields)
	it := tlvIter{b: b}
	for _, f := range fs {
		if _, ok := f.val.(repeated); ok {
			it.rep = f.tag
		}
	}
	for {
		tag, v, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		i := indexTag(fs, tag)
		if i < 0 {
			return unknownTag(tag)
		}
		if err := fs[i].val.decode(tag, v); err != nil {
			return err
		}
		seen |= 1 << i
	}
	for i, f := range fs {
		if f.always && seen&(1<<i) == 0 {
			return missing(f.tag)
		}
	}
	return p.validate()
}

func indexTag(fs []field, tag byte) int {
	for i, f := range fs {
		if f.tag == tag {
			return i
		}
	}
	return -1
}

// str is a string field, absent when empty.
type str struct{ p *string }

func (s str) appendTLV(dst []byte, tag byte) []byte { return putStr(dst, tag, *s.p) }
func (s str) decode(_ byte, v []byte) error         { *s.p = string(v); return nil }

// u8 is a one-byte integer field, absent when zero.
type u8[T ~uint8] struct{ p *T }

func (x u8[T]) appendTLV(dst []byte, tag byte) []byte { return putU8(dst, tag, uint8(*x.p)) }
func (x u8[T]) decode(tag byte, v []byte) error {
	n, err := getU8(tag, v)
	*x.p = T(n)
	return err
}

// u16 is a two-byte integer field, absent when zero.
type u16 struct{ p *uint16 }

func (x u16) appendTLV(dst []byte, tag byte) []byte { return putU16(dst, tag, *x.p) }
func (x u16) decode(tag byte, v []byte) (err error) {
	*x.p, err = getU16(tag, v)
	return err
}

// u32 is a four-byte integer field, always encoded (a zero offset is
// meaningful).
type u32 struct{ p *uint32 }

func (x u32) appendTLV(dst []byte, tag byte) []byte { return putU32(dst, tag, *x.p) }
func (x u32) decode(tag byte, v []byte) (err error) {
	*x.p, err = getU32(tag, v)
	return err
}

// u64 is an eight-byte integer field, absent when zero.
type u64 struct{ p *uint64 }

func (x u64) appendTLV(dst []byte, tag byte) []byte { return putU64(dst, tag, *x.p) }
func (x u64) decode(tag byte, v []byte) (err error) {
	*x.p, err = getU64(tag, v)
	return err
}

// octets is a byte-string field, absent when empty; decoding copies.
type octets struct{ p *[]byte }

func (x octets) appendTLV(dst []byte, tag byte) []byte {
	if len(*x.p) == 0 {
		return dst
	}
	return putBytes(dst, tag, *x.p)
}
func (x octets) decode(_ byte, v []byte) error { *x.p = append([]byte(nil), v...); return nil }

// kcv is a three-byte key check value.
type kcv struct{ p *[3]byte }

func (x kcv) appendTLV(dst []byte, tag byte) []byte { return putBytes(dst, tag, x.p[:]) }
func (x kcv) decode(tag byte, v []byte) error {
	if len(v) != 3 {
		return fieldError(tag, "must be 3 bytes")
	}
	copy(x.p[:], v)
	return nil
}

// nested is a payload carried as the value of one field, absent when nil.
type nested[T any, P interface {
	*T
	fielder
}] struct {
	p *P
	// decodeAs decodes the nested value (with its own error wording).
	decodeAs func(P, []byte) error
}

func (x nested[T, P]) appendTLV(dst []byte, tag byte) []byte {
	if *x.p == nil {
		return dst
	}
	return putBytes(dst, tag, appendFields(nil, (*x.p).fields()))
}
func (x nested[T, P]) decode(_ byte, v []byte) error {
	n := P(new(T))
	*x.p = n
	return x.decodeAs(n, v)
}

// repeated marks the one field of a payload whose tag may repeat.
type repeated interface{ repeats() }

// list is a repeated nested field: one TLV per element, in order.
type list[T any, P interface {
	*T
	fielder
}] struct{ p *[]T }

func (list[T, P]) repeats() {}

func (x list[T, P]) appendTLV(dst []byte, tag byte) []byte {
	for i := range *x.p {
		dst = putBytes(dst, tag, appendFields(nil, P(&(*x.p)[i]).fields()))
	}
	return dst
}
func (x list[T, P]) decode(_ byte, v []byte) error {
	var e T
	if err := decodeFields(v, P(&e)); err != nil {
		return err
	}
	*x.p = append(*x.p, e)
	return nil
}
