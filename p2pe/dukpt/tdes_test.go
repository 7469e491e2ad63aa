package dukpt_test

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"errors"
	"fmt"
	"testing"

	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/internal/vectors"
	"github.com/posgate/posgate/p2pe/mac"
	"github.com/posgate/posgate/p2pe/pinblock"
)

// tdesCBC encrypts data (a multiple of 8 bytes) with two-key TDES-CBC, IV 0.
func tdesCBC(t *testing.T, key, data []byte) []byte {
	t.Helper()
	k := append(append([]byte(nil), key...), key[:8]...)
	c, err := des.NewTripleDESCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(data))
	cipher.NewCBCEncrypter(c, make([]byte, 8)).CryptBlocks(out, data)
	return out
}

// TestTDESVectorFile checks every row of testdata/vectors/dukpt_tdes.txt:
// transaction key, encrypted PIN block, request and response MACs and, where
// given, the encrypted request data.
func TestTDESVectorFile(t *testing.T) {
	recs := vectors.Load(t, "dukpt_tdes.txt")
	head := recs[0]
	bdk := head.Hex(t, "BDK")
	iksn, err := dukpt.ParseTDESKSN(head.Hex(t, "IKSN"))
	if err != nil {
		t.Fatal(err)
	}
	ipek, err := dukpt.TDESInitialKey(bdk, iksn)
	if err != nil {
		t.Fatal(err)
	}
	if want := head.Hex(t, "IPEK"); !bytes.Equal(ipek, want) {
		t.Fatalf("IPEK %X, want %X", ipek, want)
	}
	pin, err := pinblock.ParsePIN(head.Str(t, "PIN"))
	if err != nil {
		t.Fatal(err)
	}
	pan := head.Str(t, "PAN")
	clear, err := pinblock.EncodeFormat0(pin, pan)
	if err != nil {
		t.Fatal(err)
	}
	if want := head.Hex(t, "CLEARPIN"); !bytes.Equal(clear[:], want) {
		t.Fatalf("clear PIN block %X, want %X", clear, want)
	}
	masks := []struct {
		usage dukpt.KeyUsage
		name  string
	}{
		{dukpt.UsagePINEncryption, "MASK_PIN"},
		{dukpt.UsageMACGenerate, "MASK_MACREQ"},
		{dukpt.UsageMACVerify, "MASK_MACRESP"},
		{dukpt.UsageDataEncrypt, "MASK_DATAREQ"},
		{dukpt.UsageDataDecrypt, "MASK_DATARESP"},
	}
	for _, m := range masks {
		got, err := dukpt.TDESVariantMask(m.usage)
		if err != nil {
			t.Fatal(err)
		}
		if want := head.Hex(t, m.name); !bytes.Equal(got[:], want) {
			t.Fatalf("%s = %X, want %X", m.name, got, want)
		}
	}
	macData := []byte(head.Str(t, "MACDATA"))
	padded := make([]byte, (len(macData)+7)/8*8)
	copy(padded, macData)

	dataRows := 0
	for _, r := range recs[1:] {
		t.Run("ksn_"+r.Str(t, "KSN"), func(t *testing.T) {
			ksn, err := dukpt.ParseTDESKSN(r.Hex(t, "KSN"))
			if err != nil {
				t.Fatal(err)
			}
			tk, err := dukpt.TDESTransactionKey(ipek, ksn)
			if err != nil {
				t.Fatal(err)
			}
			if want := r.Hex(t, "TK"); !bytes.Equal(tk, want) {
				t.Fatalf("transaction key %X, want %X", tk, want)
			}

			pinKey, err := dukpt.TDESPINKey(ipek, ksn)
			if err != nil {
				t.Fatal(err)
			}
			epb, err := pinblock.EncryptFormat0(pinKey, pin, pan)
			if err != nil {
				t.Fatal(err)
			}
			if want := r.Hex(t, "PINBLOCK"); !bytes.Equal(epb, want) {
				t.Fatalf("PIN block %X, want %X", epb, want)
			}
			back, err := pinblock.DecryptFormat0(pinKey, epb, pan)
			if err != nil || back != pin {
				t.Fatalf("PIN block does not decrypt back: %v", err)
			}

			for _, m := range []struct {
				name string
				key  func([]byte, dukpt.TDESKSN) ([]byte, error)
			}{{"MACREQ", dukpt.TDESMACRequestKey}, {"MACRESP", dukpt.TDESMACResponseKey}} {
				k, err := m.key(ipek, ksn)
				if err != nil {
					t.Fatal(err)
				}
				got, err := mac.Retail(k, macData)
				if err != nil {
					t.Fatal(err)
				}
				if want := r.Hex(t, m.name); !bytes.Equal(got[:4], want) {
					t.Fatalf("%s %X, want %X", m.name, got[:4], want)
				}
			}

			if r.Has("DATAREQ") {
				dataRows++
				k, err := dukpt.TDESDataRequestKey(ipek, ksn)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := tdesCBC(t, k, padded), r.Hex(t, "DATAREQ"); !bytes.Equal(got, want) {
					t.Fatalf("request data %X, want %X", got, want)
				}
			}
		})
	}
	if len(recs)-1 != 6 || dataRows != 3 {
		t.Fatalf("%d rows with %d data rows, want 6 and 3", len(recs)-1, dataRows)
	}
}

// TestTDESWorkingKeyStructure checks how each variant relates to the
// transaction key: the plain variants are tk XOR mask, the data variants are
// the one-way step over it, and the named helpers agree with TDESWorkingKey.
func TestTDESWorkingKeyStructure(t *testing.T) {
	ipek := bytes.Repeat([]byte{0x5A}, 16)
	ksn, err := dukpt.ParseTDESKSNHex("FFFF9876543210E00005")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := dukpt.TDESTransactionKey(ipek, ksn)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		usage   dukpt.KeyUsage
		named   func([]byte, dukpt.TDESKSN) ([]byte, error)
		oneWay  bool
		wantErr error
	}{
		{"pin", dukpt.UsagePINEncryption, dukpt.TDESPINKey, false, nil},
		{"mac_request", dukpt.UsageMACGenerate, dukpt.TDESMACRequestKey, false, nil},
		{"mac_response", dukpt.UsageMACVerify, dukpt.TDESMACResponseKey, false, nil},
		{"data_request", dukpt.UsageDataEncrypt, dukpt.TDESDataRequestKey, true, nil},
		{"data_response", dukpt.UsageDataDecrypt, dukpt.TDESDataResponseKey, true, nil},
		{"no_variant_for_key_encryption", dukpt.UsageKeyEncryption, nil, false, dukpt.ErrUsage},
		{"no_variant_for_mac_both", dukpt.UsageMACBoth, nil, false, dukpt.ErrUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := dukpt.TDESWorkingKey(ipek, ksn, tt.usage)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			named, err := tt.named(ipek, ksn)
			if err != nil || !bytes.Equal(named, k) {
				t.Fatalf("named helper differs: %v", err)
			}
			m, _ := dukpt.TDESVariantMask(tt.usage)
			v := make([]byte, 16)
			for i := range v {
				v[i] = tk[i] ^ m[i]
			}
			if tt.oneWay {
				// One-way step: each half TDES-ECB encrypted under the
				// variant key itself (two-key TDES, K1 K2 K1).
				c, err := des.NewTripleDESCipher(append(append([]byte(nil), v...), v[:8]...))
				if err != nil {
					t.Fatal(err)
				}
				ow := make([]byte, 16)
				c.Encrypt(ow[:8], v[:8])
				c.Encrypt(ow[8:], v[8:])
				v = ow
			}
			if !bytes.Equal(k, v) {
				t.Fatalf("working key %X, want %X", k, v)
			}
		})
	}
}

func TestTDESKSN(t *testing.T) {
	tests := []struct {
		name    string
		ksn     string
		counter uint32
		wantErr error
	}{
		{"counter_one", "FFFF9876543210E00001", 1, nil},
		{"counter_high_bit", "FFFF9876543210F00000", 0x100000, nil},
		{"nine_bits", "FFFF9876543210EFF800", 0x0FF800, nil},
		{"ten_bits", "FFFF9876543210FFF800", 0x1FF800, nil},
		{"zero", "FFFF9876543210E00000", 0, dukpt.ErrCounterZero},
		{"eleven_bits", "FFFF9876543210FFFC00", 0x1FFC00, dukpt.ErrCounterBits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := dukpt.ParseTDESKSNHex(tt.ksn)
			if err != nil {
				t.Fatal(err)
			}
			if k.Counter() != tt.counter {
				t.Fatalf("counter %06X, want %06X", k.Counter(), tt.counter)
			}
			if err := k.Validate(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate = %v, want %v", err, tt.wantErr)
			}
			if k.String() != tt.ksn {
				t.Fatalf("String %s", k)
			}
			if k.Initial().String() != "FFFF9876543210E00000" {
				t.Fatalf("Initial %s", k.Initial())
			}
			if k.WithCounter(tt.counter) != k {
				t.Fatal("WithCounter(Counter()) changes the KSN")
			}
			if tt.wantErr != nil {
				if _, err := dukpt.TDESTransactionKey(make([]byte, 16), k); !errors.Is(err, tt.wantErr) {
					t.Fatalf("TDESTransactionKey err = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
	for _, n := range []int{9, 11} {
		if _, err := dukpt.ParseTDESKSN(make([]byte, n)); !errors.Is(err, dukpt.ErrKSNLength) {
			t.Fatalf("%d-byte KSN: %v", n, err)
		}
	}
	if _, err := dukpt.ParseTDESKSNHex("zz"); err == nil {
		t.Fatal("bad hex accepted")
	}
}

func TestTDESKeyLengths(t *testing.T) {
	ksn, _ := dukpt.ParseTDESKSNHex("FFFF9876543210E00001")
	for _, n := range []int{8, 15, 24} {
		if _, err := dukpt.TDESInitialKey(make([]byte, n), ksn); !errors.Is(err, dukpt.ErrKeyLength) {
			t.Errorf("BDK of %d bytes: %v", n, err)
		}
		if _, err := dukpt.TDESTransactionKey(make([]byte, n), ksn); !errors.Is(err, dukpt.ErrKeyLength) {
			t.Errorf("IPEK of %d bytes: %v", n, err)
		}
		if _, err := dukpt.TDESWorkingKeyFromTransactionKey(make([]byte, n), dukpt.UsagePINEncryption); !errors.Is(err, dukpt.ErrKeyLength) {
			t.Errorf("transaction key of %d bytes: %v", n, err)
		}
	}
}

func TestNextTDESCounter(t *testing.T) {
	tests := []struct {
		name    string
		in      uint32
		want    uint32
		wantErr error
	}{
		{"from_zero", 0, 1, nil},
		{"plain_increment", 1, 2, nil},
		{"ten_bits_skip", 0x0003FF, 0x000400, nil},
		{"nine_bits_increment", 0x0001FF, 0x000200, nil},
		{"last_counter", 0x1FF800, 0, dukpt.ErrExhausted},
		{"too_many_bits", 0x0007FF, 0, dukpt.ErrCounterBits},
		{"wider_than_21_bits", 0x200000, 0, dukpt.ErrCounterBits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dukpt.NextTDESCounter(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("next %06X, want %06X", got, tt.want)
			}
		})
	}
}

// TestTDESCounterWalk walks every counter from the first to exhaustion and
// checks each is valid, strictly increasing, and that the number of values
// is the X9.24-1 total of counters with 1 to 10 one-bits in 21 bits.
func TestTDESCounterWalk(t *testing.T) {
	ksn, _ := dukpt.ParseTDESKSNHex("FFFF9876543210E00000")
	var err error
	n := 0
	prev := uint32(0)
	for {
		ksn, err = ksn.Next()
		if errors.Is(err, dukpt.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := ksn.Validate(); err != nil {
			t.Fatalf("counter %06X invalid: %v", ksn.Counter(), err)
		}
		if ksn.Counter() <= prev {
			t.Fatalf("counter %06X after %06X", ksn.Counter(), prev)
		}
		if ksn.Initial().String() != "FFFF9876543210E00000" {
			t.Fatal("Next changed the initial KSN")
		}
		prev = ksn.Counter()
		n++
	}
	// sum_{k=1..10} C(21,k) = 1048575 (2^20 - 1): half of 2^21 - 1 minus
	// the symmetric remainder.
	want := 0
	c := 1
	for k := 1; k <= 10; k++ {
		c = c * (21 - k + 1) / k
		want += c
	}
	if n != want {
		t.Fatalf("%d counters, want %d", n, want)
	}
}

func TestAESKSNNext(t *testing.T) {
	var ikid [8]byte
	copy(ikid[:], []byte{0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56})
	tests := []struct {
		name    string
		in      uint32
		want    uint32
		wantErr error
	}{
		{"from_zero", 0, 1, nil},
		{"sixteen_bits_skip", 0x0000FFFF, 0x00010000, nil},
		{"exhausted", 0xFFFF0000, 0, dukpt.ErrExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := dukpt.NewAESKSN(ikid, tt.in).Next()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if k.Counter() != tt.want || k.InitialKeyID() != ikid {
				t.Fatalf("next %s", k)
			}
		})
	}
}

func BenchmarkTDESTransactionKey(b *testing.B) {
	ipek := bytes.Repeat([]byte{0x6A}, 16)
	ksn, _ := dukpt.ParseTDESKSNHex("FFFF9876543210EFF800")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dukpt.TDESTransactionKey(ipek, ksn); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleTDESKSN_Next() {
	ksn, _ := dukpt.ParseTDESKSNHex("FFFF9876543210E003FF")
	next, _ := ksn.Next()
	fmt.Println(next)
	// Output: FFFF9876543210E00400
}
