package cardblock

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/posgate/posgate/p2pe/card"
)

// TLV tags of the clear card data.
const (
	TagPAN          = 0x01 // ASCII digits, 12-19, Luhn; mandatory
	TagExpiry       = 0x02 // ASCII YYMM
	TagServiceCode  = 0x03 // ASCII, 3 digits
	TagTrack2       = 0x04 // ASCII track-2 equivalent data, '=' or 'D' separator
	TagSecurityCode = 0x05 // ASCII, 3 or 4 digits (CVV2/CVC2/CID)
)

var (
	// ErrPadding is returned when the decrypted plaintext does not end in
	// ISO 9797-1 method 2 padding of 1 to 16 bytes on a multiple of 8
	// bytes. Decrypting under the wrong key usually shows up as this
	// error.
	ErrPadding = errors.New("cardblock: bad plaintext padding")
	// ErrTLV is returned for a TLV whose length runs past the data.
	ErrTLV = errors.New("cardblock: malformed TLV")
	// ErrUnknownTag is returned for a tag this version does not define.
	ErrUnknownTag = errors.New("cardblock: unknown tag")
	// ErrDuplicateTag is returned when a tag appears twice.
	ErrDuplicateTag = errors.New("cardblock: duplicate tag")
	// ErrMissingPAN is returned when the PAN is absent.
	ErrMissingPAN = errors.New("cardblock: PAN missing")
	// ErrField is returned for a field value that is empty or invalid for
	// its tag; the error wraps the card package's reason.
	ErrField = errors.New("cardblock: invalid field")
	// ErrMismatch is returned when the track-2 data carries a different
	// PAN than the PAN field.
	ErrMismatch = errors.New("cardblock: track-2 PAN differs from the PAN field")
)

// ClearData is the clear card data a block carries. PAN is mandatory; a zero
// field is absent and not encoded. It prints and logs with the PAN masked
// and the track and security code redacted.
type ClearData struct {
	PAN          card.PAN
	Expiry       card.Expiry
	ServiceCode  string // 3 digits, or "" when absent
	Track2       card.Track2
	SecurityCode card.SecurityCode
}

// LogValue shows the masked PAN and which other fields are present.
func (c ClearData) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("pan", c.PAN.Masked()),
		slog.Bool("expiry", !c.Expiry.IsZero()),
		slog.String("service_code", c.ServiceCode),
		slog.Bool("track2", !c.Track2.IsZero()),
		slog.Bool("security_code", !c.SecurityCode.IsZero()),
	)
}

// validate applies the rules ParsePlaintext enforces to a ClearData built
// in code.
func (c ClearData) validate() error {
	if c.PAN.IsZero() {
		return ErrMissingPAN
	}
	if c.ServiceCode != "" && !isServiceCode(c.ServiceCode) {
		return fmt.Errorf("tag %#02x: %w", TagServiceCode, ErrField)
	}
	if !c.Track2.IsZero() {
		p, err := c.Track2.PAN()
		if err != nil {
			return fmt.Errorf("tag %#02x: %w: %w", TagTrack2, ErrField, err)
		}
		if p != c.PAN {
			return ErrMismatch
		}
	}
	return nil
}

func isServiceCode(s string) bool {
	return len(s) == 3 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'
}

// plaintextBlock is the padding unit: the AES block, a multiple of the TDES
// block, so one plaintext serves both ciphers.
const plaintextBlock = 16

// Plaintext returns the TLV of the present fields in tag order, padded with
// ISO 9797-1 method 2 (0x80 then zero bytes) to a multiple of 16 bytes. It
// fails if the PAN is missing, the service code is not 3 digits, or the
// track-2 PAN differs from PAN. The caller should clear the result after
// encrypting it.
func (c ClearData) Plaintext() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("encode card data: %w", err)
	}
	p := make([]byte, 0, MaxCiphertextLen)
	add := func(tag byte, v string) {
		if v != "" {
			p = append(p, tag, byte(len(v)))
			p = append(p, v...)
		}
	}
	add(TagPAN, c.PAN.Digits())
	add(TagExpiry, c.Expiry.String())
	add(TagServiceCode, c.ServiceCode)
	add(TagTrack2, c.Track2.Data())
	add(TagSecurityCode, c.SecurityCode.Digits())
	p = append(p, 0x80)
	for len(p)%plaintextBlock != 0 {
		p = append(p, 0)
	}
	return p, nil
}

// unpad removes ISO 9797-1 method 2 padding of 1 to 16 bytes from p, whose
// length must be a non-zero multiple of 8.
func unpad(p []byte) ([]byte, error) {
	if len(p) == 0 || len(p)%8 != 0 {
		return nil, fmt.Errorf("plaintext of %d bytes: %w", len(p), ErrPadding)
	}
	i := len(p) - 1
	for i >= 0 && i > len(p)-plaintextBlock && p[i] == 0 {
		i--
	}
	if i >= 0 && p[i] == 0x80 {
		return p[:i], nil
	}
	return nil, fmt.Errorf("plaintext does not end in 0x80 00..00: %w", ErrPadding)
}

// ParsePlaintext removes the padding from a decrypted plaintext and decodes
// its TLV strictly: tags 0x01 to 0x05 in any order, each at most once,
// non-empty values valid for their tag (PAN 12-19 digits with Luhn, YYMM,
// 3-digit service code, well-formed track 2 with the same PAN, 3-4 digit
// security code), PAN present. Errors match ErrPadding, ErrTLV,
// ErrUnknownTag, ErrDuplicateTag, ErrField, ErrMismatch or ErrMissingPAN and
// never carry the field values.
func ParsePlaintext(p []byte) (ClearData, error) {
	tlv, err := unpad(p)
	if err != nil {
		return ClearData{}, fmt.Errorf("parse card data: %w", err)
	}
	var c ClearData
	var seen [TagSecurityCode + 1]bool
	for len(tlv) > 0 {
		if len(tlv) < 2 {
			return ClearData{}, fmt.Errorf("parse card data: tag without length: %w", ErrTLV)
		}
		tag, l := tlv[0], int(tlv[1])
		if len(tlv) < 2+l {
			return ClearData{}, fmt.Errorf("parse card data: tag %#02x length %d runs past the data: %w", tag, l, ErrTLV)
		}
		v := string(tlv[2 : 2+l])
		tlv = tlv[2+l:]
		if tag == 0 || int(tag) >= len(seen) {
			return ClearData{}, fmt.Errorf("parse card data: tag %#02x: %w", tag, ErrUnknownTag)
		}
		if seen[tag] {
			return ClearData{}, fmt.Errorf("parse card data: tag %#02x: %w", tag, ErrDuplicateTag)
		}
		seen[tag] = true
		if l == 0 {
			return ClearData{}, fmt.Errorf("parse card data: tag %#02x is empty: %w", tag, ErrField)
		}
		switch tag {
		case TagPAN:
			c.PAN, err = card.ParsePAN(v)
		case TagExpiry:
			c.Expiry, err = card.ParseExpiry(v)
		case TagServiceCode:
			if !isServiceCode(v) {
				err = errors.New("service code must be 3 digits")
			}
			c.ServiceCode = v
		case TagTrack2:
			c.Track2, err = card.ParseTrack2(v)
		case TagSecurityCode:
			c.SecurityCode, err = card.ParseSecurityCode(v)
		}
		if err != nil {
			return ClearData{}, fmt.Errorf("parse card data: tag %#02x: %w: %w", tag, ErrField, err)
		}
	}
	if err := c.validate(); err != nil {
		return ClearData{}, fmt.Errorf("parse card data: %w", err)
	}
	return c, nil
}
