package brandspec_test

import (
	"bytes"
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/protocol/brandspec"
)

func TestSpecCarriesExpiry(t *testing.T) {
	m := brandspec.NewMessage("1100")
	if err := m.Field(brandspec.FieldExpiry, "3012"); err != nil {
		t.Fatal(err)
	}
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	back := brandspec.NewMessage("")
	if err := back.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	if got, _ := back.GetString(brandspec.FieldExpiry); got != "3012" {
		t.Fatalf("DE 14 = %q after a round trip", got)
	}
}

func TestExpiryIsFixedLength(t *testing.T) {
	for _, v := range []string{"301", "30122"} {
		m := brandspec.NewMessage("1100")
		_ = m.Field(brandspec.FieldExpiry, v)
		if _, err := m.Pack(); err == nil {
			t.Errorf("DE 14 %q packed, want a length error", v)
		}
	}
}

// FuzzUnpack: a message that unpacks packs again, and what it packs to
// unpacks and packs to the same bytes (the packed form is canonical).
func FuzzUnpack(f *testing.F) {
	m := brandspec.NewMessage("1200")
	for id, v := range map[int]string{2: "4500000000000007", 3: "000000", 4: "100", 7: "1124101500", 11: "000001", 12: "261124101500",
		14: "3012", 22: "000000000000", 24: "200", 32: "99999", 41: "TERM0001", 42: "M0000001       ", 49: "392"} {
		if err := m.Field(id, v); err != nil {
			f.Fatal(err)
		}
	}
	raw, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("1420garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := iso8583.NewMessage(brandspec.Spec)
		if err := m.Unpack(in); err != nil {
			return
		}
		out, err := m.Pack()
		if err != nil {
			return // moov accepts some values on unpack it refuses to pack
		}
		back := iso8583.NewMessage(brandspec.Spec)
		if err := back.Unpack(out); err != nil {
			t.Fatalf("packed message does not unpack: %v", err)
		}
		again, err := back.Pack()
		if err != nil {
			t.Fatalf("re-pack: %v", err)
		}
		if !bytes.Equal(out, again) {
			t.Fatalf("packed form is not canonical: %q then %q", out, again)
		}
	})
}
