package hsm_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

func TestAESModes(t *testing.T) {
	tok := hsmtest.Token(t)
	key := unhex(t, "2B7E151628AED2A6ABF7158809CF4F3C")
	label := hsmtest.Label(t, "aes")
	if err := tok.ImportAES(label, key); err != nil {
		t.Fatalf("import: %v", err)
	}
	c, _ := aes.NewCipher(key)
	iv := unhex(t, "000102030405060708090A0B0C0D0E0F")
	pt := bytes.Repeat([]byte("sixteen byte blk"), 3)
	wantCBC := make([]byte, len(pt))
	cipher.NewCBCEncrypter(c, iv).CryptBlocks(wantCBC, pt)
	wantECB := aesECB(t, key, pt)

	tests := []struct {
		name string
		enc  func() ([]byte, error)
		dec  func(ct []byte) ([]byte, error)
		want []byte
	}{
		{"ecb", func() ([]byte, error) { return tok.EncryptAESECB(label, pt) }, func(ct []byte) ([]byte, error) { return tok.DecryptAESECB(label, ct) }, wantECB},
		{"cbc", func() ([]byte, error) { return tok.EncryptAESCBC(label, iv, pt) }, func(ct []byte) ([]byte, error) { return tok.DecryptAESCBC(label, iv, ct) }, wantCBC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, err := tc.enc()
			if err != nil {
				t.Fatalf("encrypt: %v", err)
			}
			if !bytes.Equal(ct, tc.want) {
				t.Fatalf("ciphertext %X, want %X", ct, tc.want)
			}
			got, err := tc.dec(ct)
			if err != nil {
				t.Fatalf("decrypt: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("round trip differs")
			}
		})
	}
	errCases := []struct {
		name string
		f    func() error
		want error
	}{
		{"ecb_partial", func() error { _, err := tok.EncryptAESECB(label, pt[:15]); return err }, hsm.ErrInput},
		{"cbc_iv", func() error { _, err := tok.EncryptAESCBC(label, iv[:8], pt); return err }, hsm.ErrInput},
		{"cbc_partial", func() error { _, err := tok.DecryptAESCBC(label, iv, pt[:17]); return err }, hsm.ErrInput},
		{"unknown_key", func() error { _, err := tok.EncryptAESECB("missing", pt); return err }, hsm.ErrKeyNotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f(); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestGCM(t *testing.T) {
	tok := hsmtest.Token(t)
	key := unhex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	label := hsmtest.Label(t, "gcm")
	if err := tok.ImportAES(label, key); err != nil {
		t.Fatalf("import: %v", err)
	}
	other := hsmtest.Label(t, "gcm")
	if err := tok.GenerateAES(other, 256); err != nil {
		t.Fatalf("generate: %v", err)
	}
	pt := []byte("store-and-forward record")
	aad := []byte("record 42")
	sealed, err := tok.SealGCM(label, pt, aad)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	// Interoperates with crypto/cipher.
	c, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(c)
	soft, err := g.Open(nil, sealed[:12], sealed[12:], aad)
	if err != nil || !bytes.Equal(soft, pt) {
		t.Fatalf("crypto/cipher cannot open the token's seal: %v", err)
	}
	again, err := tok.SealGCM(label, pt, aad)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if bytes.Equal(again[:12], sealed[:12]) {
		t.Errorf("two seals used the same nonce")
	}
	flip := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 1; return b }
	tests := []struct {
		name   string
		label  string
		sealed []byte
		aad    []byte
		want   error
	}{
		{"ok", label, sealed, aad, nil},
		{"tampered_nonce", label, flip(0), aad, hsm.ErrDecrypt},
		{"tampered_body", label, flip(14), aad, hsm.ErrDecrypt},
		{"tampered_tag", label, flip(len(sealed) - 1), aad, hsm.ErrDecrypt},
		{"wrong_aad", label, sealed, []byte("record 43"), hsm.ErrDecrypt},
		{"wrong_key", other, sealed, aad, hsm.ErrDecrypt},
		{"truncated", label, sealed[:20], aad, hsm.ErrDecrypt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tok.OpenGCM(tc.label, tc.sealed, tc.aad)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(got, pt) {
				t.Fatalf("plaintext differs")
			}
		})
	}
}

func TestCMAC(t *testing.T) {
	tok := hsmtest.Token(t)
	// NIST SP 800-38B examples (AES-128).
	key := unhex(t, "2B7E151628AED2A6ABF7158809CF4F3C")
	label := hsmtest.Label(t, "cmac")
	if err := tok.ImportAES(label, key); err != nil {
		t.Fatalf("import: %v", err)
	}
	tests := []struct {
		name, msg, want string
	}{
		{"empty", "", "BB1D6929E95937287FA37D129B756746"},
		{"one_block", "6BC1BEE22E409F96E93D7E117393172A", "070A16B46B4D4144F79BDD9DD04A287C"},
		{"five_blocks", "6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411", "DFA66747DE9AE63030CA32611497C827"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tok.CMAC(label, unhex(t, tc.msg))
			if err != nil {
				t.Fatalf("CMAC: %v", err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Errorf("CMAC = %X, want %s", got, tc.want)
			}
		})
	}
}

// TestPANFingerprint checks the token's HMAC against crypto/hmac for the
// fingerprint vector shared with p2pe/fingerprint.
func TestPANFingerprint(t *testing.T) {
	tok := hsmtest.Token(t)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	label := hsmtest.Label(t, "fp")
	if err := tok.ImportHMAC(label, key); err != nil {
		t.Fatalf("import: %v", err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"test_pan", []byte("4111111111111111")},
		{"empty", nil},
		{"long", bytes.Repeat([]byte{0xA5}, 1000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tok.HMACSHA256(label, tc.data)
			if err != nil {
				t.Fatalf("HMAC: %v", err)
			}
			m := hmac.New(sha256.New, key)
			m.Write(tc.data)
			want := m.Sum(nil)
			if !hmac.Equal(got, want) {
				t.Errorf("fingerprint %s, want %s", hex.EncodeToString(got[:16]), hex.EncodeToString(want[:16]))
			}
		})
	}
	if _, err := tok.HMACSHA256("missing-fp-key", nil); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("missing key: %v, want ErrKeyNotFound", err)
	}
}

func TestRandom(t *testing.T) {
	tok := hsmtest.Token(t)
	a, err := tok.Random(32)
	if err != nil {
		t.Fatalf("random: %v", err)
	}
	b, err := tok.Random(32)
	if err != nil {
		t.Fatalf("random: %v", err)
	}
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Errorf("random returned %d bytes, equal twice: %v", len(a), bytes.Equal(a, b))
	}
	if _, err := tok.Random(0); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("Random(0): %v, want ErrInput", err)
	}
}

// TestReplacedKeyIsFoundAgain replaces a key through a second Token (as
// hsmctl would from another process) and checks that the first Token's
// cached handle is looked up again instead of failing.
func TestReplacedKeyIsFoundAgain(t *testing.T) {
	tok := hsmtest.Token(t)
	other, err := hsm.Open(hsmtest.Config())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer other.Close()
	label := hsmtest.Label(t, "rot")
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if err := tok.ImportHMAC(label, k1); err != nil {
		t.Fatalf("import: %v", err)
	}
	mac := func(k []byte) []byte {
		m := hmac.New(sha256.New, k)
		m.Write(fixed)
		return m.Sum(nil)
	}
	got, err := tok.HMACSHA256(label, fixed)
	if err != nil || !hmac.Equal(got, mac(k1)) {
		t.Fatalf("first key: %v", err)
	}
	if err := other.DestroyKey(label); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := other.ImportHMAC(label, k2); err != nil {
		t.Fatalf("re-import: %v", err)
	}
	got, err = tok.HMACSHA256(label, fixed)
	if err != nil {
		t.Fatalf("after replacement: %v", err)
	}
	if !hmac.Equal(got, mac(k2)) {
		t.Errorf("after replacement the old key was used")
	}
}
