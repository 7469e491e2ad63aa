package cryptogram_test

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv/cryptogram"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// TestCMACPublished checks the CMAC against the published AES-CMAC
// examples of NIST SP 800-38B (Appendix D; the AES-128 ones are also RFC
// 4493 section 4).
func TestCMACPublished(t *testing.T) {
	const (
		k128 = "2B7E151628AED2A6ABF7158809CF4F3C"
		k192 = "8E73B0F7DA0E6452C810F32B809079E562F8EAD2522C6B7B"
		k256 = "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4"
		m16  = "6BC1BEE22E409F96E93D7E117393172A"
		m40  = m16 + "AE2D8A571E03AC9C9EB76FAC45AF8E51" + "30C81C46A35CE411"
		m64  = m16 + "AE2D8A571E03AC9C9EB76FAC45AF8E51" + "30C81C46A35CE411E5FBC1191A0A52EF" + "F69F2445DF4F9B17AD2B417BE66C3710"
	)
	tests := []struct {
		name, key, msg, want string
	}{
		{"aes128_empty", k128, "", "BB1D6929E95937287FA37D129B756746"},
		{"aes128_one_block", k128, m16, "070A16B46B4D4144F79BDD9DD04A287C"},
		{"aes128_40_bytes", k128, m40, "DFA66747DE9AE63030CA32611497C827"},
		{"aes128_four_blocks", k128, m64, "51F0BEBF7E3B9D92FC49741779363CFE"},
		{"aes192_empty", k192, "", "D17DDF46ADAACDE531CAC483DE7A9367"},
		{"aes192_one_block", k192, m16, "9E99A7BF31E710900662F65E617C5184"},
		{"aes256_empty", k256, "", "028962F61B7BF89EFC6B551F4667D983"},
		{"aes256_one_block", k256, m16, "28A7023F452E8F82BD4BF28D8C37C35C"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cryptogram.CMAC(unhex(t, tc.key), unhex(t, tc.msg))
			if err != nil || hexs(got[:]) != tc.want {
				t.Fatalf("CMAC = %X, %v; want %s", got, err, tc.want)
			}
			mac, err := cryptogram.MACAES(unhex(t, tc.key), unhex(t, tc.msg))
			if err != nil || hexs(mac[:]) != tc.want[:16] {
				t.Fatalf("MACAES = %X, %v; want the CMAC's leftmost 8 bytes %s", mac, err, tc.want[:16])
			}
		})
	}
}

// TestAESThirdPartyValues checks option C and the AES session key against
// values another, independent EMV implementation records for its CV '6'
// (AES) profile: the card42 project's AesVectorTest (EMV 4.4 Book 2
// A1.3.1 and A1.4.3, its values computed with OpenSSL). They are not
// EMVCo-published vectors; EMVCo publishes none for AES.
func TestAESThirdPartyValues(t *testing.T) {
	key := unhex(t, "0F0E0D0C0B0A09080706050403020100")
	t.Run("session_key_atc", func(t *testing.T) {
		sk, err := cryptogram.DeriveSessionKeyAES(key, cryptogram.ACSessionRAES(0x0001))
		if err != nil || hexs(sk) != "F06C204C70D2AD0CD1FA3B8CE15958F8" {
			t.Fatalf("SK = %X, %v", sk, err)
		}
	})
	t.Run("session_key_cryptogram_r", func(t *testing.T) {
		r := cryptogram.ExtendR([8]byte(unhex(t, "AABBCCDDEEFF0011")))
		sk, err := cryptogram.DeriveSessionKeyAES(key, r)
		if err != nil || hexs(sk) != "C1994753F99E6196418C14F7DD5F1AF9" {
			t.Fatalf("SK = %X, %v", sk, err)
		}
	})
	t.Run("option_c_y", func(t *testing.T) {
		y, err := cryptogram.OptionCData("1234567890", 0x00)
		if err != nil || hexs(y[:]) != "00000000000000000000123456789000" {
			t.Fatalf("Y = %X, %v", y, err)
		}
	})
	t.Run("option_c_aes128", func(t *testing.T) {
		mk, err := cryptogram.DeriveICCMasterKeyC(key, "1234567890", 0x00)
		if err != nil || hexs(mk) != "F5C0A799FFBED1DB4F9BD2E54BF2CFD9" {
			t.Fatalf("MK = %X, %v", mk, err)
		}
		mk, err = cryptogram.DeriveICCMasterKeyC(key, "1234567890", 0x12)
		if err != nil || hexs(mk) != "CBCE431053E9874B1AF0B115D6E04C2A" {
			t.Fatalf("MK with PSN 12 = %X, %v", mk, err)
		}
	})
	t.Run("option_c_both_blocks", func(t *testing.T) {
		// card42 records AES(IMK)[Y] || AES(IMK)[Y XOR FF..] under this
		// 16-byte IMK: the two blocks a 256-bit IMK would take.
		d, err := cryptogram.OptionCDerivationData("1234567890", 0x00, 32)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := aes.NewCipher(key)
		out := make([]byte, 32)
		c.Encrypt(out[:16], d[:16])
		c.Encrypt(out[16:], d[16:])
		if hexs(out) != "F5C0A799FFBED1DB4F9BD2E54BF2CFD9"+"83BC15FBEDDB610DB33F851BAD25B47A" {
			t.Fatalf("blocks = %X", out)
		}
	})
}

// TestAESDerivationShapes restates A1.3.1 and A1.4.3 for every key length
// with the standard library's AES, independently of the package's code
// paths.
func TestAESDerivationShapes(t *testing.T) {
	imk := unhex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	enc := func(k []byte, block []byte) []byte {
		c, err := aes.NewCipher(k)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 16)
		c.Encrypt(out, block)
		return out
	}
	for _, n := range []int{16, 24, 32} {
		k := imk[:n]
		y, err := cryptogram.OptionCData("4761739001010010", 0x01)
		if err != nil {
			t.Fatal(err)
		}
		if hexs(y[:]) != "00000000000000476173900101001001" {
			t.Fatalf("Y = %X", y)
		}
		var ny [16]byte
		for i := range y {
			ny[i] = ^y[i]
		}
		want := append(enc(k, y[:]), enc(k, ny[:])...)[:n]
		mk, err := cryptogram.DeriveICCMasterKeyC(k, "4761739001010010", 0x01)
		if err != nil || !bytes.Equal(mk, want) {
			t.Fatalf("AES-%d MK = %X, %v; want %X", n*8, mk, err, want)
		}
		r := cryptogram.ACSessionRAES(0x1234)
		if hexs(r[:]) != "12340000000000000000000000000000" || r != cryptogram.ExtendR(cryptogram.ACSessionR(0x1234)) {
			t.Fatalf("R = %X", r)
		}
		wantSK := enc(mk, r[:])
		if n > 16 {
			f1, f2 := r, r
			f1[2], f2[2] = 0xF0, 0x0F
			wantSK = append(enc(mk, f1[:]), enc(mk, f2[:])...)[:n]
		}
		sk, err := cryptogram.DeriveSessionKeyAES(mk, r)
		if err != nil || !bytes.Equal(sk, wantSK) {
			t.Fatalf("AES-%d SK = %X, %v; want %X", n*8, sk, err, wantSK)
		}
		arqc := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
		arpc, err := cryptogram.ARPC1AES(sk, arqc, [2]byte{'0', '0'})
		wantARPC := enc(sk, unhex(t, "31320304050607080000000000000000"))[:8]
		if err != nil || !bytes.Equal(arpc[:], wantARPC) {
			t.Fatalf("AES-%d ARPC1 = %X, %v; want %X", n*8, arpc, err, wantARPC)
		}
		arpc2, err := cryptogram.ARPC2AES(sk, arqc, [4]byte{0x00, 0x80, 0, 0}, []byte{0xAA})
		m, _ := cryptogram.CMAC(sk, unhex(t, "0102030405060708 00800000 AA"))
		if err != nil || !bytes.Equal(arpc2[:], m[:4]) {
			t.Fatalf("AES-%d ARPC2 = %X, %v; want %X", n*8, arpc2, err, m[:4])
		}
	}
}

func TestVerifyACAES(t *testing.T) {
	mk, _ := cryptogram.DeriveICCMasterKeyC(unhex(t, "0F0E0D0C0B0A09080706050403020100"), "4761739001010010", 0x01)
	sk, _ := cryptogram.DeriveSessionKeyAES(mk, cryptogram.ACSessionRAES(7))
	data := unhex(t, "000000001000 000000000000 0392 0000048000 0392 261124 00 3A1B2C3D 1980 0007")
	ac, err := cryptogram.GenerateACAES(sk, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := cryptogram.VerifyACAES(sk, data, ac); err != nil {
		t.Fatalf("verify own cryptogram: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		ac   [8]byte
	}{
		{"flipped_cryptogram_bit", data, func() [8]byte { a := ac; a[0] ^= 1; return a }()},
		{"flipped_data_bit", func() []byte { d := bytes.Clone(data); d[5] ^= 0x10; return d }(), ac},
		{"extra_data_byte", append(bytes.Clone(data), 0x80), ac},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := cryptogram.VerifyACAES(sk, tc.data, tc.ac); !errors.Is(err, cryptogram.ErrMismatch) {
				t.Fatalf("verify = %v, want ErrMismatch", err)
			}
		})
	}
	// Under the TDES MAC the same key and data give another value.
	if tdes, err := cryptogram.MAC(sk, data); err != nil || tdes == ac {
		t.Fatalf("TDES MAC under an AES-128 key = %X, %v; must differ from the AES cryptogram", tdes, err)
	}
}

func TestAESBadInput(t *testing.T) {
	for _, n := range []int{0, 8, 15, 20, 33} {
		k := make([]byte, n)
		if _, err := cryptogram.DeriveICCMasterKeyC(k, "4761739001010010", 0); !errors.Is(err, cryptogram.ErrKeyLength) {
			t.Fatalf("option C with %d-byte IMK: %v", n, err)
		}
		if _, err := cryptogram.DeriveSessionKeyAES(k, [16]byte{}); !errors.Is(err, cryptogram.ErrKeyLength) {
			t.Fatalf("session key with %d-byte key: %v", n, err)
		}
		if _, err := cryptogram.MACAES(k, nil); !errors.Is(err, cryptogram.ErrKeyLength) {
			t.Fatalf("MACAES with %d-byte key: %v", n, err)
		}
		if _, err := cryptogram.ARPC1AES(k, [8]byte{}, [2]byte{}); !errors.Is(err, cryptogram.ErrKeyLength) {
			t.Fatalf("ARPC1AES with %d-byte key: %v", n, err)
		}
	}
	key := make([]byte, 16)
	for _, tc := range []struct {
		pan string
		psn byte
		err error
	}{
		{"", 0, cryptogram.ErrPAN},
		{"12345678901234567890", 0, cryptogram.ErrPAN},
		{"4761x39001010010", 0, cryptogram.ErrPAN},
		{"4761739001010010", 0xA0, cryptogram.ErrPSN},
	} {
		if _, err := cryptogram.DeriveICCMasterKeyC(key, tc.pan, tc.psn); !errors.Is(err, tc.err) {
			t.Fatalf("option C of a bad card (%d digits, PSN %02X): %v, want %v", len(tc.pan), tc.psn, err, tc.err)
		}
	}
	if _, err := cryptogram.ARPC2AES(key, [8]byte{}, [4]byte{}, make([]byte, 9)); !errors.Is(err, cryptogram.ErrInput) {
		t.Fatalf("ARPC2AES with 9 bytes of proprietary data: %v", err)
	}
}

// FuzzOptionCData checks that Y packs exactly the PAN and PSN digits,
// right-aligned after zeros, for every accepted input, and that every
// refused input is refused with ErrPAN or ErrPSN.
func FuzzOptionCData(f *testing.F) {
	f.Add("4761739001010010", byte(0x01))
	f.Add("1234567890123456789", byte(0x99))
	f.Add("", byte(0))
	f.Add("12a4", byte(0x1F))
	f.Fuzz(func(t *testing.T, pan string, psn byte) {
		y, err := cryptogram.OptionCData(pan, psn)
		if err != nil {
			if !errors.Is(err, cryptogram.ErrPAN) && !errors.Is(err, cryptogram.ErrPSN) {
				t.Fatalf("error %v is neither ErrPAN nor ErrPSN", err)
			}
			return
		}
		got := hexs(y[:])
		want := strings.Repeat("0", 32-len(pan)-2) + pan + hexs([]byte{psn})
		if got != want {
			t.Fatalf("Y = %s, want %s", got, want)
		}
	})
}

func BenchmarkVerifyACAES(b *testing.B) {
	mk, _ := cryptogram.DeriveICCMasterKeyC(make([]byte, 16), "4761739001010010", 0x01)
	data := bytes.Repeat([]byte{0x5A}, 37)
	sk, _ := cryptogram.DeriveSessionKeyAES(mk, cryptogram.ACSessionRAES(1))
	ac, _ := cryptogram.GenerateACAES(sk, data)
	b.ReportAllocs()
	for b.Loop() {
		sk, err := cryptogram.DeriveSessionKeyAES(mk, cryptogram.ACSessionRAES(1))
		if err != nil {
			b.Fatal(err)
		}
		_ = cryptogram.VerifyACAES(sk, data, ac)
	}
}
