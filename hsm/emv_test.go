package hsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/cryptogram/cryptogramtest"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

// importIMK imports the vectors' IMK-AC as a derive-only DES2 key.
func importIMK(t testing.TB, tok *hsm.Token, imk []byte) string {
	t.Helper()
	label := hsmtest.Label(t, "imk-ac")
	if err := tok.ImportTDES(label, imk, hsm.UseDerive); err != nil {
		t.Fatalf("import IMK: %v", err)
	}
	return label
}

func TestEMVPublishedVectors(t *testing.T) {
	tok := hsmtest.Token(t)
	for _, cache := range []int{-1, 0} {
		for _, v := range cryptogramtest.Load(t) {
			t.Run(fmt.Sprintf("%s_cache_%d", v.Name, cache), func(t *testing.T) {
				label := importIMK(t, tok, v.IMK)
				if kcv, err := tok.KCV(label); err != nil || kcv[:4] != "08D7" {
					t.Fatalf("IMK KCV = %s, %v; want 08D7..", kcv, err)
				}
				iss, err := tok.EMVIssuer(label, cache)
				if err != nil {
					t.Fatalf("EMV issuer: %v", err)
				}
				defer iss.Close()
				if v.ICCMKKCV != nil {
					kcv, err := iss.ICCMasterKeyKCV(v.PAN, v.PSN)
					if err != nil || kcv[:4] != fmt.Sprintf("%X", v.ICCMKKCV) {
						t.Fatalf("ICC MK KCV = %s, %v; want %X", kcv, err, v.ICCMKKCV)
					}
				}
				kcv, err := iss.SessionKeyKCV(v.PAN, v.PSN, v.R)
				if err != nil || kcv[:4] != fmt.Sprintf("%X", v.SKKCV) {
					t.Fatalf("session key KCV = %s, %v; want %X", kcv, err, v.SKKCV)
				}
				req := hsm.ARQCRequest{PAN: v.PAN, PSN: v.PSN, R: v.R, Data: v.Data, ARQC: v.ARQC}
				if err := iss.VerifyARQC(req); err != nil {
					t.Fatalf("verify ARQC: %v", err)
				}
				if v.ARPC1MK != nil {
					arpc, err := iss.VerifyARQCAndARPC1(req, [2]byte{}, hsm.ARPCKeyICCMaster)
					if err != nil || !bytes.Equal(arpc[:], v.ARPC1MK) {
						t.Fatalf("ARPC1 under ICC MK = %X, %v; want %X", arpc, err, v.ARPC1MK)
					}
				}
				if v.ARPC1SK != nil {
					arpc, err := iss.ARPC1(req, [2]byte{}, hsm.ARPCKeySession)
					if err != nil || !bytes.Equal(arpc[:], v.ARPC1SK) {
						t.Fatalf("ARPC1 under session key = %X, %v; want %X", arpc, err, v.ARPC1SK)
					}
				}
				if v.ARPC2 != nil {
					arpc, err := iss.ARPC2(req, [4]byte(v.CSU), v.Prop)
					if err != nil || !bytes.Equal(arpc[:], v.ARPC2) {
						t.Fatalf("ARPC2 = %X, %v; want %X", arpc, err, v.ARPC2)
					}
				}
			})
		}
	}
}

// TestEMVMatchesSoftware checks the token's two-step retail MAC against
// the pure-Go one for data lengths around block boundaries.
func TestEMVMatchesSoftware(t *testing.T) {
	tok := hsmtest.Token(t)
	v := cryptogramtest.Load(t)[0]
	label := importIMK(t, tok, v.IMK)
	iss, err := tok.EMVIssuer(label, 0)
	if err != nil {
		t.Fatalf("EMV issuer: %v", err)
	}
	defer iss.Close()
	mk, _ := cryptogram.DeriveICCMasterKeyA(v.IMK, v.PAN, v.PSN)
	for _, n := range []int{0, 1, 7, 8, 9, 16, 33, 64} {
		t.Run(fmt.Sprintf("len_%d", n), func(t *testing.T) {
			data := bytes.Repeat([]byte{byte(n)}, n)
			r := cryptogram.ACSessionR(uint16(n + 1))
			sk, _ := cryptogram.DeriveSessionKey(mk, r)
			arqc, _ := cryptogram.GenerateAC(sk, data)
			if err := iss.VerifyARQC(hsm.ARQCRequest{PAN: v.PAN, PSN: v.PSN, R: r, Data: data, ARQC: arqc}); err != nil {
				t.Fatalf("token rejects the software cryptogram: %v", err)
			}
		})
	}
}

func TestEMVVerifyFails(t *testing.T) {
	tok := hsmtest.Token(t)
	v := cryptogramtest.Load(t)[0]
	label := importIMK(t, tok, v.IMK)
	iss, err := tok.EMVIssuer(label, 0)
	if err != nil {
		t.Fatalf("EMV issuer: %v", err)
	}
	defer iss.Close()
	good := hsm.ARQCRequest{PAN: v.PAN, PSN: v.PSN, R: v.R, Data: v.Data, ARQC: v.ARQC}
	tests := []struct {
		name string
		edit func(r *hsm.ARQCRequest)
		want error
	}{
		{"tampered_cryptogram", func(r *hsm.ARQCRequest) { r.ARQC[0] ^= 0x01 }, hsm.ErrCryptogram},
		{"tampered_data", func(r *hsm.ARQCRequest) { r.Data = bytes.Clone(r.Data); r.Data[3] ^= 0x10 }, hsm.ErrCryptogram},
		{"other_atc", func(r *hsm.ARQCRequest) { r.R = cryptogram.ACSessionR(2) }, hsm.ErrCryptogram},
		{"other_psn", func(r *hsm.ARQCRequest) { r.PSN = 0x01 }, hsm.ErrCryptogram},
		{"other_pan", func(r *hsm.ARQCRequest) { r.PAN = "12345678901234575" }, hsm.ErrCryptogram},
		{"pan_not_digits", func(r *hsm.ARQCRequest) { r.PAN = "1234x" }, hsm.ErrInput},
		{"psn_not_bcd", func(r *hsm.ARQCRequest) { r.PSN = 0xAB }, hsm.ErrInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			tc.edit(&req)
			err := iss.VerifyARQC(req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
			if _, err := iss.VerifyARQCAndARPC1(req, [2]byte{'0', '0'}, hsm.ARPCKeyICCMaster); !errors.Is(err, tc.want) {
				t.Fatalf("verify and ARPC = %v, want %v", err, tc.want)
			}
			if bytes.Contains([]byte(err.Error()), []byte(v.PAN[:8])) {
				t.Fatal("error carries PAN digits")
			}
		})
	}
	if err := iss.VerifyARQC(good); err != nil {
		t.Fatalf("untampered request: %v", err)
	}
}

func TestEMVIssuerErrors(t *testing.T) {
	tok := hsmtest.Token(t)
	if _, err := tok.EMVIssuer("", 0); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("empty label: %v", err)
	}
	if _, err := tok.EMVIssuer("x", -2); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("maxCards -2: %v", err)
	}
	iss, err := tok.EMVIssuer(hsmtest.Label(t, "absent"), 0)
	if err != nil {
		t.Fatalf("EMV issuer: %v", err)
	}
	v := cryptogramtest.Load(t)[0]
	if err := iss.VerifyARQC(hsm.ARQCRequest{PAN: v.PAN, PSN: v.PSN}); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("verify under a missing IMK: %v, want ErrKeyNotFound", err)
	}
	label := importIMK(t, tok, v.IMK)
	iss, _ = tok.EMVIssuer(label, 0)
	defer iss.Close()
	if _, err := iss.ARPC1(hsm.ARQCRequest{PAN: v.PAN, PSN: v.PSN}, [2]byte{}, hsm.ARPCKey(9)); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("ARPC1 with a bad key selector: %v", err)
	}
	if _, err := iss.ARPC2(hsm.ARQCRequest{PAN: v.PAN, PSN: v.PSN}, [4]byte{}, make([]byte, 9)); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("ARPC2 with 9 bytes of proprietary data: %v", err)
	}
}

// TestEMVCacheConcurrent runs many cards through a small cache from
// several goroutines, so entries are evicted while in use, and checks
// every answer and the cache bound.
func TestEMVCacheConcurrent(t *testing.T) {
	tok := hsmtest.Token(t)
	v := cryptogramtest.Load(t)[0]
	label := importIMK(t, tok, v.IMK)
	const maxCards = 3
	iss, err := tok.EMVIssuer(label, maxCards)
	if err != nil {
		t.Fatalf("EMV issuer: %v", err)
	}
	type card struct {
		pan  string
		arqc [8]byte
		r    [8]byte
	}
	var cards []card
	for i := range 8 {
		pan := fmt.Sprintf("47617390010100%02d", i)
		mk, _ := cryptogram.DeriveICCMasterKeyA(v.IMK, pan, 0x01)
		r := cryptogram.ACSessionR(uint16(i + 1))
		sk, _ := cryptogram.DeriveSessionKey(mk, r)
		arqc, _ := cryptogram.GenerateAC(sk, v.Data)
		cards = append(cards, card{pan, arqc, r})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*40)
	for g := range 4 {
		wg.Go(func() {
			for i := range 40 {
				c := cards[(g*3+i)%len(cards)]
				if err := iss.VerifyARQC(hsm.ARQCRequest{PAN: c.pan, PSN: 0x01, R: c.r, Data: v.Data, ARQC: c.arqc}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent verify: %v", err)
	}
	st := iss.Stats()
	if st.CachedCards > maxCards || st.CacheHits == 0 || st.CacheMisses < uint64(len(cards)) {
		t.Fatalf("stats %+v: want at most %d cached, some hits, at least %d misses", st, maxCards, len(cards))
	}
	if err := iss.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if st := iss.Stats(); st.CachedCards != 0 {
		t.Fatalf("after close %d cards cached", st.CachedCards)
	}
	// Still usable after Close.
	c := cards[0]
	if err := iss.VerifyARQC(hsm.ARQCRequest{PAN: c.pan, PSN: 0x01, R: c.r, Data: v.Data, ARQC: c.arqc}); err != nil {
		t.Fatalf("verify after close: %v", err)
	}
	_ = iss.Close()
}

// benchARQC verifies ARQCs of a typical 33-byte CDOL1 data set over
// nCards cards with the given cache bound, under the published TDES IMK
// (aesLen 0) or an AES IMK of aesLen bytes.
func benchARQC(b *testing.B, maxCards, nCards, aesLen int) {
	tok := hsmtest.Token(b)
	v := cryptogramtest.Load(b)[0]
	imk := v.IMK
	var label string
	if aesLen > 0 {
		imk = bytes.Repeat([]byte{0xA5, 0x3C}, aesLen/2)
		label = importAESIMK(b, tok, imk)
	} else {
		label = importIMK(b, tok, imk)
	}
	iss, err := tok.EMVIssuer(label, maxCards)
	if err != nil {
		b.Fatalf("EMV issuer: %v", err)
	}
	defer iss.Close()
	data := bytes.Repeat([]byte{0x42}, 33)
	reqs := make([]hsm.ARQCRequest, nCards)
	for i := range reqs {
		pan := fmt.Sprintf("4761739%09d", i)
		r := cryptogram.ACSessionR(uint16(i + 1))
		var arqc [8]byte
		if aesLen > 0 {
			mk, _ := cryptogram.DeriveICCMasterKeyC(imk, pan, 0x01)
			sk, _ := cryptogram.DeriveSessionKeyAES(mk, cryptogram.ExtendR(r))
			arqc, _ = cryptogram.GenerateACAES(sk, data)
		} else {
			mk, _ := cryptogram.DeriveICCMasterKeyA(imk, pan, 0x01)
			sk, _ := cryptogram.DeriveSessionKey(mk, r)
			arqc, _ = cryptogram.GenerateAC(sk, data)
		}
		reqs[i] = hsm.ARQCRequest{PAN: pan, PSN: 0x01, R: r, Data: data, ARQC: arqc}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := iss.VerifyARQC(reqs[i%nCards]); err != nil {
			b.Fatalf("verify: %v", err)
		}
		i++
	}
	st := iss.Stats()
	b.ReportMetric(float64(st.Derivations)/float64(i), "derivations/op")
}

func BenchmarkEMVVerifyARQC(b *testing.B) {
	b.Run("cached_keys", func(b *testing.B) { benchARQC(b, 0, 100, 0) })
	b.Run("no_cache", func(b *testing.B) { benchARQC(b, -1, 100, 0) })
}

// BenchmarkEMVVerifyARQCAES is BenchmarkEMVVerifyARQC with AES IMKs
// (option C, AES session key, CKM_AES_CMAC).
func BenchmarkEMVVerifyARQCAES(b *testing.B) {
	b.Run("aes128_cached_keys", func(b *testing.B) { benchARQC(b, 0, 100, 16) })
	b.Run("aes128_no_cache", func(b *testing.B) { benchARQC(b, -1, 100, 16) })
	b.Run("aes256_cached_keys", func(b *testing.B) { benchARQC(b, 0, 100, 32) })
}
