package hsm

import (
	"bytes"
	"testing"

	"github.com/posgate/posgate/p2pe/pinblock"
)

// FuzzPINDigits4 checks the clear PIN field parser of the PVV path against
// p2pe/pinblock: every field pinDigits4 accepts, pinblock.ParsePINField4
// accepts with the same first 4 digits, and every field PINField4 builds
// pinDigits4 accepts.
func FuzzPINDigits4(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xAA}, 16), "1234")
	f.Add([]byte{0x44, 0x12, 0x34, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x2F, 0x69, 0xAD, 0xDE, 0x2E, 0x9E, 0x7A, 0xCE}, "123456789012")
	f.Add(make([]byte, 16), "0000")
	f.Fuzz(func(t *testing.T, field []byte, pinDigits string) {
		if p, err := pinDigits4(field); err == nil {
			pin, _, err := pinblock.ParsePINField4(field)
			if err != nil {
				t.Fatalf("pinDigits4 accepts a field ParsePINField4 refuses: %v", err)
			}
			d := pin.Digits()
			for i := range p {
				if d[i]-'0' != p[i] {
					t.Fatalf("digit %d differs from ParsePINField4's", i)
				}
			}
		}
		pin, err := pinblock.ParsePIN(pinDigits)
		if err != nil {
			return
		}
		pf, err := pinblock.PINField4(pin, bytes.NewReader(bytes.Repeat([]byte{0x5A}, 8)))
		if err != nil {
			return
		}
		p, err := pinDigits4(pf[:])
		if err != nil {
			t.Fatalf("pinDigits4 refuses a PINField4 field: %v", err)
		}
		for i := range p {
			if pinDigits[i]-'0' != p[i] {
				t.Fatalf("round trip: digit %d differs", i)
			}
		}
	})
}
