package cryptogram_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/cryptogram/cryptogramtest"
)

func TestPublishedVectors(t *testing.T) {
	for _, v := range cryptogramtest.Load(t) {
		t.Run(v.Name, func(t *testing.T) {
			if kcv, _ := cryptogram.KCV(v.IMK); !bytes.Equal(kcv[:2], []byte{0x08, 0xD7}) {
				t.Fatalf("IMK KCV = %X, want 08D7", kcv[:2])
			}
			mk, err := cryptogram.DeriveICCMasterKeyA(v.IMK, v.PAN, v.PSN)
			if err != nil {
				t.Fatalf("derive ICC MK: %v", err)
			}
			if v.ICCMKKCV != nil {
				if kcv, _ := cryptogram.KCV(mk); !bytes.Equal(kcv[:2], v.ICCMKKCV) {
					t.Fatalf("ICC MK KCV = %X, want %X", kcv[:2], v.ICCMKKCV)
				}
			}
			sk, err := cryptogram.DeriveSessionKey(mk, v.R)
			if err != nil {
				t.Fatalf("derive session key: %v", err)
			}
			if kcv, _ := cryptogram.KCV(sk); !bytes.Equal(kcv[:2], v.SKKCV) {
				t.Fatalf("session key KCV = %X, want %X", kcv[:2], v.SKKCV)
			}
			arqc, err := cryptogram.GenerateAC(sk, v.Data)
			if err != nil || arqc != v.ARQC {
				t.Fatalf("ARQC = %X, %v; want %X", arqc, err, v.ARQC)
			}
			if err := cryptogram.VerifyAC(sk, v.Data, v.ARQC); err != nil {
				t.Fatalf("verify ARQC: %v", err)
			}
			if v.ARPC1MK != nil {
				arpc, err := cryptogram.ARPC1(mk, v.ARQC, [2]byte{})
				if err != nil || !bytes.Equal(arpc[:], v.ARPC1MK) {
					t.Fatalf("ARPC1 under ICC MK = %X, %v; want %X", arpc, err, v.ARPC1MK)
				}
			}
			if v.ARPC1SK != nil {
				arpc, err := cryptogram.ARPC1(sk, v.ARQC, [2]byte{})
				if err != nil || !bytes.Equal(arpc[:], v.ARPC1SK) {
					t.Fatalf("ARPC1 under session key = %X, %v; want %X", arpc, err, v.ARPC1SK)
				}
			}
			if v.ARPC2 != nil {
				arpc, err := cryptogram.ARPC2(sk, v.ARQC, [4]byte(v.CSU), v.Prop)
				if err != nil || !bytes.Equal(arpc[:], v.ARPC2) {
					t.Fatalf("ARPC2 = %X, %v; want %X", arpc, err, v.ARPC2)
				}
			}
		})
	}
}

func TestVerifyACTampered(t *testing.T) {
	v := cryptogramtest.Load(t)[0]
	mk, _ := cryptogram.DeriveICCMasterKeyA(v.IMK, v.PAN, v.PSN)
	sk, _ := cryptogram.DeriveSessionKey(mk, v.R)
	tests := []struct {
		name string
		data []byte
		arqc [8]byte
	}{
		{"flipped_cryptogram_bit", v.Data, func() [8]byte { a := v.ARQC; a[7] ^= 1; return a }()},
		{"flipped_data_bit", func() []byte { d := bytes.Clone(v.Data); d[0] ^= 0x80; return d }(), v.ARQC},
		{"extra_data_byte", append(bytes.Clone(v.Data), 0x00), v.ARQC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := cryptogram.VerifyAC(sk, tc.data, tc.arqc); !errors.Is(err, cryptogram.ErrMismatch) {
				t.Fatalf("verify = %v, want ErrMismatch", err)
			}
		})
	}
}

func TestOptionAData(t *testing.T) {
	tests := []struct {
		name string
		pan  string
		psn  byte
		want string
		err  error
	}{
		{"seventeen_digits", "12345678901234567", 0x45, "4567890123456745", nil},
		{"sixteen_digits", "4761739001010010", 0x01, "6173900101001001", nil},
		{"short_pan_left_padded", "123456789012", 0x00, "0012345678901200", nil},
		{"non_digit", "4761x39001010010", 0, "", cryptogram.ErrPAN},
		{"too_long", "12345678901234567890", 0, "", cryptogram.ErrPAN},
		{"empty", "", 0, "", cryptogram.ErrPAN},
		{"bad_psn", "4761739001010010", 0x4A, "", cryptogram.ErrPSN},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y, err := cryptogram.OptionAData(tc.pan, tc.psn)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tc.err)
			}
			if err == nil && (func() string { return hexs(y[:]) })() != tc.want {
				t.Fatalf("Y = %X, want %s", y, tc.want)
			}
		})
	}
}

func hexs(b []byte) string {
	const d = "0123456789ABCDEF"
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		out = append(out, d[x>>4], d[x&0xF])
	}
	return string(out)
}

func TestSessionKeyDataAndR(t *testing.T) {
	r := cryptogram.ACSessionR(0x0102)
	if r != [8]byte{1, 2} {
		t.Fatalf("ACSessionR = %X", r)
	}
	d := cryptogram.SessionKeyData([8]byte{0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56})
	if got := hexs(d[:]); got != "1234F078901234561234"+"0F78901234"+"56" {
		t.Fatalf("SessionKeyData = %s", got)
	}
}

func TestPad2AndParity(t *testing.T) {
	if got := hexs(cryptogram.Pad2([]byte{1, 2, 3, 4, 5, 6, 7, 8})); got != "0102030405060708"+"8000000000000000" {
		t.Fatalf("Pad2 of a full block = %s", got)
	}
	if got := hexs(cryptogram.Pad2([]byte{1})); got != "0180000000000000" {
		t.Fatalf("Pad2 = %s", got)
	}
	k := []byte{0x00, 0x01, 0xFE, 0xFF}
	cryptogram.SetParity(k)
	if got := hexs(k); got != "0101FEFE" {
		t.Fatalf("SetParity = %s", got)
	}
}

func TestBadKeys(t *testing.T) {
	for _, n := range []int{0, 8, 24} {
		if _, err := cryptogram.MAC(make([]byte, n), nil); !errors.Is(err, cryptogram.ErrKeyLength) {
			t.Fatalf("MAC with %d-byte key: %v", n, err)
		}
		if _, err := cryptogram.DeriveSessionKey(make([]byte, n), [8]byte{}); !errors.Is(err, cryptogram.ErrKeyLength) {
			t.Fatalf("session key with %d-byte key: %v", n, err)
		}
	}
	if _, err := cryptogram.ARPC2(make([]byte, 16), [8]byte{}, [4]byte{}, make([]byte, 9)); !errors.Is(err, cryptogram.ErrInput) {
		t.Fatalf("ARPC2 with 9 bytes of proprietary data: %v", err)
	}
}

func BenchmarkVerifyAC(b *testing.B) {
	v := cryptogramtest.Load(b)[0]
	mk, _ := cryptogram.DeriveICCMasterKeyA(v.IMK, v.PAN, v.PSN)
	data := bytes.Repeat(v.Data, 2)
	arqc, _ := cryptogram.GenerateAC(mk, data)
	b.ReportAllocs()
	for b.Loop() {
		sk, err := cryptogram.DeriveSessionKey(mk, v.R)
		if err != nil {
			b.Fatal(err)
		}
		_ = cryptogram.VerifyAC(sk, data, arqc)
	}
}
