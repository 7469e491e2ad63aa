package pinblock_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/posgate/posgate/p2pe/internal/vectors"
	"github.com/posgate/posgate/p2pe/pinblock"
)

func mustPIN(t testing.TB, s string) pinblock.PIN {
	t.Helper()
	p, err := pinblock.ParsePIN(s)
	if err != nil {
		t.Fatalf("ParsePIN: %v", err)
	}
	return p
}

// TestVectorFile checks every row of testdata/vectors/pinblock.txt.
func TestVectorFile(t *testing.T) {
	for i, r := range vectors.Load(t, "pinblock.txt") {
		t.Run(fmt.Sprintf("row_%d_format_%s", i, r.Str(t, "FORMAT")), func(t *testing.T) {
			pin := mustPIN(t, r.Str(t, "PIN"))
			pan := r.Str(t, "PAN")
			switch r.Str(t, "FORMAT") {
			case "0":
				want := r.Hex(t, "CLEAR")
				got, err := pinblock.EncodeFormat0(pin, pan)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[:], want) {
					t.Fatalf("block %X, want %X", got, want)
				}
				back, err := pinblock.DecodeFormat0(want, pan)
				if err != nil || back != pin {
					t.Fatalf("decode: %v", err)
				}
			case "4":
				key, block := r.Hex(t, "KEY"), r.Hex(t, "BLOCK")
				got, err := pinblock.DecryptFormat4(key, block, pan)
				if err != nil {
					t.Fatal(err)
				}
				if got != pin {
					t.Fatal("decrypted PIN differs from the vector")
				}
				// Re-encipher with the block's own fill: same bytes.
				af, err := pinblock.PANField4(pan)
				if err != nil {
					t.Fatal(err)
				}
				pf, err := pinblock.DecipherFormat4(key, block, af)
				if err != nil {
					t.Fatal(err)
				}
				again, err := pinblock.EncryptFormat4(key, pin, pan, bytes.NewReader(pf[8:]))
				if err != nil || !bytes.Equal(again, block) {
					t.Fatalf("re-encrypt %X, %v", again, err)
				}
			default:
				t.Fatalf("unknown format %s", r.Str(t, "FORMAT"))
			}
		})
	}
}

// TestAESDUKPTFormat4 checks the X9.24-3 format 4 rows of dukpt_aes.txt: the
// given PIN and PAN fields under each row's PIN key.
func TestAESDUKPTFormat4(t *testing.T) {
	recs := vectors.Load(t, "dukpt_aes.txt")
	head := recs[0]
	var pinField, panField [pinblock.Format4Size]byte
	copy(pinField[:], head.Hex(t, "PINFIELD"))
	copy(panField[:], head.Hex(t, "PANFIELD"))
	pin := mustPIN(t, head.Str(t, "PIN"))
	pan := head.Str(t, "PAN")

	gotPAN, err := pinblock.ParsePANField4(panField[:])
	if err != nil || gotPAN != pan {
		t.Fatalf("PAN field does not parse to the vector PAN: %v", err)
	}
	built, err := pinblock.PANField4(pan)
	if err != nil || built != panField {
		t.Fatalf("PANField4 = %X, %v", built, err)
	}
	gotPIN, fill, err := pinblock.ParsePINField4(pinField[:])
	if err != nil || gotPIN != pin {
		t.Fatalf("PIN field does not parse to the vector PIN: %v", err)
	}
	rebuilt, err := pinblock.PINField4(pin, bytes.NewReader(fill[:]))
	if err != nil || rebuilt != pinField {
		t.Fatalf("PINField4 = %X, %v", rebuilt, err)
	}

	rows := 0
	for _, r := range recs[1:] {
		if !r.Has("PINBLOCK4") {
			continue
		}
		rows++
		t.Run("counter_"+r.Str(t, "COUNTER"), func(t *testing.T) {
			key, want := r.Hex(t, "PINKEY"), r.Hex(t, "PINBLOCK4")
			got, err := pinblock.EncipherFormat4(key, pinField, panField)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:], want) {
				t.Fatalf("block %X, want %X", got, want)
			}
			enc, err := pinblock.EncryptFormat4(key, pin, pan, bytes.NewReader(fill[:]))
			if err != nil || !bytes.Equal(enc, want) {
				t.Fatalf("EncryptFormat4 %X, %v", enc, err)
			}
			dec, err := pinblock.DecryptFormat4(key, want, pan)
			if err != nil || dec != pin {
				t.Fatalf("DecryptFormat4: %v", err)
			}
		})
	}
	if rows != 3 {
		t.Fatalf("%d format 4 rows in dukpt_aes.txt, want 3", rows)
	}
}

func TestParsePIN(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"four", "1234", false},
		{"twelve", "123456789012", false},
		{"three", "123", true},
		{"thirteen", "1234567890123", true},
		{"letter", "12a4", true},
		{"empty", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pinblock.ParsePIN(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && p.Digits() != tt.in {
				t.Fatal("Digits does not return the PIN")
			}
			if err != nil && !errors.Is(err, pinblock.ErrPIN) {
				t.Fatalf("err %v is not ErrPIN", err)
			}
		})
	}
}

func TestPINNeverPrints(t *testing.T) {
	p := mustPIN(t, "98765")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		if strings.Contains(fmt.Sprintf(verb, p), "98765") || strings.Contains(fmt.Sprintf(verb, struct{ P pinblock.PIN }{p}), "98765") {
			t.Errorf("%s shows the PIN", verb)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("pin", "pin", p)
	if strings.Contains(buf.String(), "98765") || !strings.Contains(buf.String(), "[redacted]") {
		t.Fatalf("slog output not redacted: %s", buf.String())
	}
}

func TestFormat0Errors(t *testing.T) {
	pin := mustPIN(t, "1234")
	const pan = "4012345678909"
	good, err := pinblock.EncodeFormat0(pin, pan)
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good[:]...)
		f(b)
		return b
	}
	tests := []struct {
		name  string
		block []byte
		pan   string
		want  error
	}{
		{"short_block", good[:7], pan, pinblock.ErrBlockLength},
		{"short_pan", good[:], "401234567890", pinblock.ErrPAN},
		{"pan_with_letter", good[:], "40123456789A9", pinblock.ErrPAN},
		{"control_nibble", mut(func(b []byte) { b[0] ^= 0x10 }), pan, pinblock.ErrFormat},
		{"length_three", mut(func(b []byte) { b[0] ^= 0x04 ^ 0x03 }), pan, pinblock.ErrFormat},
		{"length_thirteen", mut(func(b []byte) { b[0] ^= 0x04 ^ 0x0D }), pan, pinblock.ErrFormat},
		{"fill_not_f", mut(func(b []byte) { b[7] ^= 0x01 }), pan, pinblock.ErrFormat},
		{"pin_digit_not_decimal", mut(func(b []byte) { b[1] ^= 0x10 ^ 0xA0 }), pan, pinblock.ErrFormat},
		{"wrong_pan", good[:], "5555555551234567", pinblock.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pinblock.DecodeFormat0(tt.block, tt.pan)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncryptFormat0RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		key  string
		pin  string
		pan  string
	}{
		{"two_key", "0123456789ABCDEFFEDCBA9876543210", "1234", "4012345678909"},
		{"three_key", "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567", "123456789012", "4111111111111111111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, _ := hex.DecodeString(tt.key)
			pin := mustPIN(t, tt.pin)
			b, err := pinblock.EncryptFormat0(key, pin, tt.pan)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pinblock.DecryptFormat0(key, b, tt.pan)
			if err != nil || got != pin {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
	if _, err := pinblock.EncryptFormat0(make([]byte, 8), mustPIN(t, "1234"), "4012345678909"); !errors.Is(err, pinblock.ErrKeyLength) {
		t.Fatalf("8-byte key: %v", err)
	}
}

func TestFormat4Errors(t *testing.T) {
	key := bytes.Repeat([]byte{0x11}, 16)
	pin := mustPIN(t, "1234")
	const pan = "4111111111111111"
	block, err := pinblock.EncryptFormat4(key, pin, pan, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   []byte
		block []byte
		pan   string
		want  error
	}{
		{"wrong_pan", key, block, "4111111111111129", pinblock.ErrFormat},
		{"wrong_key", bytes.Repeat([]byte{0x22}, 16), block, pan, pinblock.ErrFormat},
		{"short_block", key, block[:15], pan, pinblock.ErrBlockLength},
		{"bad_key_length", key[:15], block, pan, pinblock.ErrKeyLength},
		{"pan_eleven_digits", key, block, "41111111111", pinblock.ErrPAN},
		{"pan_twenty_digits", key, block, "41111111111111111111", pinblock.ErrPAN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pinblock.DecryptFormat4(tt.key, tt.block, tt.pan)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := pinblock.EncryptFormat4(key, pin, pan, iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Fatal("failing fill reader accepted")
	}
}

func TestFormat4FillIsRandomByDefault(t *testing.T) {
	key := bytes.Repeat([]byte{0x11}, 16)
	pin := mustPIN(t, "1234")
	a, err := pinblock.EncryptFormat4(key, pin, "4111111111111111", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pinblock.EncryptFormat4(key, pin, "4111111111111111", nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two format 4 blocks of the same PIN are equal: fill is not random")
	}
}

func FuzzDecodeFormat0(f *testing.F) {
	f.Add([]byte{0x04, 0x12, 0x74, 0xED, 0xCB, 0xA9, 0x87, 0x6F}, "4012345678909")
	f.Add([]byte{0x04, 0x12, 0x61, 0xAA, 0xAA, 0xED, 0xCB, 0xA9}, "5555555551234567")
	f.Add(make([]byte, 8), "0000000000000")
	f.Fuzz(func(t *testing.T, block []byte, pan string) {
		pin, err := pinblock.DecodeFormat0(block, pan)
		if err != nil {
			return
		}
		// Any block that decodes re-encodes to the same bytes.
		again, err := pinblock.EncodeFormat0(pin, pan)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again[:], block) {
			t.Fatalf("re-encoded %X, decoded from %X", again, block)
		}
	})
}

func FuzzParsePINField4(f *testing.F) {
	f.Add([]byte{0x44, 0x12, 0x34, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x2F, 0x69, 0xAD, 0xDE, 0x2E, 0x9E, 0x7A, 0xCE})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, field []byte) {
		pin, fill, err := pinblock.ParsePINField4(field)
		if err != nil {
			return
		}
		again, err := pinblock.PINField4(pin, bytes.NewReader(fill[:]))
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again[:], field) {
			t.Fatalf("re-encoded %X, decoded from %X", again, field)
		}
	})
}

func FuzzParsePANField4(f *testing.F) {
	f.Add([]byte{0x44, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x10, 0, 0, 0, 0, 0, 0, 0})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, field []byte) {
		pan, err := pinblock.ParsePANField4(field)
		if err != nil {
			return
		}
		again, err := pinblock.PANField4(pan)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again[:], field) {
			t.Fatalf("re-encoded %X, decoded from %X", again, field)
		}
	})
}

// FuzzFormat4RoundTrip checks decrypt(encrypt(pin)) == pin for any PIN, PAN,
// key and fill the encoder accepts.
func FuzzFormat4RoundTrip(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 16), "1234", "4111111111111111", []byte("fillfill"))
	f.Add(bytes.Repeat([]byte{2}, 32), "123456789012", "432198765432109870", []byte("01234567"))
	f.Fuzz(func(t *testing.T, key []byte, pinDigits, pan string, fill []byte) {
		pin, err := pinblock.ParsePIN(pinDigits)
		if err != nil {
			return
		}
		b, err := pinblock.EncryptFormat4(key, pin, pan, bytes.NewReader(fill))
		if err != nil {
			return
		}
		got, err := pinblock.DecryptFormat4(key, b, pan)
		if err != nil || got != pin {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
