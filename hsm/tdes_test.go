package hsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/p2pe/dukpt"
)

// X9.24-1:2009 Annex A vectors (CRYPTO_VECTORS.md).
const (
	tdesBDK  = "0123456789ABCDEFFEDCBA9876543210"
	tdesIPEK = "6AC292FAA1315B4D858AB3A3D7D5933A"
)

func tdesKSN(t testing.TB, s string) dukpt.TDESKSN {
	t.Helper()
	k, err := dukpt.ParseTDESKSNHex(s)
	if err != nil {
		t.Fatalf("KSN: %v", err)
	}
	return k
}

func TestTDESDUKPTVectors(t *testing.T) {
	tok := hsmtest.Token(t)
	label := hsmtest.Label(t, "tdesbdk")
	if err := tok.ImportTDESBDK(label, unhex(t, tdesBDK)); err != nil {
		t.Fatalf("import: %v", err)
	}
	t.Run("ipek", func(t *testing.T) {
		ipek, err := tok.TDESInitialKeyForInjection(label, tdesKSN(t, "FFFF9876543210E00000"))
		if err != nil {
			t.Fatalf("IPEK: %v", err)
		}
		if !bytes.Equal(ipek, unhex(t, tdesIPEK)) {
			t.Errorf("IPEK differs from the X9.24-1 vector")
		}
	})
	// Data: ASCII 4012345678909D987 zero-padded to 24 bytes (test card).
	data := append([]byte("4012345678909D987"), make([]byte, 7)...)
	pinBlock := unhex(t, "041274EDCBA9876F")
	tests := []struct {
		name  string
		ksn   string
		usage dukpt.KeyUsage
		iv    []byte
		ct    string
		want  []byte
	}{
		{"pin_e00001", "FFFF9876543210E00001", dukpt.UsagePINEncryption, nil, "1B9C1845EB993A7A", pinBlock},
		{"pin_e00002", "FFFF9876543210E00002", dukpt.UsagePINEncryption, nil, "10A01C8D02C69107", pinBlock},
		{"pin_eff800", "FFFF9876543210EFF800", dukpt.UsagePINEncryption, nil, "33365F5CC6F23C35", pinBlock},
		{"pin_f00000", "FFFF9876543210F00000", dukpt.UsagePINEncryption, nil, "73EC88AD0AC5830E", pinBlock},
		{"data_e00001", "FFFF9876543210E00001", dukpt.UsageDataEncrypt, make([]byte, 8), "FC0D53B7EA1FDA9EE68AAF2E70D9B9506229BE2AA993F04F", data},
		{"data_e00002", "FFFF9876543210E00002", dukpt.UsageDataEncrypt, make([]byte, 8), "A2B4E70F846E63D68775B7215EB4563DFD3037244C61CC13", data},
		{"data_e00008", "FFFF9876543210E00008", dukpt.UsageDataEncrypt, make([]byte, 8), "5F6584DEAFC51B48A239B51C2DACA97176C01D9CA8EDC33C", data},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tok.DecryptTDESDUKPT(label, tdesKSN(t, tc.ksn), tc.usage, tc.iv, unhex(t, tc.ct))
			if err != nil {
				t.Fatalf("decrypt: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("KSN %s: plaintext differs from the vector", tc.ksn)
			}
		})
	}
}

func TestTDESDUKPTErrors(t *testing.T) {
	tok := hsmtest.Token(t)
	label := hsmtest.Label(t, "tdesbdk")
	if err := tok.ImportTDESBDK(label, unhex(t, tdesBDK)); err != nil {
		t.Fatalf("import: %v", err)
	}
	plain := hsmtest.Label(t, "tdes")
	if err := tok.ImportTDES(plain, unhex(t, tdesBDK)); err != nil {
		t.Fatalf("import: %v", err)
	}
	tests := []struct {
		name  string
		bdk   string
		ksn   string
		usage dukpt.KeyUsage
		iv    []byte
		ct    []byte
		want  error
	}{
		{"no_variant", plain, "FFFF9876543210E00001", dukpt.UsagePINEncryption, nil, make([]byte, 8), hsm.ErrKeyNotFound},
		{"unknown_bdk", "nope", "FFFF9876543210E00001", dukpt.UsagePINEncryption, nil, make([]byte, 8), hsm.ErrKeyNotFound},
		{"bad_usage", label, "FFFF9876543210E00001", dukpt.UsageKeyEncryption, nil, make([]byte, 8), dukpt.ErrUsage},
		{"zero_counter", label, "FFFF9876543210E00000", dukpt.UsagePINEncryption, nil, make([]byte, 8), dukpt.ErrCounterZero},
		{"partial_block", label, "FFFF9876543210E00001", dukpt.UsagePINEncryption, nil, make([]byte, 7), hsm.ErrInput},
		{"bad_iv", label, "FFFF9876543210E00001", dukpt.UsageDataEncrypt, make([]byte, 16), make([]byte, 8), hsm.ErrInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tok.DecryptTDESDUKPT(tc.bdk, tdesKSN(t, tc.ksn), tc.usage, tc.iv, tc.ct)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
