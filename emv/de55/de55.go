// Package de55 builds and reads ISO 8583:1993 data element 55, "ICC system
// related data" (b..255, LLLVAR; docs/message-spec.md): BER-TLV chip data
// in an authorisation or financial request (the ARQC and the data it
// covers) and in the response (issuer authentication data with the ARPC,
// and issuer scripts).
//
// A request's DE 55 never carries card data: the PAN, track data,
// cardholder name and discretionary data (every tag tags.IsSensitive
// reports, and every tag missing from the dictionary) are refused, because
// they travel only inside the DUKPT-encrypted card-data block. The PAN
// sequence number (5F34) is not card data and is allowed.
//
// Functions are safe for concurrent use; a parsed Request or Response
// shares memory with the bytes it was parsed from.
package de55

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

// MaxLen is the largest DE 55 (b..255).
const MaxLen = 255

// Errors callers branch on.
var (
	// ErrTooLong means the encoded data exceeds MaxLen.
	ErrTooLong = errors.New("de55: longer than 255 bytes")
	// ErrMissing means a required tag is absent.
	ErrMissing = errors.New("de55: required tag missing")
	// ErrForbidden means a request carries a tag it must not: card data
	// or a tag outside the dictionary.
	ErrForbidden = errors.New("de55: tag not allowed in this message")
)

// requestTags are the tags Build writes, in this order, when present;
// the first 12 are required.
var requestTags = []tlv.Tag{
	tags.ApplicationCryptogram, tags.CID, tags.IssuerApplicationData, tags.UnpredictableNumber,
	tags.ATC, tags.TVR, tags.TransactionDate, tags.TransactionType, tags.AmountAuthorised,
	tags.TransactionCurrencyCode, tags.AIP, tags.TerminalCountryCode,
	// optional
	tags.AmountOther, tags.TerminalCapabilities, tags.CVMResults, tags.TerminalType,
	tags.IFDSerialNumber, tags.DFName, tags.TerminalAppVersion, tags.TransactionSequenceCounter,
	tags.PANSequenceNumber, tags.TTQ, tags.CTQ, tags.FormFactorIndicator, tags.TransactionCategoryCode,
}

const nRequired = 12

// RequestTags returns the tags Build writes, in the order it writes them
// when present. The first len(RequiredRequestTags()) are required. The
// slice is a copy.
func RequestTags() []tlv.Tag { return append([]tlv.Tag(nil), requestTags...) }

// RequiredRequestTags returns the tags every ARQC request must carry. The
// slice is a copy.
func RequiredRequestTags() []tlv.Tag { return append([]tlv.Tag(nil), requestTags[:nRequired]...) }

// ACDataTags returns the data elements, in order, whose concatenated
// values the application cryptogram covers in posgate's card profile: the
// data EMV Book 2 section 8.1.1 recommends as the minimum (the common
// CDOL1 of 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37, then AIP and ATC). The
// slice is a copy.
func ACDataTags() []tlv.Tag { return append([]tlv.Tag(nil), acDataTags...) }

var acDataTags = []tlv.Tag{
	tags.AmountAuthorised, tags.AmountOther, tags.TerminalCountryCode, tags.TVR,
	tags.TransactionCurrencyCode, tags.TransactionDate, tags.TransactionType, tags.UnpredictableNumber,
	tags.AIP, tags.ATC,
}

// Build encodes the request DE 55 from values: the RequestTags present in
// values, in RequestTags order. It refuses a missing required tag
// (ErrMissing), any tag of values not in RequestTags (ErrForbidden; card
// data among them), a value that fails tags.Check, and a result longer
// than MaxLen (ErrTooLong). Errors name tags, never values.
func Build(values dol.Values) ([]byte, error) {
	allowed := make(map[tlv.Tag]bool, len(requestTags))
	for _, t := range requestTags {
		allowed[t] = true
	}
	for t := range values {
		if !allowed[t] {
			return nil, fmt.Errorf("build DE 55: tag %s: %w", t, ErrForbidden)
		}
	}
	list := make([]tlv.TLV, 0, len(values))
	for i, t := range requestTags {
		v, ok := values[t]
		if !ok {
			if i < nRequired {
				return nil, fmt.Errorf("build DE 55: tag %s: %w", t, ErrMissing)
			}
			continue
		}
		x := tlv.New(t, v)
		if err := tags.Check(x); err != nil {
			return nil, fmt.Errorf("build DE 55: %w", err)
		}
		list = append(list, x)
	}
	b, err := tlv.Encode(list)
	if err != nil {
		return nil, fmt.Errorf("build DE 55: %w", err)
	}
	if len(b) > MaxLen {
		return nil, fmt.Errorf("build DE 55 of %d bytes: %w", len(b), ErrTooLong)
	}
	return b, nil
}

// Request is a parsed request DE 55.
type Request struct {
	list []tlv.TLV
}

// ParseRequest decodes a request DE 55 strictly (tlv.Decode: no padding,
// no duplicates, canonical lengths), then checks: at most MaxLen bytes,
// only primitive tags from the dictionary that are not card data, every
// value valid for its tag (tags.Check), every required tag present. The
// order of tags is free.
func ParseRequest(b []byte) (Request, error) {
	if len(b) > MaxLen {
		return Request{}, fmt.Errorf("parse DE 55 of %d bytes: %w", len(b), ErrTooLong)
	}
	list, err := tlv.Decode(b)
	if err != nil {
		return Request{}, fmt.Errorf("parse DE 55: %w", err)
	}
	for _, x := range list {
		if tags.IsSensitive(x.Tag) || x.Tag.Constructed() {
			return Request{}, fmt.Errorf("parse DE 55: tag %s: %w", x.Tag, ErrForbidden)
		}
		if err := tags.Check(x); err != nil {
			return Request{}, fmt.Errorf("parse DE 55: %w", err)
		}
	}
	for _, t := range requestTags[:nRequired] {
		if _, ok := tlv.Find(list, t); !ok {
			return Request{}, fmt.Errorf("parse DE 55: tag %s: %w", t, ErrMissing)
		}
	}
	return Request{list: list}, nil
}

// TLVs returns the request's data objects in message order. The slice is
// a copy; the values share memory with the parsed bytes.
func (r Request) TLVs() []tlv.TLV { return append([]tlv.TLV(nil), r.list...) }

// Value returns the value of tag.
func (r Request) Value(tag tlv.Tag) ([]byte, bool) {
	x, ok := tlv.Find(r.list, tag)
	return x.Value, ok
}

// Values returns the request's values by tag, fit for Build.
func (r Request) Values() dol.Values {
	v := make(dol.Values, len(r.list))
	for _, x := range r.list {
		v[x.Tag] = x.Value
	}
	return v
}

func (r Request) fixed(tag tlv.Tag) []byte {
	v, _ := r.Value(tag) // required tags are present with checked lengths
	return v
}

// Cryptogram returns the application cryptogram (9F26).
func (r Request) Cryptogram() [8]byte { return [8]byte(r.fixed(tags.ApplicationCryptogram)) }

// CID returns the Cryptogram Information Data (9F27).
func (r Request) CID() emv.CID { return emv.CID(r.fixed(tags.CID)[0]) }

// ATC returns the application transaction counter (9F36).
func (r Request) ATC() uint16 { return binary.BigEndian.Uint16(r.fixed(tags.ATC)) }

// TVR returns the Terminal Verification Results (95).
func (r Request) TVR() emv.TVR { return emv.TVR(r.fixed(tags.TVR)) }

// AIP returns the Application Interchange Profile (82).
func (r Request) AIP() emv.AIP { return emv.AIP(r.fixed(tags.AIP)) }

// PSN returns the PAN sequence number (5F34), 00 when absent.
func (r Request) PSN() byte {
	if v, ok := r.Value(tags.PANSequenceNumber); ok {
		return v[0]
	}
	return 0
}

// ACData returns the data the cryptogram covers: the concatenated values
// of ACDataTags. A missing optional tag among them (9F03) counts as its
// DOL zero fill.
func (r Request) ACData() []byte {
	d := make(dol.DOL, 0, len(acDataTags))
	for _, t := range acDataTags {
		i, _ := tags.Lookup(t)
		d = append(d, dol.Entry{Tag: t, Len: i.Max})
	}
	b, _ := d.Build(r.Values()) // entries built from the dictionary are valid
	return b
}

// Response is the chip data of an authorisation response.
type Response struct {
	// IssuerAuthData is tag 91: ARPC || ARC (method 1) or ARPC || CSU ||
	// proprietary data (method 2). Nil to leave it out.
	IssuerAuthData []byte
	// ARC is tag 8A, the authorisation response code the ARPC covers; nil
	// to leave it out (it is usually in DE 39).
	ARC []byte
	// Scripts are issuer script templates, tags 71 (before the second
	// GENERATE AC) and 72 (after), in order. Each is constructed with
	// optional 9F18 script identifier and 86 commands.
	Scripts []tlv.TLV
}

// IssuerAuthDataMethod1 returns tag 91's value for ARPC method 1.
func IssuerAuthDataMethod1(arpc [8]byte, arc [2]byte) []byte {
	return append(append(make([]byte, 0, 10), arpc[:]...), arc[:]...)
}

// IssuerAuthDataMethod2 returns tag 91's value for ARPC method 2.
func IssuerAuthDataMethod2(arpc [4]byte, csu [4]byte, prop []byte) []byte {
	b := append(append(make([]byte, 0, 16), arpc[:]...), csu[:]...)
	return append(b, prop...)
}

// BuildResponse encodes a response DE 55: 91, 8A, then the scripts. It
// refuses a script that is not a 71 or 72 template, values that fail
// tags.Check and a result longer than MaxLen.
func BuildResponse(r Response) ([]byte, error) {
	var list []tlv.TLV
	if r.IssuerAuthData != nil {
		list = append(list, tlv.New(tags.IssuerAuthenticationData, r.IssuerAuthData))
	}
	if r.ARC != nil {
		list = append(list, tlv.New(tags.AuthorisationResponseCode, r.ARC))
	}
	for _, x := range list {
		if err := tags.Check(x); err != nil {
			return nil, fmt.Errorf("build response DE 55: %w", err)
		}
	}
	var b []byte
	var err error
	if b, err = tlv.Encode(list); err != nil {
		return nil, fmt.Errorf("build response DE 55: %w", err)
	}
	// Scripts may repeat a tag (two 71 templates), which one tlv.Encode
	// call refuses as a duplicate: encode each on its own.
	for i, s := range r.Scripts {
		if s.Tag != tags.IssuerScript1 && s.Tag != tags.IssuerScript2 {
			return nil, fmt.Errorf("build response DE 55: script %d has tag %s: %w", i+1, s.Tag, ErrForbidden)
		}
		if b, err = tlv.Append(b, []tlv.TLV{s}); err != nil {
			return nil, fmt.Errorf("build response DE 55: script %d: %w", i+1, err)
		}
	}
	if len(b) > MaxLen {
		return nil, fmt.Errorf("build response DE 55 of %d bytes: %w", len(b), ErrTooLong)
	}
	return b, nil
}

// ParseResponse decodes a response DE 55. It accepts 91, 8A and any
// number of 71/72 script templates, each at most once except the scripts;
// any other tag is ErrForbidden.
func ParseResponse(b []byte) (Response, error) {
	if len(b) > MaxLen {
		return Response{}, fmt.Errorf("parse response DE 55 of %d bytes: %w", len(b), ErrTooLong)
	}
	var r Response
	seen := map[tlv.Tag]bool{}
	for off := 0; off < len(b); {
		// Decode one object at a time: scripts may repeat a tag.
		_, n, err := tlv.ReadTag(b[off:])
		if err != nil {
			return Response{}, fmt.Errorf("parse response DE 55 at offset %d: %w", off, err)
		}
		l, m, err := tlv.ReadLength(b[off+n:])
		if err != nil {
			return Response{}, fmt.Errorf("parse response DE 55 at offset %d: %w", off, err)
		}
		end := off + n + m + l
		if end > len(b) {
			return Response{}, fmt.Errorf("parse response DE 55 at offset %d: %w", off, tlv.ErrTruncated)
		}
		one, err := tlv.Decode(b[off:end])
		if err != nil {
			return Response{}, fmt.Errorf("parse response DE 55 at offset %d: %w", off, err)
		}
		x := one[0]
		switch x.Tag {
		case tags.IssuerAuthenticationData, tags.AuthorisationResponseCode:
			if seen[x.Tag] {
				return Response{}, fmt.Errorf("parse response DE 55: tag %s: %w", x.Tag, tlv.ErrDuplicateTag)
			}
			seen[x.Tag] = true
			if err := tags.Check(x); err != nil {
				return Response{}, fmt.Errorf("parse response DE 55: %w", err)
			}
			if x.Tag == tags.IssuerAuthenticationData {
				r.IssuerAuthData = x.Value
			} else {
				r.ARC = x.Value
			}
		case tags.IssuerScript1, tags.IssuerScript2:
			r.Scripts = append(r.Scripts, x)
		default:
			return Response{}, fmt.Errorf("parse response DE 55: tag %s: %w", x.Tag, ErrForbidden)
		}
		off = end
	}
	return r, nil
}
