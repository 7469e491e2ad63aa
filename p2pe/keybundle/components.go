package keybundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Components is a key components file: what a demo or first-run center's
// bootstrap writes for the key-injection step (the PAN fingerprint key's
// and the issuer test keys' components, cloud/center), and what `hsmctl
// inject` and LoadIssuerKeyComponents read. The wire form is one JSON
// object, indented by two spaces, with a final newline:
//
//	{"label": "<token label>", "components": ["<hex>", ...],
//	 "kcvs": ["<hex>", ...] or null, "kcv": "<hex>"}
//
// Label names the key in the center's token; Components are the clear
// components in hex; KCVs, when given, one check value per component; KCV
// the check value of the assembled key. The components are secret: print
// a Components value only through its String method.
type Components struct {
	Label      string   `json:"label"`
	Components []string `json:"components"`
	KCVs       []string `json:"kcvs"`
	KCV        string   `json:"kcv"`
}

// MaxComponentsFile bounds a components file's size.
const MaxComponentsFile = 64 << 10

// ErrBadComponents is wrapped by every error ParseComponents returns.
var ErrBadComponents = errors.New("keybundle: bad components file")

// String shows only the label, the number of components and the KCV.
func (c Components) String() string {
	return fmt.Sprintf("components{label %q, %d components, kcv %s}", c.Label, len(c.Components), c.KCV)
}

// MarshalComponents returns the wire form of c.
func MarshalComponents(c Components) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal components: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseComponents decodes a components file strictly: at most
// MaxComponentsFile bytes, known fields only, nothing after the object. It
// checks the layout, not the values (hex, lengths, KCVs): those are the
// reader's. Errors wrap ErrBadComponents and never carry component text.
func ParseComponents(raw []byte) (Components, error) {
	if len(raw) > MaxComponentsFile {
		return Components{}, fmt.Errorf("larger than %d bytes: %w", MaxComponentsFile, ErrBadComponents)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var c Components
	if err := dec.Decode(&c); err != nil {
		// json errors can quote input; say only where it failed.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Components{}, fmt.Errorf("not JSON (offset %d): %w", se.Offset, ErrBadComponents)
		}
		return Components{}, fmt.Errorf("not a components object: %w", ErrBadComponents)
	}
	if dec.More() {
		return Components{}, fmt.Errorf("data after the JSON object: %w", ErrBadComponents)
	}
	return c, nil
}
