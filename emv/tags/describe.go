package tags

import (
	"fmt"
	"io"
	"strings"

	"github.com/posgate/posgate/emv/tlv"
)

// Redacted replaces a sensitive value in Describe's output.
const Redacted = "[redacted]"

// Describe writes one line per data object of list, templates indented
// under their tag: tag, name, length and the value. Sensitive values are
// masked: a PAN (5A) shows its first six and last four digits, track 2
// data (57, 9F6B) its masked PAN followed by "D[redacted]", every other
// sensitive value and every value of a tag missing from the dictionary
// shows Redacted. Text formats (an, ans) print as quoted text, the others
// in hex. It returns the first write error.
func Describe(w io.Writer, list []tlv.TLV) error {
	return describe(w, list, 0)
}

func describe(w io.Writer, list []tlv.TLV, depth int) error {
	ind := strings.Repeat("  ", depth)
	for _, x := range list {
		info, known := byTag[x.Tag]
		name := info.Name
		if !known {
			name = "(not in dictionary)"
		}
		if x.Tag.Constructed() {
			if _, err := fmt.Fprintf(w, "%s%s %s\n", ind, x.Tag, name); err != nil {
				return err
			}
			if err := describe(w, x.Children, depth+1); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintf(w, "%s%s %s [%d]: %s\n", ind, x.Tag, name, len(x.Value), Show(x)); err != nil {
			return err
		}
	}
	return nil
}

// Show returns the display form of a primitive object's value, masked as
// Describe masks it.
func Show(x tlv.TLV) string {
	info, known := byTag[x.Tag]
	switch {
	case !known:
		return Redacted
	case x.Tag == PAN:
		return maskDigits(cnDigits(x.Value))
	case x.Tag == Track2Equivalent || x.Tag == Track2DataContactless:
		d := strings.ToUpper(fmt.Sprintf("%X", x.Value))
		if i := strings.IndexByte(d, 'D'); i >= 0 {
			return maskDigits(d[:i]) + "D" + Redacted
		}
		return Redacted
	case info.Sensitive:
		return Redacted
	case info.Format == Alphanumeric || info.Format == AlphanumericSpecial:
		if formatOK(AlphanumericSpecial, x.Value) {
			return fmt.Sprintf("%q", x.Value)
		}
	}
	return fmt.Sprintf("%X", x.Value)
}

// cnDigits returns the digits of a cn value up to its F padding; any
// non-digit nibble ends it.
func cnDigits(v []byte) string {
	var sb strings.Builder
	for _, b := range v {
		for _, n := range [2]byte{b >> 4, b & 0xF} {
			if n > 9 {
				return sb.String()
			}
			sb.WriteByte('0' + n)
		}
	}
	return sb.String()
}

// maskDigits keeps the first six and last four of a PAN-like digit string
// (masking all of a string shorter than 13 but for its last four, all of
// one shorter than 10 digits).
func maskDigits(d string) string {
	switch {
	case len(d) < 10:
		return strings.Repeat("*", len(d))
	case len(d) < 13:
		return strings.Repeat("*", len(d)-4) + d[len(d)-4:]
	}
	return d[:6] + strings.Repeat("*", len(d)-10) + d[len(d)-4:]
}
