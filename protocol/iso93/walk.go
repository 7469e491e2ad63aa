package iso93

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// fieldRule is how the walker reads one data element. Rules are derived
// from Spec at init, so the walker (Peek, and the structural check in
// Unpack) and moov's codec cannot disagree on lengths or character sets:
// both call the same prefix.Prefixer and encoding.Encoder values.
type fieldRule struct {
	defined      bool
	pref         prefix.Prefixer
	prefixDigits int // bytes of length prefix; 0 for fixed fields
	max          int
	enc          encoding.Encoder // nil: binary, any byte allowed
}

var rules = buildRules()

func buildRules() [maxField + 1]fieldRule {
	var rs [maxField + 1]fieldRule
	for id, f := range Spec.Fields {
		if id < 0 || id > maxField {
			panic(fmt.Sprintf("iso93: Spec field %d out of range", id))
		}
		s := f.Spec()
		r := fieldRule{defined: true, pref: s.Pref, max: s.Length}
		switch s.Enc {
		case encoding.Binary:
		case digitsEncoding, textEncoding:
			r.enc = s.Enc
		default:
			panic(fmt.Sprintf("iso93: Spec field %d: encoder the walker does not know", id))
		}
		name := s.Pref.Inspect()
		switch {
		case strings.HasSuffix(name, ".Fixed"):
		case name == "ASCII."+strings.Repeat("L", len(name)-len("ASCII.")):
			r.prefixDigits = len(name) - len("ASCII.")
		default:
			panic(fmt.Sprintf("iso93: Spec field %d: prefixer %s the walker does not know", id, name))
		}
		if _, ok := f.(*field.Bitmap); ok && id != FieldBitmap {
			panic("iso93: bitmap outside field 1")
		}
		rs[id] = r
	}
	if !rs[FieldMTI].defined || !rs[FieldBitmap].defined {
		panic("iso93: Spec lacks MTI or bitmap")
	}
	return rs
}

// span is the position of a field value (length prefix excluded) in a raw
// message.
type span struct{ off, end int32 }

// layout is where each field of a raw message lies. present[i] and
// fields[i] are valid for i in 2..maxField after a successful walk.
type layout struct {
	mti     span
	bitmap  []byte // aliases raw
	fields  [maxField + 1]span
	present [maxField + 1]bool
}

func (l *layout) value(raw []byte, id int) []byte {
	if !l.present[id] {
		return nil
	}
	s := l.fields[id]
	return raw[s.off:s.end:s.end]
}

// walk checks raw against Spec without building fields and records where
// each field lies. It accepts exactly the messages moov's Unpack accepts
// with Spec, minus two cases moov tolerates and posgate does not: a
// tertiary bitmap (bit 65 set) and bytes after the last field.
func walk(raw []byte, l *layout) error {
	if len(raw) > 1<<30 {
		return malformed(FieldMTI, "message of %d bytes is too long", len(raw))
	}
	off, err := readField(raw, 0, FieldMTI, &l.mti)
	if err != nil {
		return err
	}
	bmLen := rules[FieldBitmap].max
	if len(raw)-off < bmLen {
		return malformed(FieldBitmap, "truncated: need %d bytes, %d left", bmLen, len(raw)-off)
	}
	if raw[off]&0x80 != 0 {
		bmLen *= 2
		if len(raw)-off < bmLen {
			return malformed(FieldBitmap, "truncated secondary bitmap: need %d bytes, %d left", bmLen, len(raw)-off)
		}
		if raw[off+8]&0x80 != 0 {
			return malformed(FieldBitmap, "tertiary bitmap (bit %d) not supported", secondaryBitmapPresenceBit)
		}
	}
	l.bitmap = raw[off : off+bmLen : off+bmLen]
	off += bmLen
	last := FieldBitmap
	var words [2]uint64
	words[0] = binary.BigEndian.Uint64(l.bitmap)
	if bmLen > 8 {
		words[1] = binary.BigEndian.Uint64(l.bitmap[8:])
	}
	for id := 2; id <= bmLen*8; id++ {
		if id == secondaryBitmapPresenceBit {
			continue
		}
		if words[(id-1)/64]&(1<<(63-uint((id-1)%64))) == 0 {
			continue
		}
		if !rules[id].defined {
			return malformed(id, "not defined in the spec")
		}
		if off, err = readField(raw, off, id, &l.fields[id]); err != nil {
			return err
		}
		l.present[id] = true
		last = id
	}
	if off != len(raw) {
		return malformed(last, "%d bytes after the last field", len(raw)-off)
	}
	return nil
}

// readField reads field id at raw[off:] and returns the offset after it.
func readField(raw []byte, off, id int, sp *span) (int, error) {
	r := &rules[id]
	rest := raw[off:]
	if len(rest) < r.prefixDigits {
		return 0, malformed(id, "truncated length prefix: need %d bytes, %d left", r.prefixDigits, len(rest))
	}
	n, pl, err := r.pref.DecodeLength(r.max, rest)
	if err != nil {
		if _, ok := errors.AsType[*strconv.NumError](err); ok {
			return 0, malformed(id, "length prefix is not decimal")
		}
		return 0, malformed(id, "length out of range 0..%d", r.max)
	}
	if len(rest)-pl < n {
		return 0, malformed(id, "truncated: need %d bytes, %d left", n, len(rest)-pl)
	}
	if r.enc != nil {
		if _, _, err := r.enc.Decode(rest[pl:], n); err != nil {
			return 0, malformed(id, "%v", err)
		}
	}
	sp.off, sp.end = int32(off+pl), int32(off+pl+n)
	return off + pl + n, nil
}
