package iso93_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/field"
	"github.com/posgate/posgate/protocol/iso93"
)

// randomMessage builds a random message that moov packs with Spec: each
// field of Spec present with probability 1/3, with a random value of a
// legal length and character set.
func randomMessage(t testing.TB, r *rand.Rand) *iso8583.Message {
	t.Helper()
	msg := iso93.NewMessage(randDigits(r, 4))
	for id, f := range iso93.Spec.Fields {
		if id <= iso93.FieldBitmap || r.IntN(3) != 0 {
			continue
		}
		s := f.Spec()
		n := s.Length
		if !strings.HasSuffix(s.Pref.Inspect(), ".Fixed") {
			n = r.IntN(s.Length + 1)
		}
		var v []byte
		switch f.(type) {
		case *field.Binary:
			v = make([]byte, n)
			for i := range v {
				v[i] = byte(r.UintN(256))
			}
		case *field.Numeric:
			v = []byte(randDigits(r, n))
		default:
			if isDigitField(id) {
				v = []byte(randDigits(r, n))
			} else {
				v = make([]byte, n)
				for i := range v {
					v[i] = byte(0x20 + r.IntN(0x5F))
				}
			}
		}
		if err := msg.BinaryField(id, v); err != nil {
			t.Fatalf("set field %d: %v", id, err)
		}
	}
	return msg
}

func isDigitField(id int) bool {
	switch id {
	case 2, 3, 7, 11, 12, 24, 25, 32, 39, 49, 56, 93, 94, 100:
		return true
	}
	return false
}

func randDigits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

// TestPeekAgreesWithUnpack is the property test of the fast path: for
// random valid messages packed by moov, Peek returns exactly what a full
// Unpack finds.
func TestPeekAgreesWithUnpack(t *testing.T) {
	r := rand.New(rand.NewPCG(1993, 8583))
	for i := range 2000 {
		msg := randomMessage(t, r)
		raw, err := msg.Pack()
		if err != nil {
			t.Fatalf("message %d: moov pack: %v", i, err)
		}
		checkPeekAgrees(t, raw)
	}
}

// checkPeekAgrees asserts Peek and Unpack accept raw alike and, when they
// do, agree on every header field.
func checkPeekAgrees(t *testing.T, raw []byte) {
	t.Helper()
	mti, msg, uerr := iso93.Unpack(raw)
	h, perr := iso93.Peek(raw)
	if (uerr == nil) != (perr == nil) {
		t.Fatalf("Unpack error %v, Peek error %v", uerr, perr)
	}
	if uerr != nil {
		return
	}
	get := func(id int) string {
		s, err := msg.GetString(id)
		if err != nil {
			t.Fatalf("field %d: %v", id, err)
		}
		return s
	}
	ksn, _ := msg.GetBytes(iso93.FieldKSN)
	switch {
	case h.MTI != mti:
		t.Fatal("MTI differs")
	case h.STAN != get(iso93.FieldSTAN):
		t.Fatal("STAN differs")
	case h.TerminalID != get(iso93.FieldTerminalID):
		t.Fatal("terminal id differs")
	case h.FunctionCode != get(iso93.FieldFunctionCode):
		t.Fatal("function code differs")
	case h.Fingerprint != get(iso93.FieldFingerprint):
		t.Fatal("fingerprint differs")
	case h.IdempotencyKey != get(iso93.FieldIdempotencyKey):
		t.Fatal("idempotency key differs")
	case h.ActionCode != get(iso93.FieldActionCode):
		t.Fatal("action code differs")
	case !bytes.Equal(h.KSN, ksn):
		t.Fatal("KSN differs")
	case (h.KSN == nil) != (msg.GetField(iso93.FieldKSN) == nil):
		t.Fatal("KSN presence differs")
	}
}

func TestPeekTypical(t *testing.T) {
	raw := validRaw(t)
	h, err := iso93.Peek(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := iso93.Header{MTI: "1100", STAN: "000123", TerminalID: "TERM0001", FunctionCode: "100",
		Fingerprint: testFingerprint, IdempotencyKey: "gw-0001/TERM0001/000123", KSN: testKSN}
	if h.MTI != want.MTI || h.STAN != want.STAN || h.TerminalID != want.TerminalID || h.FunctionCode != want.FunctionCode ||
		h.Fingerprint != want.Fingerprint || h.IdempotencyKey != want.IdempotencyKey || h.ActionCode != "" || !bytes.Equal(h.KSN, want.KSN) {
		t.Fatalf("Peek = %+v, want %+v", h, want)
	}
	// KSN aliases raw; the strings do not.
	i := bytes.Index(raw, testKSN)
	raw[i] ^= 0xFF
	if h.KSN[0] != raw[i] {
		t.Fatal("KSN does not alias raw")
	}
	copy(raw, "9999")
	if h.MTI != "1100" {
		t.Fatal("MTI aliases raw")
	}
}
