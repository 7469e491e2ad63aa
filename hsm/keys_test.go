package hsm_test

import (
	"bytes"
	"crypto/des"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

func softAESKCV(t testing.TB, k []byte) string {
	return fmt.Sprintf("%X", cmacOneBlock(t, k, make([]byte, 16))[:3])
}

func TestKCV(t *testing.T) {
	tok := hsmtest.Token(t)
	aesKey := unhex(t, "000102030405060708090A0B0C0D0E0F")
	hmacKey := unhex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	m := hmac.New(sha256.New, hmacKey)
	m.Write(make([]byte, 16))
	tests := []struct {
		name   string
		create func(label string) error
		want   string
	}{
		{"aes_general", func(l string) error { return tok.ImportAES(l, aesKey) }, softAESKCV(t, aesKey)},
		{"aes_bdk_derive_only", func(l string) error { return tok.ImportAES(l, aesKey, hsm.UsageBDK) }, softAESKCV(t, aesKey)},
		{"aes_encrypt_only", func(l string) error { return tok.ImportAES(l, aesKey, hsm.UseEncrypt) }, softAESKCV(t, aesKey)},
		{"aes256_bdk", func(l string) error { return tok.ImportAES(l, unhex(t, bdk256), hsm.UsageBDK) }, softAESKCV(t, unhex(t, bdk256))},
		// TR-31:2018 A.7 key with its published KCV.
		{"tdes_tr31_vector", func(l string) error { return tok.ImportTDES(l, unhex(t, "F039121BEC83D26B169BDCD5B22AAF8F")) }, "CB9DEA"},
		{"tdes_bdk", func(l string) error { return tok.ImportTDESBDK(l, unhex(t, tdesBDK)) }, tdesKCV(t, unhex(t, tdesBDK))},
		{"hmac", func(l string) error { return tok.ImportHMAC(l, hmacKey) }, fmt.Sprintf("%X", m.Sum(nil)[:3])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label := hsmtest.Label(t, "kcv")
			if err := tc.create(label); err != nil {
				t.Fatalf("create: %v", err)
			}
			got, err := tok.KCV(label)
			if err != nil {
				t.Fatalf("KCV: %v", err)
			}
			if got != tc.want {
				t.Errorf("KCV = %s, want %s", got, tc.want)
			}
		})
	}
}

func tdesKCV(t testing.TB, k []byte) string {
	c, err := des.NewTripleDESCipher(append(append([]byte{}, k...), k[:8]...))
	if err != nil {
		t.Fatalf("des: %v", err)
	}
	out := make([]byte, 8)
	c.Encrypt(out, out)
	return fmt.Sprintf("%X", out[:3])
}

func TestKeyAttributes(t *testing.T) {
	tok := hsmtest.Token(t)
	tests := []struct {
		name   string
		create func(label string) error
		kind   hsm.KeyKind
		bits   int
		usage  hsm.Usage
	}{
		{"imported_bdk", func(l string) error { return tok.ImportAES(l, unhex(t, bdk128), hsm.UsageBDK) }, hsm.KindAES, 128, hsm.UseDerive},
		{"generated_bdk256", func(l string) error { return tok.GenerateAES(l, 256, hsm.UsageBDK) }, hsm.KindAES, 256, hsm.UseDerive},
		{"generated_aes", func(l string) error { return tok.GenerateAES(l, 128) }, hsm.KindAES, 128, hsm.UsageGeneral},
		{"generated_hmac", func(l string) error { return tok.GenerateHMAC(l, 32) }, hsm.KindHMAC, 256, hsm.UsageMAC},
		{"imported_tdes", func(l string) error { return tok.ImportTDES(l, unhex(t, tdesBDK)) }, hsm.KindTDES, 128, hsm.UseEncrypt | hsm.UseDecrypt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label := hsmtest.Label(t, "attr")
			if err := tc.create(label); err != nil {
				t.Fatalf("create: %v", err)
			}
			ki, err := tok.KeyInfo(label)
			if err != nil {
				t.Fatalf("info: %v", err)
			}
			if !ki.Sensitive || ki.Extractable {
				t.Errorf("sensitive=%v extractable=%v, want true/false", ki.Sensitive, ki.Extractable)
			}
			if ki.Kind != tc.kind || ki.Bits != tc.bits || ki.Usage != tc.usage {
				t.Errorf("kind %v bits %d usage %b, want %v %d %b", ki.Kind, ki.Bits, ki.Usage, tc.kind, tc.bits, tc.usage)
			}
			if v, err := tok.ReadValue(label); err == nil || len(v) != 0 {
				t.Errorf("reading CKA_VALUE succeeded (%d bytes); want an error", len(v))
			}
			if w, err := tok.WrapWith(label); err == nil || len(w) != 0 {
				t.Errorf("wrapping succeeded (%d bytes); want an error", len(w))
			}
		})
	}
}

func TestKeyLifecycle(t *testing.T) {
	tok := hsmtest.Token(t)
	label := hsmtest.Label(t, "life")
	if ok, err := tok.HasKey(label); err != nil || ok {
		t.Fatalf("HasKey before create = %v, %v; want false, nil", ok, err)
	}
	if err := tok.GenerateAES(label, 128); err != nil {
		t.Fatalf("generate: %v", err)
	}
	if ok, err := tok.HasKey(label); err != nil || !ok {
		t.Fatalf("HasKey after create = %v, %v; want true, nil", ok, err)
	}
	exists := []struct {
		name string
		f    func() error
	}{
		{"generate_aes", func() error { return tok.GenerateAES(label, 256) }},
		{"import_aes", func() error { return tok.ImportAES(label, make([]byte, 16)) }},
		{"import_hmac", func() error { return tok.ImportHMAC(label, make([]byte, 32)) }},
		{"generate_hmac", func() error { return tok.GenerateHMAC(label, 32) }},
		{"generate_ecdsa", func() error { return tok.GenerateECDSA(label) }},
		{"import_tdes_bdk", func() error { return tok.ImportTDESBDK(label, make([]byte, 16)) }},
	}
	for _, tc := range exists {
		t.Run("exists_"+tc.name, func(t *testing.T) {
			if err := tc.f(); !errors.Is(err, hsm.ErrKeyExists) {
				t.Fatalf("err = %v, want ErrKeyExists", err)
			}
		})
	}
	keys, err := tok.ListKeys()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var found bool
	for _, k := range keys {
		if k.Label == label {
			found = true
			if k.KCV == "" || k.Kind != hsm.KindAES || k.Bits != 128 {
				t.Errorf("listed %+v", k)
			}
		}
	}
	if !found {
		t.Fatalf("ListKeys misses %q", label)
	}
	if err := tok.DestroyKey(label); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if _, err := tok.KCV(label); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("KCV after destroy: %v, want ErrKeyNotFound", err)
	}
	if err := tok.DestroyKey(label); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("second destroy: %v, want ErrKeyNotFound", err)
	}
}

func TestKeyInputErrors(t *testing.T) {
	tok := hsmtest.Token(t)
	tests := []struct {
		name string
		f    func(label string) error
		want error
	}{
		{"aes_bits", func(l string) error { return tok.GenerateAES(l, 100) }, hsm.ErrKeyLength},
		{"aes_value", func(l string) error { return tok.ImportAES(l, make([]byte, 15)) }, hsm.ErrKeyLength},
		{"hmac_short", func(l string) error { return tok.ImportHMAC(l, make([]byte, 8)) }, hsm.ErrKeyLength},
		{"hmac_gen_long", func(l string) error { return tok.GenerateHMAC(l, 65) }, hsm.ErrKeyLength},
		{"tdes_len", func(l string) error { return tok.ImportTDES(l, make([]byte, 8)) }, hsm.ErrKeyLength},
		{"tdes_bdk_len", func(l string) error { return tok.ImportTDESBDK(l, make([]byte, 24)) }, hsm.ErrKeyLength},
		{"empty_label", func(string) error { return tok.GenerateAES("", 128) }, hsm.ErrInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label := hsmtest.Label(t, "bad")
			if err := tc.f(label); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if ok, _ := tok.HasKey(label); ok {
				t.Fatalf("a key was created")
			}
		})
	}
}

func TestImportKeyFromComponents(t *testing.T) {
	tok := hsmtest.Token(t)
	c1 := unhex(t, "0F0E0D0C0B0A09080706050403020100")
	c2 := unhex(t, "F1F2F3F4F5F6F7F8F9FAFBFCFDFEFFF0")
	key := make([]byte, 16)
	for i := range key {
		key[i] = c1[i] ^ c2[i]
	}
	kcvOf := func(kind hsm.KeyKind, k []byte) []byte {
		switch kind {
		case hsm.KindAES:
			return unhex(t, softAESKCV(t, k))
		case hsm.KindHMAC:
			m := hmac.New(sha256.New, k)
			m.Write(make([]byte, 16))
			return m.Sum(nil)[:3]
		}
		return unhex(t, tdesKCV(t, k))
	}
	bad := []byte{0, 0, 0}
	tests := []struct {
		name  string
		kind  hsm.KeyKind
		comps [][]byte
		kcvs  func(kind hsm.KeyKind) [][]byte
		want  error
	}{
		{"aes_with_final", hsm.KindAES, [][]byte{c1, c2}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1), kcvOf(k, c2), kcvOf(k, key)} }, nil},
		{"aes_components_only", hsm.KindAES, [][]byte{c1, c2}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1), kcvOf(k, c2)} }, nil},
		{"tdes_bdk", hsm.KindTDESBDK, [][]byte{c1, c2}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1), kcvOf(k, c2), kcvOf(k, key)} }, nil},
		{"two_byte_kcvs", hsm.KindTDES, [][]byte{c1, c2}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1)[:2], kcvOf(k, c2)[:2]} }, nil},
		{"bad_component_kcv", hsm.KindAES, [][]byte{c1, c2}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1), bad} }, hsm.ErrKCVMismatch},
		{"bad_final_kcv", hsm.KindAES, [][]byte{c1, c2}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1), kcvOf(k, c2), bad} }, hsm.ErrKCVMismatch},
		{"generated_components_without_kcvs", hsm.KindHMAC, [][]byte{append(c1, c2...), append(c2, c1...)}, func(hsm.KeyKind) [][]byte { return nil }, nil},
		{"one_component", hsm.KindAES, [][]byte{c1}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1)} }, hsm.ErrInput},
		{"kcv_count", hsm.KindAES, [][]byte{c1, c2}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1)} }, hsm.ErrInput},
		{"length_mismatch", hsm.KindAES, [][]byte{c1, c2[:8]}, func(k hsm.KeyKind) [][]byte { return [][]byte{kcvOf(k, c1), bad} }, hsm.ErrKeyLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label := hsmtest.Label(t, "comp")
			err := tok.ImportKeyFromComponents(label, tc.kind, tc.comps, tc.kcvs(tc.kind))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			ok, herr := tok.HasKey(label)
			if herr != nil {
				t.Fatalf("HasKey: %v", herr)
			}
			if ok != (tc.want == nil) {
				t.Fatalf("key created = %v, want %v", ok, tc.want == nil)
			}
			if tc.want != nil {
				return
			}
			got, err := tok.KCV(label)
			if err != nil {
				t.Fatalf("KCV: %v", err)
			}
			sum := make([]byte, len(tc.comps[0]))
			for _, c := range tc.comps {
				for i := range sum {
					sum[i] ^= c[i]
				}
			}
			if want := fmt.Sprintf("%X", kcvOf(tc.kind, sum)); got != want {
				t.Errorf("assembled key KCV %s, want %s", got, want)
			}
		})
	}
}

// TestSessionObjectsShared checks that a key derived on one pooled session
// is usable from another.
func TestSessionObjectsShared(t *testing.T) {
	tok := hsmtest.Token(t)
	label := importBDK(t, tok, bdk128)
	ksn := ksnOf(t, 1)
	got, err := tok.CrossSession(label, ksn, fixed)
	if err != nil {
		t.Fatalf("cross-session use: %v", err)
	}
	want, err := tok.AESDUKPTKey(label, ksn, 0x3002, 0x0002)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	defer want.Destroy()
	w, err := want.Encrypt(nil, fixed)
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	if !bytes.Equal(got, w) {
		t.Errorf("cross-session encryption differs")
	}
}
