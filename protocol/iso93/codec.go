package iso93

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/moov-io/iso8583"
	iso8583errors "github.com/moov-io/iso8583/errors"
	"github.com/moov-io/iso8583/field"
)

// NewMessage returns an empty message of Spec with the given MTI.
func NewMessage(mti string) *iso8583.Message {
	m := iso8583.NewMessage(Spec)
	m.MTI(mti)
	return m
}

// Pack packs the typed message v (one of this package's message types, or a
// pointer to one) as mti, after checking that mti belongs to v's type and
// that the result passes Validate. Zero-valued fields are left out, except
// amounts and reconciliation totals, which are always sent. Errors are
// *FieldError values (or wrap ErrMTIMismatch) and never quote a field
// value.
func Pack(v any, mti string) ([]byte, error) {
	mtis := mtisOf(v)
	if mtis == nil {
		return nil, fmt.Errorf("iso93: pack %T: not a message type of this package", v)
	}
	if !slices.Contains(mtis, mti) {
		return nil, fmt.Errorf("iso93: pack %T as %q: %w", v, mti, ErrMTIMismatch)
	}
	msg := NewMessage(mti)
	if err := msg.Marshal(v); err != nil {
		return nil, fmt.Errorf("iso93: pack %s: %w", mti, marshalError(err))
	}
	raw, err := PackMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("iso93: pack %s: %w", mti, err)
	}
	// Validate on the packed bytes: the walk is cheaper than reading the
	// moov fields back, and it checks that what moov packed is what Peek
	// and Unpack accept.
	var l layout
	if err := walk(raw, &l); err != nil {
		return nil, fmt.Errorf("iso93: pack %s: packed message fails the walk: %w", mti, err)
	}
	if err := validate(mti, rawFields{raw, &l}); err != nil {
		return nil, fmt.Errorf("iso93: pack %s: %w", mti, err)
	}
	return raw, nil
}

// marshalError reduces a moov Marshal error (which names the field and the
// Go type, never the value for the types used in this package's structs) to
// a value-free error.
func marshalError(err error) error {
	return errors.New(err.Error())
}

// PackMessage packs msg with Spec. Unlike Pack it does not call Validate,
// so it can pack a 904 reply to a request that lacked mandatory fields. On
// failure it returns a *FieldError naming the first field that cannot be
// encoded.
func PackMessage(msg *iso8583.Message) ([]byte, error) {
	raw, err := msg.Pack()
	if err == nil {
		return raw, nil
	}
	// Find the field at fault; the moov error says why in value-free terms
	// (lengths and byte offsets), since Spec's encoders never quote bytes.
	fs := msg.GetFields()
	ids := make([]int, 0, len(fs))
	for id := range fs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if id == FieldBitmap {
			continue
		}
		if _, ferr := fs[id].Pack(); ferr != nil {
			return nil, &FieldError{Field: id, Reason: "cannot be encoded: " + ferr.Error(), Err: ErrInvalidField}
		}
	}
	return nil, fmt.Errorf("iso93: pack message: %w", ErrInvalidField)
}

// Unpack parses raw with Spec and returns its MTI and message. It first
// walks the message structurally (the same walk as Peek) so that an error
// names the field and the reason; then moov builds the fields. It rejects a
// tertiary bitmap and bytes after the last field. It does not call
// Validate. The returned message does not alias raw. Errors are
// *FieldError values wrapping ErrMalformed.
func Unpack(raw []byte) (mti string, msg *iso8583.Message, err error) {
	var l layout
	return unpack(raw, &l)
}

func unpack(raw []byte, l *layout) (mti string, msg *iso8583.Message, err error) {
	if err := walk(raw, l); err != nil {
		return "", nil, err
	}
	msg = iso8583.NewMessage(Spec)
	if err := msg.Unpack(raw); err != nil {
		// The walk accepts only what moov accepts, so this is unexpected;
		// report the field without moov's text, which can quote bytes.
		id := -1
		if ue, ok := errors.AsType[*iso8583errors.UnpackError](err); ok {
			if n, cerr := strconv.Atoi(ue.FieldID); cerr == nil {
				id = n
			}
		}
		return "", nil, malformed(id, "rejected by the codec")
	}
	return string(raw[l.mti.off:l.mti.end]), msg, nil
}

// UnpackInto unpacks raw, checks that its MTI belongs to v's message type,
// validates it (Validate) and fills v, which must be a pointer to one of
// this package's message types. On error v may be partly filled.
func UnpackInto(raw []byte, v any) error {
	mtis := mtisOf(v)
	if mtis == nil {
		return fmt.Errorf("iso93: unpack into %T: not a message type of this package", v)
	}
	var l layout
	mti, msg, err := unpack(raw, &l)
	if err != nil {
		return err
	}
	if !slices.Contains(mtis, mti) {
		return &FieldError{Field: FieldMTI, Reason: fmt.Sprintf("MTI does not belong to %T", v), Err: ErrMTIMismatch}
	}
	if err := validate(mti, rawFields{raw, &l}); err != nil {
		return err
	}
	if err := msg.Unmarshal(v); err != nil {
		return fmt.Errorf("iso93: unpack %s into %T: %w", mti, v, marshalError(err))
	}
	return nil
}

// echoed lists the data elements a response copies from its request.
var echoed = []int{
	FieldProcessingCode, FieldAmount, FieldTransmissionTime, FieldSTAN, FieldLocalTime,
	FieldFunctionCode, FieldAcquirerID, FieldRRN, FieldTerminalID, FieldMerchantID,
	FieldCurrency, FieldIdempotencyKey,
}

// NewResponse returns the skeleton of the response to req: the response
// MTI (1100 -> 1110, 1221 -> 1230, ...), the echoed data elements 3, 4, 7,
// 11, 12, 24, 32, 37, 41, 42, 49 and 123 that req carries, and DE 39 set to
// action. The caller adds the rest (38, 55, ...). It returns an error
// wrapping ErrUnknownMTI when req is not a request of this protocol.
func NewResponse(req *iso8583.Message, action ActionCode) (*iso8583.Message, error) {
	mti, err := req.GetMTI()
	if err != nil {
		return nil, fmt.Errorf("iso93: build response: %w", ErrMalformed)
	}
	respMTI, ok := ResponseMTI(mti)
	if !ok {
		return nil, &FieldError{Field: FieldMTI, Reason: "no response MTI for this MTI", Err: ErrUnknownMTI}
	}
	resp := NewMessage(respMTI)
	for _, id := range echoed {
		if err := copyField(resp, req.GetField(id), id); err != nil {
			return nil, err
		}
	}
	if err := resp.Field(FieldActionCode, string(action)); err != nil {
		return nil, fmt.Errorf("iso93: build response: set action code: %w", err)
	}
	return resp, nil
}

func copyField(dst *iso8583.Message, f field.Field, id int) error {
	if f == nil {
		return nil
	}
	b, err := f.Bytes()
	if err != nil {
		return &FieldError{Field: id, Reason: "cannot be read", Err: ErrMalformed}
	}
	if err := dst.BinaryField(id, b); err != nil {
		return &FieldError{Field: id, Reason: "cannot be copied", Err: ErrMalformed}
	}
	return nil
}

// Describe writes a human-readable dump of msg to w with card data masked:
// moov's default filters (DE 2 first four and last four digits, DE 52 and
// DE 55 shortened) plus DE 120, DE 125 and DE 128 shown as [redacted].
func Describe(w io.Writer, msg *iso8583.Message) error {
	redact := func(string, field.Field) string { return "[redacted]" }
	filters := append(iso8583.DefaultFilters(),
		iso8583.FilterField(strconv.Itoa(FieldCardData), redact),
		iso8583.FilterField(strconv.Itoa(FieldPINBlock), redact),
		iso8583.FilterField(strconv.Itoa(FieldPINData), redact),
		iso8583.FilterField(strconv.Itoa(FieldMAC), redact),
	)
	if err := iso8583.Describe(msg, w, filters...); err != nil {
		return fmt.Errorf("iso93: describe message: %w", err)
	}
	return nil
}
