package dukpt_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/posgate/posgate/p2pe/dukpt"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// Vectors: ANSI X9.24-3-2017 supplement test vectors, as quoted in
// ../shared/vectors/CRYPTO_VECTORS.md (AES-128 BDK).
func TestAES128Vectors(t *testing.T) {
	bdk := unhex(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1")
	var ikid [8]byte
	copy(ikid[:], unhex(t, "1234567890123456"))
	ik, err := dukpt.AESInitialKey(bdk, ikid)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(ik); !strings.EqualFold(got, "1273671EA26AC29AFA4D1084127652A1") {
		t.Fatalf("initial key %s", got)
	}
	d := dukpt.AESDerivationData(dukpt.UsageInitialKey, dukpt.AlgAES128, 1, dukpt.NewAESKSN(ikid, 0), 0)
	if got := hex.EncodeToString(d[:]); !strings.EqualFold(got, "01018001000200801234567890123456") {
		t.Fatalf("IK derivation data %s", got)
	}
	tests := []struct {
		counter          uint32
		tk, pin, mac, de string
	}{
		{1, "4F21B565BAD9835E112B6465635EAE44", "AF8CB133A78F8DC2D1359F18527593FB", "A2DC23DE6FDE0824A2BC321E08E4B8B7", "A35C412EFD41FDB98B69797C02DCD08F"},
		{2, "2F34D68DE10F68D38091A73B9E7C437C", "D30BDC73EC9714B000BEC66BDB7B6D09", "484C3B06E8562704528CD5B46FB12FB6", "D639514AA33AC43AD9229E433D6D4E5B"},
		{8, "718EE6CF0B27E53D5F7AF99C4D8146A2", "4D9DF3FBEE3448FC3E676D04320A90F5", "6FD572E5D59E618875F193484F9178FB", "650F34204ABD4E57764D61AC3D266FB1"},
		{0x0001FFFE, "E21E8C8D347F8561A2BE752DAA85A111", "", "", ""},
		{0x00020000, "F7AE9025468A25D37B7249CFFED224C8", "", "", ""},
		{0xFFFF0000, "F6BA59389BD14A9855BE9727E7C52E3C", "", "", ""},
	}
	for _, tt := range tests {
		ksn := dukpt.NewAESKSN(ikid, tt.counter)
		tk, err := dukpt.AESTransactionKey(ik, ksn)
		if err != nil {
			t.Fatalf("counter %08X: %v", tt.counter, err)
		}
		if got := hex.EncodeToString(tk); !strings.EqualFold(got, tt.tk) {
			t.Errorf("counter %08X transaction key %s, want %s", tt.counter, got, tt.tk)
		}
		for _, w := range []struct {
			usage dukpt.KeyUsage
			want  string
		}{{dukpt.UsagePINEncryption, tt.pin}, {dukpt.UsageMACGenerate, tt.mac}, {dukpt.UsageDataEncrypt, tt.de}} {
			if w.want == "" {
				continue
			}
			k, err := dukpt.AESWorkingKey(ik, ksn, w.usage, dukpt.AlgAES128)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(k); !strings.EqualFold(got, w.want) {
				t.Errorf("counter %08X usage %04X: %s, want %s", tt.counter, uint16(w.usage), got, w.want)
			}
		}
	}
}

func TestAES256Vectors(t *testing.T) {
	bdk := unhex(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1")
	var ikid [8]byte
	copy(ikid[:], unhex(t, "1234567890123456"))
	ik, err := dukpt.AESInitialKey(bdk, ikid)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(ik); !strings.EqualFold(got, "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F") {
		t.Fatalf("initial key %s", got)
	}
	ksn := dukpt.NewAESKSN(ikid, 1)
	tk, err := dukpt.AESTransactionKey(ik, ksn)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(tk); !strings.EqualFold(got, "54AC2B32B145EA4A554CB8BC44B17467063A799856B1CCC2A138D36E8DBF78B3") {
		t.Fatalf("transaction key %s", got)
	}
	pin, err := dukpt.AESWorkingKey(ik, ksn, dukpt.UsagePINEncryption, dukpt.AlgAES128)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(pin); !strings.EqualFold(got, "09C9C432966811D6B2C3336BAC1B1202") {
		t.Fatalf("PIN key %s", got)
	}
}

func TestAESCounterRules(t *testing.T) {
	var ikid [8]byte
	if err := dukpt.NewAESKSN(ikid, 0).Validate(); err == nil {
		t.Fatal("counter 0 accepted")
	}
	if err := dukpt.NewAESKSN(ikid, 0x0001FFFF).Validate(); err == nil {
		t.Fatal("17 one-bits accepted")
	}
	if err := dukpt.NewAESKSN(ikid, 0xFFFF0000).Validate(); err != nil {
		t.Fatalf("16 one-bits refused: %v", err)
	}
	next, err := dukpt.NextAESCounter(0x0000FFFF)
	if err != nil || next != 0x00010000 {
		t.Fatalf("next after 0000FFFF = %08X, %v", next, err)
	}
	if _, err := dukpt.NextAESCounter(0xFFFF0000); err == nil {
		t.Fatal("counter after FFFF0000 should be exhausted")
	}
}
