package keybundle_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/p2pe/keybundle"
)

// TestComponentsGolden pins the file the center's bootstrap writes.
func TestComponentsGolden(t *testing.T) {
	c := keybundle.Components{Label: "fingerprint", Components: []string{"00ff", "ff00"}, KCV: "853C74"}
	const want = `{
  "label": "fingerprint",
  "components": [
    "00ff",
    "ff00"
  ],
  "kcvs": null,
  "kcv": "853C74"
}
`
	got, err := keybundle.MarshalComponents(c)
	if err != nil || string(got) != want {
		t.Fatalf("MarshalComponents =\n%s(%v)\nwant\n%s", got, err, want)
	}
	if s := c.String(); strings.Contains(s, "00ff") {
		t.Fatalf("String() shows a component: %s", s)
	}
}

func TestParseComponentsRejects(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"unknown_field", `{"label":"x","key":"00ff"}`},
		{"not_json", `{"label":`},
		{"trailing_data", `{"label":"x"} {}`},
		{"too_large", `{"label":"` + strings.Repeat("a", keybundle.MaxComponentsFile) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keybundle.ParseComponents([]byte(tc.in))
			if !errors.Is(err, keybundle.ErrBadComponents) {
				t.Fatalf("err %v, want ErrBadComponents", err)
			}
		})
	}
}

// FuzzParseComponents: a parsed file marshals to a canonical form that
// parses back to it, and errors never carry the input.
func FuzzParseComponents(f *testing.F) {
	f.Add([]byte(`{"label":"fingerprint","components":["` + strings.Repeat("ab", 32) + `","` + strings.Repeat("cd", 32) + `"],"kcvs":null,"kcv":"853C74"}`))
	f.Add([]byte(`{"label":"x","components":[],"kcvs":["0102"],"kcv":""}`))
	f.Add([]byte(`{"components":["00"]} {}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := keybundle.ParseComponents(raw)
		if err != nil {
			if !errors.Is(err, keybundle.ErrBadComponents) {
				t.Fatalf("error %v does not wrap ErrBadComponents", err)
			}
			if len(raw) > 8 && strings.Contains(err.Error(), string(raw)) {
				t.Fatal("error quotes its input")
			}
			return
		}
		out, err := keybundle.MarshalComponents(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := keybundle.ParseComponents(out)
		if err != nil {
			t.Fatalf("parse of a marshalled file: %v", err)
		}
		again, err := keybundle.MarshalComponents(back)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("marshalled form is not canonical (%v)", err)
		}
	})
}
