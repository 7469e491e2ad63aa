package hsm_test

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

// importAESIMK imports imk as a derive-only AES IMK-AC.
func importAESIMK(t testing.TB, tok *hsm.Token, imk []byte) string {
	t.Helper()
	label := hsmtest.Label(t, "imk-ac-aes")
	if err := tok.ImportAES(label, imk, hsm.UseDerive); err != nil {
		t.Fatalf("import AES IMK: %v", err)
	}
	return label
}

// randomCard returns a PAN of 12 to 19 digits and a BCD PSN.
func randomCard(r *rand.Rand) (string, byte) {
	n := 12 + r.IntN(8)
	pan := make([]byte, n)
	for i := range pan {
		pan[i] = '0' + byte(r.IntN(10))
	}
	return string(pan), byte(r.IntN(10))<<4 | byte(r.IntN(10))
}

// TestEMVAESMatchesSoftware is the property test of the AES variants: for
// random AES-128/192/256 IMKs, cards, ATCs and transaction data, with and
// without the ICC master key cache, the token's derivations, cryptogram
// check and ARPCs agree with the pure-Go emv/cryptogram ones.
func TestEMVAESMatchesSoftware(t *testing.T) {
	tok := hsmtest.Token(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0xE3A5))
	for _, n := range []int{16, 24, 32} {
		for _, cache := range []int{-1, 0} {
			t.Run(fmt.Sprintf("aes%d_cache_%d", n*8, cache), func(t *testing.T) {
				imk := make([]byte, n)
				_, _ = crand.Read(imk)
				label := importAESIMK(t, tok, imk)
				iss, err := tok.EMVIssuer(label, cache)
				if err != nil {
					t.Fatalf("EMV issuer: %v", err)
				}
				defer iss.Close()
				for i := range 5 {
					pan, psn := randomCard(r)
					atc := uint16(r.IntN(0x10000))
					data := make([]byte, r.IntN(70))
					_, _ = crand.Read(data)
					mk, err := cryptogram.DeriveICCMasterKeyC(imk, pan, psn)
					if err != nil {
						t.Fatalf("card %d: option C: %v", i, err)
					}
					sk, err := cryptogram.DeriveSessionKeyAES(mk, cryptogram.ACSessionRAES(atc))
					if err != nil {
						t.Fatalf("card %d: session key: %v", i, err)
					}
					wantMK, _ := cryptogram.KCVAES(mk)
					if kcv, err := iss.ICCMasterKeyKCV(pan, psn); err != nil || kcv != fmt.Sprintf("%X", wantMK) {
						t.Fatalf("card %d: ICC MK KCV = %s, %v; want %X", i, kcv, err, wantMK)
					}
					wantSK, _ := cryptogram.KCVAES(sk)
					if kcv, err := iss.SessionKeyKCV(pan, psn, cryptogram.ACSessionR(atc)); err != nil || kcv != fmt.Sprintf("%X", wantSK) {
						t.Fatalf("card %d: session key KCV = %s, %v; want %X", i, kcv, err, wantSK)
					}
					arqc, _ := cryptogram.GenerateACAES(sk, data)
					req := hsm.ARQCRequest{PAN: pan, PSN: psn, R: cryptogram.ACSessionR(atc), Data: data, ARQC: arqc}
					if err := iss.VerifyARQC(req); err != nil {
						t.Fatalf("card %d: token refuses the software ARQC (%d bytes of data): %v", i, len(data), err)
					}
					arc := [2]byte{'0', '0' + byte(i)}
					want1MK, _ := cryptogram.ARPC1AES(mk, arqc, arc)
					if got, err := iss.VerifyARQCAndARPC1(req, arc, hsm.ARPCKeyICCMaster); err != nil || got != want1MK {
						t.Fatalf("card %d: ARPC1 under ICC MK = %X, %v; want %X", i, got, err, want1MK)
					}
					want1SK, _ := cryptogram.ARPC1AES(sk, arqc, arc)
					if got, err := iss.ARPC1(req, arc, hsm.ARPCKeySession); err != nil || got != want1SK {
						t.Fatalf("card %d: ARPC1 under session key = %X, %v; want %X", i, got, err, want1SK)
					}
					csu := [4]byte{0x00, 0x80, byte(i), 0x00}
					prop := data[:min(len(data), r.IntN(9))]
					want2, _ := cryptogram.ARPC2AES(sk, arqc, csu, prop)
					if got, err := iss.ARPC2(req, csu, prop); err != nil || got != want2 {
						t.Fatalf("card %d: ARPC2 = %X, %v; want %X", i, got, err, want2)
					}
					bad := req
					bad.ARQC[7] ^= 0x01
					if err := iss.VerifyARQC(bad); !errors.Is(err, hsm.ErrCryptogram) {
						t.Fatalf("card %d: tampered ARQC: %v, want ErrCryptogram", i, err)
					}
				}
			})
		}
	}
}

// TestEMVAESVerifyFails checks that an AES issuer refuses cryptograms
// that are not the card's: tampered data, another ATC, card or PSN, and
// the TDES cryptogram of the same key bytes.
func TestEMVAESVerifyFails(t *testing.T) {
	tok := hsmtest.Token(t)
	imk := []byte("posgate-test-aes-imk-0123456789!")[:16]
	label := importAESIMK(t, tok, imk)
	iss, err := tok.EMVIssuer(label, 0)
	if err != nil {
		t.Fatalf("EMV issuer: %v", err)
	}
	defer iss.Close()
	const pan = "4761739001010010"
	data := bytes.Repeat([]byte{0x33}, 37)
	mk, _ := cryptogram.DeriveICCMasterKeyC(imk, pan, 0x01)
	sk, _ := cryptogram.DeriveSessionKeyAES(mk, cryptogram.ACSessionRAES(9))
	arqc, _ := cryptogram.GenerateACAES(sk, data)
	good := hsm.ARQCRequest{PAN: pan, PSN: 0x01, R: cryptogram.ACSessionR(9), Data: data, ARQC: arqc}
	if err := iss.VerifyARQC(good); err != nil {
		t.Fatalf("good request: %v", err)
	}
	tdesMK, _ := cryptogram.DeriveICCMasterKeyA(imk, pan, 0x01)
	tdesSK, _ := cryptogram.DeriveSessionKey(tdesMK, cryptogram.ACSessionR(9))
	tdesARQC, _ := cryptogram.GenerateAC(tdesSK, data)
	tests := []struct {
		name string
		edit func(r *hsm.ARQCRequest)
		want error
	}{
		{"tampered_cryptogram", func(r *hsm.ARQCRequest) { r.ARQC[0] ^= 0x80 }, hsm.ErrCryptogram},
		{"tampered_data", func(r *hsm.ARQCRequest) { r.Data = bytes.Clone(r.Data); r.Data[36] ^= 0x01 }, hsm.ErrCryptogram},
		{"other_atc", func(r *hsm.ARQCRequest) { r.R = cryptogram.ACSessionR(10) }, hsm.ErrCryptogram},
		{"other_psn", func(r *hsm.ARQCRequest) { r.PSN = 0x02 }, hsm.ErrCryptogram},
		{"other_pan", func(r *hsm.ARQCRequest) { r.PAN = "4761739001010028" }, hsm.ErrCryptogram},
		{"tdes_cryptogram", func(r *hsm.ARQCRequest) { r.ARQC = tdesARQC }, hsm.ErrCryptogram},
		{"pan_not_digits", func(r *hsm.ARQCRequest) { r.PAN = "47617x" }, hsm.ErrInput},
		{"psn_not_bcd", func(r *hsm.ARQCRequest) { r.PSN = 0x1F }, hsm.ErrInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			tc.edit(&req)
			err := iss.VerifyARQC(req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
			if _, err := iss.VerifyARQCAndARPC1(req, [2]byte{'0', '0'}, hsm.ARPCKeySession); !errors.Is(err, tc.want) {
				t.Fatalf("verify and ARPC = %v, want %v", err, tc.want)
			}
			if bytes.Contains([]byte(err.Error()), []byte(pan[:8])) {
				t.Fatal("error carries PAN digits")
			}
		})
	}
}

// TestEMVIssuerKeyTypes checks the issuer's dispatch on the IMK's type: a
// TDES and an AES IMK side by side each verify their own cards, and a key
// of another type is refused with ErrKeyType.
func TestEMVIssuerKeyTypes(t *testing.T) {
	tok := hsmtest.Token(t)
	value := []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10}
	tdesLabel := importIMK(t, tok, value)
	aesLabel := importAESIMK(t, tok, value)
	const pan = "4761739001010010"
	data := bytes.Repeat([]byte{0x5A}, 29)
	r := cryptogram.ACSessionR(3)

	tdesMK, _ := cryptogram.DeriveICCMasterKeyA(value, pan, 0)
	tdesSK, _ := cryptogram.DeriveSessionKey(tdesMK, r)
	tdesARQC, _ := cryptogram.GenerateAC(tdesSK, data)
	aesMK, _ := cryptogram.DeriveICCMasterKeyC(value, pan, 0)
	aesSK, _ := cryptogram.DeriveSessionKeyAES(aesMK, cryptogram.ExtendR(r))
	aesARQC, _ := cryptogram.GenerateACAES(aesSK, data)

	for _, tc := range []struct {
		name  string
		label string
		own   [8]byte
		other [8]byte
	}{
		{"tdes", tdesLabel, tdesARQC, aesARQC},
		{"aes", aesLabel, aesARQC, tdesARQC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := tok.EMVIssuer(tc.label, 0)
			if err != nil {
				t.Fatalf("EMV issuer: %v", err)
			}
			defer iss.Close()
			if err := iss.VerifyARQC(hsm.ARQCRequest{PAN: pan, R: r, Data: data, ARQC: tc.own}); err != nil {
				t.Fatalf("own cryptogram: %v", err)
			}
			if err := iss.VerifyARQC(hsm.ARQCRequest{PAN: pan, R: r, Data: data, ARQC: tc.other}); !errors.Is(err, hsm.ErrCryptogram) {
				t.Fatalf("the other family's cryptogram: %v, want ErrCryptogram", err)
			}
		})
	}

	hmacLabel := hsmtest.Label(t, "imk-hmac")
	if err := tok.ImportHMAC(hmacLabel, bytes.Repeat([]byte{7}, 32), hsm.UseDerive); err != nil {
		t.Fatalf("import HMAC key: %v", err)
	}
	iss, err := tok.EMVIssuer(hmacLabel, 0)
	if err != nil {
		t.Fatalf("EMV issuer: %v", err)
	}
	defer iss.Close()
	if err := iss.VerifyARQC(hsm.ARQCRequest{PAN: pan, R: r, Data: data, ARQC: aesARQC}); !errors.Is(err, hsm.ErrKeyType) {
		t.Fatalf("verify under a generic secret: %v, want ErrKeyType", err)
	}
}
