package negfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// inquiryTag opens the DE 72 of a gateway's 1304 inquiry.
const inquiryTag = "NF1?"

// ErrBadInquiry reports a 1304 negative-file inquiry whose DE 72 is not
// "NF1? <have>[ <S|D> <base> <version> <total> <next>]".
var ErrBadInquiry = errors.New("negfile: malformed negative-file inquiry")

// Inquiry is a gateway's negative-file state as its 1304 reports it in
// DE 72:
//
//	NF1? <have>[ <S|D> <base> <version> <total> <next>]
//
// <have> is the version in force or "-" when no file is loaded; the session
// part names a staged sync session so the center can resume it. Numbers are
// canonical decimal (no leading zeros), fields separated by one space.
type Inquiry struct {
	// Loaded is false when the gateway has no negative file yet.
	Loaded bool
	// Have is the version in force at the gateway (when Loaded).
	Have uint64
	// Session is the staged sync session, if any.
	Session *Session
}

// Session is a gateway's partly received sync session: the session's kind
// and versions, its number of chunks and the next chunk it needs.
type Session struct {
	Snapshot      bool
	Base, Version uint64
	Total, Next   uint32
}

// Encode returns the wire form of q (the DE 72 of the 1304).
func (q Inquiry) Encode() string {
	b := append(make([]byte, 0, 64), inquiryTag+" "...)
	if q.Loaded {
		b = strconv.AppendUint(b, q.Have, 10)
	} else {
		b = append(b, '-')
	}
	if s := q.Session; s != nil {
		kind := byte('D')
		if s.Snapshot {
			kind = 'S'
		}
		b = append(b, ' ', kind, ' ')
		b = strconv.AppendUint(b, s.Base, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, s.Version, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(s.Total), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(s.Next), 10)
	}
	return string(b)
}

// ParseInquiry reads the DE 72 of a 1304 inquiry. It accepts exactly what
// Encode produces: ParseInquiry(s).Encode() == s for every s it accepts.
// Errors wrap ErrBadInquiry.
func ParseInquiry(s string) (Inquiry, error) {
	f := strings.Split(s, " ")
	if (len(f) != 2 && len(f) != 7) || f[0] != inquiryTag {
		return Inquiry{}, fmt.Errorf("%w: want %s and 1 or 6 fields", ErrBadInquiry, inquiryTag)
	}
	num := func(s string, bits int) (uint64, error) {
		if s == "" || (len(s) > 1 && s[0] == '0') {
			return 0, fmt.Errorf("%w: number not in canonical decimal", ErrBadInquiry)
		}
		v, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("%w: number out of range", ErrBadInquiry)
		}
		return v, nil
	}
	var q Inquiry
	if f[1] != "-" {
		v, err := num(f[1], 64)
		if err != nil {
			return Inquiry{}, err
		}
		q.Loaded, q.Have = true, v
	}
	if len(f) == 7 {
		s := &Session{}
		switch f[2] {
		case "S":
			s.Snapshot = true
		case "D":
		default:
			return Inquiry{}, fmt.Errorf("%w: session kind must be S or D", ErrBadInquiry)
		}
		var vals [4]uint64
		for i, bits := range []int{64, 64, 32, 32} {
			v, err := num(f[3+i], bits)
			if err != nil {
				return Inquiry{}, err
			}
			vals[i] = v
		}
		s.Base, s.Version, s.Total, s.Next = vals[0], vals[1], uint32(vals[2]), uint32(vals[3])
		q.Session = s
	}
	return q, nil
}
