package hsm_test

import (
	"errors"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/p2pe/pinblock"
)

// Visa PVV vectors of psec (knovichikhin/psec, tests/test_pin.py and the
// generate_visa_pvv docstring), PVK 0123456789ABCDEFFEDCBA9876543210.
const pvkHex = "0123456789ABCDEFFEDCBA9876543210"

var pvvVectors = []struct {
	name string
	pvki int
	pin  string
	pan  string
	pvv  string
}{
	{"pvki_1_pan_7788", 1, "4524", "1122334455667788", "8523"},
	{"pvki_2_pan_7788", 2, "1912", "1122334455667788", "3244"},
	{"pvki_1_pan_7718", 1, "0570", "1122334455667718", "3144"},
	{"pvki_1_pan_7708", 1, "8299", "1122334455667708", "4422"},
	{"pvki_3_docstring", 3, "4524", "1122334455667788", "4021"},
}

func mustPIN(t testing.TB, s string) pinblock.PIN {
	t.Helper()
	p, err := pinblock.ParsePIN(s)
	if err != nil {
		t.Fatalf("parse PIN: %v", err)
	}
	return p
}

func importPVK(t testing.TB, tok *hsm.Token) string {
	t.Helper()
	label := hsmtest.Label(t, "pvk")
	if err := tok.ImportPVK(label, unhex(t, pvkHex)); err != nil {
		t.Fatalf("import PVK: %v", err)
	}
	return label
}

func TestSoftwarePVVVectors(t *testing.T) {
	for _, v := range pvvVectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := hsm.SoftwarePVV(unhex(t, pvkHex), v.pan, v.pvki, mustPIN(t, v.pin))
			if err != nil {
				t.Fatalf("SoftwarePVV: %v", err)
			}
			if got != v.pvv {
				t.Fatalf("PVV = %s, want %s", got, v.pvv)
			}
		})
	}
}

func TestTokenPVVVectors(t *testing.T) {
	tok := hsmtest.Token(t)
	label := importPVK(t, tok)
	for _, v := range pvvVectors {
		t.Run(v.name, func(t *testing.T) {
			pin := mustPIN(t, v.pin)
			got, err := tok.PVV(label, v.pan, v.pvki, pin)
			if err != nil {
				t.Fatalf("PVV: %v", err)
			}
			if got != v.pvv {
				t.Fatalf("token PVV = %s, want %s", got, v.pvv)
			}
			if err := tok.VerifyPVV(label, v.pan, v.pvki, pin, v.pvv); err != nil {
				t.Fatalf("VerifyPVV of the right value: %v", err)
			}
			wrong := []byte(v.pvv)
			wrong[3] = '0' + (wrong[3]-'0'+1)%10
			if err := tok.VerifyPVV(label, v.pan, v.pvki, pin, string(wrong)); !errors.Is(err, hsm.ErrPIN) {
				t.Fatalf("VerifyPVV of a wrong value: %v, want ErrPIN", err)
			}
		})
	}
}

func TestPVVInputErrors(t *testing.T) {
	tok := hsmtest.Token(t)
	label := importPVK(t, tok)
	for _, tc := range []struct {
		name string
		pan  string
		pvki int
		pin  pinblock.PIN
	}{
		{"pan_too_short", "11223344556", 1, mustPIN(t, "1234")},
		{"pan_not_digits", "11223344556677A8", 1, mustPIN(t, "1234")},
		{"pvki_negative", "1122334455667788", -1, mustPIN(t, "1234")},
		{"pvki_two_digits", "1122334455667788", 10, mustPIN(t, "1234")},
		{"pin_zero", "1122334455667788", 1, pinblock.PIN{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tok.PVV(label, tc.pan, tc.pvki, tc.pin); !errors.Is(err, hsm.ErrInput) {
				t.Fatalf("PVV: %v, want ErrInput", err)
			}
			if _, err := hsm.SoftwarePVV(unhex(t, pvkHex), tc.pan, tc.pvki, tc.pin); !errors.Is(err, hsm.ErrInput) {
				t.Fatalf("SoftwarePVV: %v, want ErrInput", err)
			}
		})
	}
	if err := tok.ImportPVK(hsmtest.Label(t, "pvk-short"), make([]byte, 8)); !errors.Is(err, hsm.ErrKeyLength) {
		t.Fatalf("ImportPVK of 8 bytes: %v, want ErrKeyLength", err)
	}
	if _, err := tok.PVV(hsmtest.Label(t, "pvk-missing"), "1122334455667788", 1, mustPIN(t, "1234")); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("PVV under a missing PVK: %v, want ErrKeyNotFound", err)
	}
}

// TestVerifyPVVFromDUKPTPINBlock uses the X9.24-3 format 4 PIN blocks of
// CRYPTO_VECTORS.md (PIN 1234, PAN 4111111111111111, AES-128 BDK); the
// expected PVV comes from SoftwarePVV, checked against psec's vectors.
func TestVerifyPVVFromDUKPTPINBlock(t *testing.T) {
	tok := hsmtest.Token(t)
	bdk := importBDK(t, tok, bdk128)
	pvk := importPVK(t, tok)
	const pan = "4111111111111111"
	pvv, err := hsm.SoftwarePVV(unhex(t, pvkHex), pan, 1, mustPIN(t, "1234"))
	if err != nil {
		t.Fatalf("SoftwarePVV: %v", err)
	}
	wrongPVV := []byte(pvv)
	wrongPVV[0] = '0' + (wrongPVV[0]-'0'+1)%10
	for _, tc := range []struct {
		name    string
		counter uint32
		block   string
		pan     string
		pvv     string
		want    error
	}{
		{"vector_tc1_right_pin", 1, "A912150391AB65A67E52883D81CE2D15", pan, pvv, nil},
		{"vector_tc2_right_pin", 2, "52A00503BD34BA1383F6A7EE9FE2547F", pan, pvv, nil},
		{"vector_tc8_right_pin", 8, "8308BB857C17F390369F761F8EB358FA", pan, pvv, nil},
		{"wrong_pvv", 1, "A912150391AB65A67E52883D81CE2D15", pan, string(wrongPVV), hsm.ErrPIN},
		{"pvv_not_4_digits", 1, "A912150391AB65A67E52883D81CE2D15", pan, pvv[:3], hsm.ErrPIN},
		{"wrong_counter_garbles_block", 2, "A912150391AB65A67E52883D81CE2D15", pan, pvv, hsm.ErrDecrypt},
		{"other_pan_garbles_block", 1, "A912150391AB65A67E52883D81CE2D15", "1111111111111129", pvv, hsm.ErrDecrypt},
		{"short_block", 1, "A912150391AB65A67E52883D81CE2D", pan, pvv, hsm.ErrDecrypt},
		{"bad_pan", 1, "A912150391AB65A67E52883D81CE2D15", "1111", pvv, hsm.ErrInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tok.VerifyPVVFromDUKPTPINBlock(bdk, ksnOf(t, tc.counter), unhex(t, tc.block), tc.pan, pvk, 1, tc.pvv)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyPVVFromDUKPTPINBlock: %v, want %v", err, tc.want)
			}
		})
	}
}

func BenchmarkVerifyPVVFromDUKPTPINBlock(b *testing.B) {
	tok := hsmtest.Token(b)
	bdk := importBDK(b, tok, bdk128)
	pvk := importPVK(b, tok)
	const pan = "4111111111111111"
	pvv, err := hsm.SoftwarePVV(unhex(b, pvkHex), pan, 1, mustPIN(b, "1234"))
	if err != nil {
		b.Fatal(err)
	}
	blk := unhex(b, "A912150391AB65A67E52883D81CE2D15")
	ksn := ksnOf(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := tok.VerifyPVVFromDUKPTPINBlock(bdk, ksn, blk, pan, pvk, 1, pvv); err != nil {
			b.Fatal(err)
		}
	}
}
