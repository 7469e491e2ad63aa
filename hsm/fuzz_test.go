package hsm

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/asn1"
	"testing"
)

// FuzzParseECPoint feeds arbitrary CKA_EC_POINT values; any accepted point
// must re-encode to the same uncompressed point and parse again equal.
func FuzzParseECPoint(f *testing.F) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	raw := k.PublicKey().Bytes()
	wrapped, _ := asn1.Marshal(raw)
	f.Add(wrapped)
	f.Add(raw)
	f.Add([]byte{0x04, 0x41, 0x04})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, point []byte) {
		pub, err := parseECPoint(p256OID, point)
		if err != nil {
			return
		}
		ek, err := pub.ECDH()
		if err != nil {
			t.Fatalf("accepted point is not usable: %v", err)
		}
		enc, _ := asn1.Marshal(ek.Bytes())
		again, err := parseECPoint(p256OID, enc)
		if err != nil {
			t.Fatalf("re-encoded point rejected: %v", err)
		}
		if !again.Equal(pub) {
			t.Fatalf("round trip changed the point")
		}
		if _, err := parseECPoint([]byte{0x06, 0x01, 0x00}, enc); err == nil {
			t.Fatalf("accepted a non-P-256 curve")
		}
	})
}

// FuzzHasTokenLabel checks the softhsm2-util output parser: a label line it
// builds itself is always found, in any surrounding output.
func FuzzHasTokenLabel(f *testing.F) {
	f.Add([]byte("Slot 1\n    Token info:\n        Label:            posgate-test                    \n"), "posgate-test")
	f.Add([]byte(""), "x")
	f.Fuzz(func(t *testing.T, out []byte, label string) {
		label = string(bytes.TrimSpace([]byte(label)))
		if label == "" || bytes.ContainsAny([]byte(label), "\r\n") {
			return
		}
		withLine := append(append(bytes.Clone(out), []byte("\n        Label:            "+label+"   \n")...), out...)
		if !hasTokenLabel(withLine, label) {
			t.Fatalf("label line not found")
		}
	})
}
