package hsm_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/p2pe/dukpt"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func aesECB(t testing.TB, key, block []byte) []byte {
	t.Helper()
	c, err := aes.NewCipher(key)
	if err != nil {
		t.Fatalf("aes key: %v", err)
	}
	out := make([]byte, len(block))
	for i := 0; i < len(block); i += 16 {
		c.Encrypt(out[i:], block[i:i+16])
	}
	return out
}

var (
	probeX = bytes.Repeat([]byte{0x5A}, 16)
	probeY = []byte("posgate probe 16")
	fixed  = []byte("0123456789ABCDEF")
)

// probeWant is what ProbeAESPath returns for a key of value k.
func probeWant(t testing.TB, k []byte) []byte {
	return aesECB(t, aesECB(t, k, probeX), probeY)
}

// Vectors of ANSI X9.24-3-2017 (CRYPTO_VECTORS.md).
const (
	bdk128 = "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	bdk256 = "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1"
	ikid   = "1234567890123456"
)

func importBDK(t testing.TB, tok *hsm.Token, value string) string {
	t.Helper()
	label := hsmtest.Label(t, "bdk")
	if err := tok.ImportAES(label, unhex(t, value), hsm.UsageBDK); err != nil {
		t.Fatalf("import BDK: %v", err)
	}
	return label
}

func ksnOf(t testing.TB, counter uint32) dukpt.AESKSN {
	return dukpt.NewAESKSN([8]byte(unhex(t, ikid)), counter)
}

func TestAESDUKPTVectors(t *testing.T) {
	tok := hsmtest.Token(t)
	b128 := importBDK(t, tok, bdk128)
	b256 := importBDK(t, tok, bdk256)
	type keyCase struct {
		usage dukpt.KeyUsage
		alg   dukpt.KeyAlgorithm
		want  string
	}
	tests := []struct {
		name    string
		bdk     string
		counter uint32
		ik, tk  string
		keys    []keyCase
	}{
		{"aes128_tc_00000001", b128, 1, "1273671EA26AC29AFA4D1084127652A1", "4F21B565BAD9835E112B6465635EAE44", []keyCase{
			{dukpt.UsagePINEncryption, dukpt.AlgAES128, "AF8CB133A78F8DC2D1359F18527593FB"},
			{dukpt.UsageMACGenerate, dukpt.AlgAES128, "A2DC23DE6FDE0824A2BC321E08E4B8B7"},
			{dukpt.UsageDataEncrypt, dukpt.AlgAES128, "A35C412EFD41FDB98B69797C02DCD08F"},
		}},
		{"aes128_tc_00000002", b128, 2, "1273671EA26AC29AFA4D1084127652A1", "2F34D68DE10F68D38091A73B9E7C437C", []keyCase{
			{dukpt.UsagePINEncryption, dukpt.AlgAES128, "D30BDC73EC9714B000BEC66BDB7B6D09"},
			{dukpt.UsageMACGenerate, dukpt.AlgAES128, "484C3B06E8562704528CD5B46FB12FB6"},
			{dukpt.UsageDataEncrypt, dukpt.AlgAES128, "D639514AA33AC43AD9229E433D6D4E5B"},
		}},
		{"aes128_tc_00000008", b128, 8, "1273671EA26AC29AFA4D1084127652A1", "718EE6CF0B27E53D5F7AF99C4D8146A2", []keyCase{
			{dukpt.UsagePINEncryption, dukpt.AlgAES128, "4D9DF3FBEE3448FC3E676D04320A90F5"},
			{dukpt.UsageMACGenerate, dukpt.AlgAES128, "6FD572E5D59E618875F193484F9178FB"},
			{dukpt.UsageDataEncrypt, dukpt.AlgAES128, "650F34204ABD4E57764D61AC3D266FB1"},
		}},
		{"aes128_tc_0001fffe", b128, 0x0001FFFE, "1273671EA26AC29AFA4D1084127652A1", "E21E8C8D347F8561A2BE752DAA85A111", nil},
		{"aes128_tc_00020000", b128, 0x00020000, "1273671EA26AC29AFA4D1084127652A1", "F7AE9025468A25D37B7249CFFED224C8", nil},
		{"aes128_tc_ffff0000", b128, 0xFFFF0000, "1273671EA26AC29AFA4D1084127652A1", "F6BA59389BD14A9855BE9727E7C52E3C", nil},
		{"aes256_tc_00000001", b256, 1, "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F",
			"54AC2B32B145EA4A554CB8BC44B17467063A799856B1CCC2A138D36E8DBF78B3", []keyCase{
				{dukpt.UsagePINEncryption, dukpt.AlgAES128, "09C9C432966811D6B2C3336BAC1B1202"},
			}},
	}
	for _, tc := range tests {
		for _, cached := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s_cached_%v", tc.name, cached), func(t *testing.T) {
				ksn := ksnOf(t, tc.counter)
				ik, tk, err := tok.ProbeAESPath(tc.bdk, ksn, cached, probeX, probeY)
				if err != nil {
					t.Fatalf("derive path: %v", err)
				}
				if want := probeWant(t, unhex(t, tc.ik)); !bytes.Equal(ik, want) {
					t.Errorf("initial key probe = %X, want %X (IK %s)", ik, want, tc.ik)
				}
				if want := probeWant(t, unhex(t, tc.tk)); !bytes.Equal(tk, want) {
					t.Errorf("transaction key probe = %X, want %X (TK %s)", tk, want, tc.tk)
				}
				for _, kc := range tc.keys {
					k, err := tok.AESDUKPTKey(tc.bdk, ksn, kc.usage, kc.alg)
					if err != nil {
						t.Fatalf("working key %04X: %v", uint16(kc.usage), err)
					}
					if kc.usage == dukpt.UsageMACGenerate {
						got, err := k.MAC(fixed)
						if err != nil {
							t.Fatalf("MAC: %v", err)
						}
						if want := cmacOneBlock(t, unhex(t, kc.want), fixed); !bytes.Equal(got, want) {
							t.Errorf("MAC key %04X: CMAC = %X, want %X", uint16(kc.usage), got, want)
						}
					} else {
						got, err := k.Encrypt(nil, fixed)
						if err != nil {
							t.Fatalf("encrypt: %v", err)
						}
						if want := aesECB(t, unhex(t, kc.want), fixed); !bytes.Equal(got, want) {
							t.Errorf("key %04X: E(fixed) = %X, want %X", uint16(kc.usage), got, want)
						}
					}
					if err := k.Destroy(); err != nil {
						t.Fatalf("destroy: %v", err)
					}
				}
			})
		}
	}
}

// cmacOneBlock is AES-CMAC of one complete block in pure Go (SP 800-38B).
func cmacOneBlock(t testing.TB, key, m []byte) []byte {
	l := aesECB(t, key, make([]byte, 16))
	k1 := make([]byte, 16)
	for i := 0; i < 15; i++ {
		k1[i] = l[i]<<1 | l[i+1]>>7
	}
	k1[15] = l[15] << 1
	if l[0]&0x80 != 0 {
		k1[15] ^= 0x87
	}
	x := make([]byte, 16)
	for i := range x {
		x[i] = m[i] ^ k1[i]
	}
	return aesECB(t, key, x)
}

func TestAESInitialKeyForInjection(t *testing.T) {
	tok := hsmtest.Token(t)
	tests := []struct {
		name, bdk, want string
	}{
		{"aes128", bdk128, "1273671EA26AC29AFA4D1084127652A1"},
		{"aes256", bdk256, "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label := importBDK(t, tok, tc.bdk)
			ik, err := tok.AESInitialKeyForInjection(label, [8]byte(unhex(t, ikid)))
			if err != nil {
				t.Fatalf("initial key: %v", err)
			}
			if !bytes.Equal(ik, unhex(t, tc.want)) {
				t.Errorf("initial key differs from the X9.24-3 vector (KCV got %X)", aesECB(t, ik, make([]byte, 16))[:3])
			}
			info, err := tok.KeyInfo(label)
			if err != nil {
				t.Fatalf("key info: %v", err)
			}
			if !info.Sensitive || info.Extractable {
				t.Errorf("BDK after injection: sensitive=%v extractable=%v, want true/false", info.Sensitive, info.Extractable)
			}
		})
	}
}

func randomCounter(r *rand.Rand) uint32 {
	for {
		c := r.Uint32()
		if r.IntN(2) == 0 {
			c &= 0xFF
		}
		if c != 0 && bits.OnesCount32(c) <= 16 {
			return c
		}
	}
}

func TestAESDUKPTMatchesSoftware(t *testing.T) {
	tok := hsmtest.Token(t)
	r := rand.New(rand.NewPCG(1, 2))
	usages := []dukpt.KeyUsage{dukpt.UsagePINEncryption, dukpt.UsageDataEncrypt, dukpt.UsageDataDecrypt, dukpt.UsageDataBoth, dukpt.UsageKeyEncryption}
	for i := range 24 {
		bdkLen := []int{16, 24, 32}[i%3]
		bdk := make([]byte, bdkLen)
		for j := range bdk {
			bdk[j] = byte(r.Uint32())
		}
		var id [8]byte
		for j := range id {
			id[j] = byte(r.Uint32())
		}
		ksn := dukpt.NewAESKSN(id, randomCounter(r))
		usage := usages[r.IntN(len(usages))]
		alg := []dukpt.KeyAlgorithm{dukpt.AlgAES128, dukpt.AlgAES192, dukpt.AlgAES256}[r.IntN(3)]
		if alg.KeyLen() > bdkLen {
			alg = dukpt.AlgAES128
		}
		t.Run(fmt.Sprintf("case_%02d_bdk%d_alg%04X", i, bdkLen*8, uint16(alg)), func(t *testing.T) {
			label := hsmtest.Label(t, "bdk")
			if err := tok.ImportAES(label, bdk, hsm.UsageBDK); err != nil {
				t.Fatalf("import: %v", err)
			}
			ik, err := dukpt.AESInitialKey(bdk, id)
			if err != nil {
				t.Fatalf("software IK: %v", err)
			}
			want, err := dukpt.AESWorkingKey(ik, ksn, usage, alg)
			if err != nil {
				t.Fatalf("software working key: %v", err)
			}
			k, err := tok.AESDUKPTKey(label, ksn, usage, alg)
			if err != nil {
				t.Fatalf("token working key: %v", err)
			}
			defer k.Destroy()
			got, err := k.Encrypt(nil, fixed)
			if err != nil {
				t.Fatalf("encrypt: %v", err)
			}
			if w := aesECB(t, want, fixed); !bytes.Equal(got, w) {
				t.Errorf("KSN %s usage %04X: token and software keys differ", ksn, uint16(usage))
			}
		})
	}
}

// encryptCBC is the terminal side: AES-CBC under the software working key.
func encryptCBC(t testing.TB, bdk []byte, ksn dukpt.AESKSN, usage dukpt.KeyUsage, alg dukpt.KeyAlgorithm, iv, pt []byte) []byte {
	t.Helper()
	ik, err := dukpt.AESInitialKey(bdk, ksn.InitialKeyID())
	if err != nil {
		t.Fatalf("software IK: %v", err)
	}
	wk, err := dukpt.AESWorkingKey(ik, ksn, usage, alg)
	if err != nil {
		t.Fatalf("software working key: %v", err)
	}
	c, err := aes.NewCipher(wk)
	if err != nil {
		t.Fatalf("cipher: %v", err)
	}
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(c, iv).CryptBlocks(ct, pt)
	return ct
}

func TestDecryptDUKPTRoundTrip(t *testing.T) {
	tok := hsmtest.Token(t)
	iv := unhex(t, "000102030405060708090A0B0C0D0E0F")
	// Test card data only: a documented test PAN, never printed.
	pt := []byte(";4111111111111111=30121010000000000?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	tests := []struct {
		name    string
		bdk     string
		counter uint32
		usage   dukpt.KeyUsage
		alg     dukpt.KeyAlgorithm
	}{
		{"aes128_data_decrypt", bdk128, 1, dukpt.UsageDataDecrypt, dukpt.AlgAES128},
		{"aes128_data_both_high_counter", bdk128, 0xFFFF0000, dukpt.UsageDataBoth, dukpt.AlgAES128},
		{"aes256_data_encrypt_aes256", bdk256, 77, dukpt.UsageDataEncrypt, dukpt.AlgAES256},
		{"aes256_pin_aes128", bdk256, 5, dukpt.UsagePINEncryption, dukpt.AlgAES128},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label := importBDK(t, tok, tc.bdk)
			ksn := ksnOf(t, tc.counter)
			ct := encryptCBC(t, unhex(t, tc.bdk), ksn, tc.usage, tc.alg, iv, pt)
			got, err := tok.DecryptDUKPT(label, ksn, tc.usage, tc.alg, iv, ct)
			if err != nil {
				t.Fatalf("decrypt: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Errorf("decrypted block differs from the original (lengths %d, %d)", len(got), len(pt))
			}
		})
	}
}

func TestDecryptDUKPTErrors(t *testing.T) {
	tok := hsmtest.Token(t)
	label := importBDK(t, tok, bdk128)
	plain := hsmtest.Label(t, "plain")
	if err := tok.ImportAES(plain, unhex(t, bdk128)); err != nil {
		t.Fatalf("import: %v", err)
	}
	iv := make([]byte, 16)
	tests := []struct {
		name  string
		bdk   string
		ksn   dukpt.AESKSN
		usage dukpt.KeyUsage
		iv    []byte
		ct    []byte
		want  error
	}{
		{"unknown_bdk", "no-such-bdk", ksnOf(t, 1), dukpt.UsageDataDecrypt, iv, make([]byte, 16), hsm.ErrKeyNotFound},
		{"bdk_without_derive", plain, ksnOf(t, 1), dukpt.UsageDataDecrypt, iv, make([]byte, 16), hsm.ErrKeyType},
		{"zero_counter", label, ksnOf(t, 0), dukpt.UsageDataDecrypt, iv, make([]byte, 16), dukpt.ErrCounterZero},
		{"too_many_bits", label, ksnOf(t, 0xFFFFFFFF), dukpt.UsageDataDecrypt, iv, make([]byte, 16), dukpt.ErrCounterBits},
		{"partial_block", label, ksnOf(t, 1), dukpt.UsageDataDecrypt, iv, make([]byte, 15), hsm.ErrInput},
		{"empty", label, ksnOf(t, 1), dukpt.UsageDataDecrypt, iv, nil, hsm.ErrInput},
		{"short_iv", label, ksnOf(t, 1), dukpt.UsageDataDecrypt, iv[:8], make([]byte, 16), hsm.ErrInput},
		{"mac_usage", label, ksnOf(t, 1), dukpt.UsageMACGenerate, iv, make([]byte, 16), hsm.ErrInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tok.DecryptDUKPT(tc.bdk, tc.ksn, tc.usage, dukpt.AlgAES128, tc.iv, tc.ct)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDUKPTCacheWarmDevice checks that a device whose counter advances by
// one costs one intermediate and one working-key derivation once warm.
func TestDUKPTCacheWarmDevice(t *testing.T) {
	tok := hsmtest.Token(t)
	label := importBDK(t, tok, bdk128)
	iv := make([]byte, 16)
	bdk := unhex(t, bdk128)
	var id [8]byte
	copy(id[:], "warmdev1")
	decrypt := func(c uint32) uint64 {
		t.Helper()
		ksn := dukpt.NewAESKSN(id, c)
		ct := encryptCBC(t, bdk, ksn, dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, fixed)
		before := tok.Stats().Derivations
		got, err := tok.DecryptDUKPT(label, ksn, dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, ct)
		if err != nil {
			t.Fatalf("decrypt counter %d: %v", c, err)
		}
		if !bytes.Equal(got, fixed) {
			t.Fatalf("counter %d: wrong plaintext", c)
		}
		return tok.Stats().Derivations - before
	}
	// Cold: initial key + one intermediate per one-bit + working key.
	if got, want := decrypt(0x70), uint64(1+3+1); got != want {
		t.Errorf("cold device: %d derivations, want %d", got, want)
	}
	total, n := uint64(0), uint64(0)
	for c := uint32(0x71); c < 0x200; c++ {
		// The cache keeps the 4 deepest intermediate keys: an advance
		// over fewer than 4 trailing one-bits costs one intermediate and
		// the working key; a longer carry walks from the initial key.
		want := uint64(2)
		if bits.TrailingZeros32(^(c - 1)) >= 4 {
			want = uint64(bits.OnesCount32(c)) + 1
		}
		got := decrypt(c)
		if got != want {
			t.Fatalf("warm device, counter %X: %d derivations, want %d", c, got, want)
		}
		total += got
		n++
	}
	if avg := float64(total) / float64(n); avg > 2.5 {
		t.Errorf("warm device: %.2f derivations per transaction, want at most 2.5", avg)
	}
	// A repeated counter reuses the whole chain: only the working key.
	if got := decrypt(0x1FF); got != 1 {
		t.Errorf("repeated counter: %d derivations, want 1", got)
	}
}

// TestDUKPTCacheEviction fills a small cache and checks that evicted
// devices still decrypt correctly and the cache stays bounded.
func TestDUKPTCacheEviction(t *testing.T) {
	hsmtest.Token(t) // creates the shared token
	cfg := hsmtest.Config()
	cfg.MaxDUKPTDevices = 3
	cfg.PoolSize = 2
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer tok.Close()
	label := importBDK(t, tok, bdk256)
	bdk := unhex(t, bdk256)
	iv := make([]byte, 16)
	for round := range 3 {
		for d := range 6 {
			var id [8]byte
			id[7] = byte(d)
			ksn := dukpt.NewAESKSN(id, uint32(round+1))
			ct := encryptCBC(t, bdk, ksn, dukpt.UsageDataBoth, dukpt.AlgAES256, iv, fixed)
			got, err := tok.DecryptDUKPT(label, ksn, dukpt.UsageDataBoth, dukpt.AlgAES256, iv, ct)
			if err != nil {
				t.Fatalf("device %d round %d: %v", d, round, err)
			}
			if !bytes.Equal(got, fixed) {
				t.Fatalf("device %d round %d: wrong plaintext", d, round)
			}
			if n := tok.Stats().CachedDevices; n > 3 {
				t.Fatalf("cache holds %d devices, bound is 3", n)
			}
		}
	}
}

// TestDUKPTConcurrent decrypts from many goroutines over shared devices.
func TestDUKPTConcurrent(t *testing.T) {
	tok := hsmtest.Token(t)
	label := importBDK(t, tok, bdk128)
	bdk := unhex(t, bdk128)
	iv := make([]byte, 16)
	type job struct {
		ksn dukpt.AESKSN
		ct  []byte
	}
	var jobs []job
	for d := range 4 {
		var id [8]byte
		id[0] = byte(d + 1)
		for c := uint32(1); c <= 25; c++ {
			ksn := dukpt.NewAESKSN(id, c)
			jobs = append(jobs, job{ksn, encryptCBC(t, bdk, ksn, dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, fixed)})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(jobs))
	for g := range 8 {
		wg.Go(func() {
			for i := range jobs {
				j := jobs[(i+g*13)%len(jobs)]
				got, err := tok.DecryptDUKPT(label, j.ksn, dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, j.ct)
				if err != nil {
					errs <- fmt.Errorf("KSN %s: %w", j.ksn, err)
					continue
				}
				if !bytes.Equal(got, fixed) {
					errs <- fmt.Errorf("KSN %s: wrong plaintext", j.ksn)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDestroyedBDKStopsDecrypting checks that destroying a BDK also drops
// its session copy and cached devices.
func TestDestroyedBDKStopsDecrypting(t *testing.T) {
	tok := hsmtest.Token(t)
	label := importBDK(t, tok, bdk128)
	iv := make([]byte, 16)
	ksn := ksnOf(t, 9)
	ct := encryptCBC(t, unhex(t, bdk128), ksn, dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, fixed)
	if _, err := tok.DecryptDUKPT(label, ksn, dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, ct); err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	if err := tok.DestroyKey(label); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	for _, c := range []uint32{9, 10} {
		if _, err := tok.DecryptDUKPT(label, ksnOf(t, c), dukpt.UsageDataDecrypt, dukpt.AlgAES128, iv, ct); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Fatalf("counter %d after destroy: %v, want ErrKeyNotFound", c, err)
		}
	}
}

// TestAESDUKPTWorkingKeyAlgorithms derives TDES and HMAC working keys from
// AES transaction keys and compares them with the software derivation.
func TestAESDUKPTWorkingKeyAlgorithms(t *testing.T) {
	tok := hsmtest.Token(t)
	tests := []struct {
		name  string
		bdk   string
		usage dukpt.KeyUsage
		alg   dukpt.KeyAlgorithm
	}{
		{"aes128_bdk_2tdea_data", bdk128, dukpt.UsageDataBoth, dukpt.Alg2TDEA},
		{"aes256_bdk_3tdea_pin", bdk256, dukpt.UsagePINEncryption, dukpt.Alg3TDEA},
		{"aes256_bdk_hmac_mac", bdk256, dukpt.UsageMACBoth, dukpt.AlgHMAC256},
		{"aes256_bdk_aes192_data", bdk256, dukpt.UsageDataEncrypt, dukpt.AlgAES192},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label := importBDK(t, tok, tc.bdk)
			ksn := ksnOf(t, 0x15)
			ik, err := dukpt.AESInitialKey(unhex(t, tc.bdk), ksn.InitialKeyID())
			if err != nil {
				t.Fatal(err)
			}
			want, err := dukpt.AESWorkingKey(ik, ksn, tc.usage, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			k, err := tok.AESDUKPTKey(label, ksn, tc.usage, tc.alg)
			if err != nil {
				t.Fatalf("derive: %v", err)
			}
			defer k.Destroy()
			var got, exp []byte
			switch tc.alg {
			case dukpt.AlgHMAC256:
				got, err = k.MAC(fixed)
				m := hmac.New(sha256.New, want)
				m.Write(fixed)
				exp = m.Sum(nil)
			case dukpt.Alg2TDEA, dukpt.Alg3TDEA:
				got, err = k.Encrypt(nil, fixed[:8])
				k3 := want
				if len(k3) == 16 {
					k3 = append(append([]byte{}, want...), want[:8]...)
				}
				c, cerr := des.NewTripleDESCipher(k3)
				if cerr != nil {
					t.Fatal(cerr)
				}
				exp = make([]byte, 8)
				c.Encrypt(exp, fixed[:8])
			default:
				got, err = k.Encrypt(nil, fixed)
				exp = aesECB(t, want, fixed)
			}
			if err != nil {
				t.Fatalf("use key: %v", err)
			}
			if !bytes.Equal(got, exp) {
				t.Errorf("token and software %04X keys differ", uint16(tc.alg))
			}
		})
	}
}
