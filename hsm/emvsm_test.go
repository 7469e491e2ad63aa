package hsm_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

// TestSecureMessagingMatchesSoftware is the property test of the token's
// secure messaging: for random IMK-SMI and IMK-SMC values, cards,
// cryptograms and data lengths around block boundaries, the script MAC
// and the enciphered data from the token equal emv/cryptogram's (option
// A, common session key with R = ARQC, MAC algorithm 3, TDES CBC), which
// TestScriptMACThirdParty ties to another implementation's values.
func TestSecureMessagingMatchesSoftware(t *testing.T) {
	tok := hsmtest.Token(t)
	rng := mrand.New(mrand.NewPCG(7, 11))
	for round := range 3 {
		smiKey, smcKey := randKey(t), randKey(t)
		smi, smc := hsmtest.Label(t, "imk-smi"), hsmtest.Label(t, "imk-smc")
		if err := tok.ImportTDES(smi, smiKey, hsm.UseDerive); err != nil {
			t.Fatalf("import IMK-SMI: %v", err)
		}
		if err := tok.ImportTDES(smc, smcKey, hsm.UseDerive); err != nil {
			t.Fatalf("import IMK-SMC: %v", err)
		}
		cache := []int{-1, 0, 2}[round]
		sm, err := tok.SecureMessaging(smi, smc, cache)
		if err != nil {
			t.Fatalf("secure messaging: %v", err)
		}
		for i := range 12 {
			t.Run(fmt.Sprintf("round_%d_case_%d", round, i), func(t *testing.T) {
				pan := fmt.Sprintf("%d", 4000000000000000+rng.Uint64N(999999999999999))
				if i%3 == 0 {
					pan += "123" // 19 digits: option A keeps the rightmost 16
				}
				psn := byte(rng.IntN(10))<<4 | byte(rng.IntN(10))
				var arqc [8]byte
				rand.Read(arqc[:])
				data := make([]byte, []int{0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 40, 247}[i])
				rand.Read(data)
				c := hsm.ScriptCommand{PAN: pan, PSN: psn, ATC: uint16(rng.Uint32()), ARQC: arqc, Header: [4]byte{0x84, byte(rng.IntN(256)), 0, 0}, Data: data}

				mk, err := cryptogram.DeriveICCMasterKeyA(smiKey, pan, psn)
				if err != nil {
					t.Fatal(err)
				}
				sk, err := cryptogram.DeriveSessionKey(mk, cryptogram.SMSessionR(arqc))
				if err != nil {
					t.Fatal(err)
				}
				want, err := cryptogram.ScriptMAC(sk, c.Header, c.ATC, c.ARQC, c.Data)
				if err != nil {
					t.Fatal(err)
				}
				got, err := sm.ScriptMAC(c)
				if err != nil || got != want {
					t.Fatalf("token script MAC = %X, %v; pure Go %X", got, err, want)
				}

				mk, _ = cryptogram.DeriveICCMasterKeyA(smcKey, pan, psn)
				sk, _ = cryptogram.DeriveSessionKey(mk, cryptogram.SMSessionR(arqc))
				wantCT, err := cryptogram.EncipherScriptData(sk, data)
				if err != nil {
					t.Fatal(err)
				}
				gotCT, err := sm.EncipherScriptData(pan, psn, arqc, data)
				if err != nil || !bytes.Equal(gotCT, wantCT) {
					t.Fatalf("token encipherment = %X, %v; pure Go %X", gotCT, err, wantCT)
				}
				if back, err := cryptogram.DecipherScriptData(sk, gotCT); err != nil || !bytes.Equal(back, data) {
					t.Fatalf("decipher token's data = %X, %v; want %X", back, err, data)
				}
			})
		}
		if err := sm.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
}

// TestSecureMessagingKeysAreSeparate: the SMI and SMC keys and the
// session key's R all matter, so a MAC under the IMK-AC (or another
// cryptogram) is not the script MAC.
func TestSecureMessagingKeysAreSeparate(t *testing.T) {
	tok := hsmtest.Token(t)
	a, b := hsmtest.Label(t, "imk-smi"), hsmtest.Label(t, "imk-smc")
	if err := tok.ImportTDES(a, randKey(t), hsm.UseDerive); err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportTDES(b, randKey(t), hsm.UseDerive); err != nil {
		t.Fatal(err)
	}
	ab, _ := tok.SecureMessaging(a, b, 0)
	defer ab.Close()
	ba, _ := tok.SecureMessaging(b, a, 0)
	defer ba.Close()
	c := hsm.ScriptCommand{PAN: "4761739001010010", PSN: 1, ATC: 5, ARQC: [8]byte{1, 2, 3}, Header: [4]byte{0x84, 0x1E}}
	m1, err1 := ab.ScriptMAC(c)
	m2, err2 := ba.ScriptMAC(c)
	c.ARQC[7] = 1
	m3, err3 := ab.ScriptMAC(c)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if m1 == m2 || m1 == m3 {
		t.Fatalf("MACs under different keys or cryptograms coincide: %X %X %X", m1, m2, m3)
	}
}

func TestSecureMessagingRefuses(t *testing.T) {
	tok := hsmtest.Token(t)
	tdes, aes := hsmtest.Label(t, "imk-smi"), hsmtest.Label(t, "imk-aes")
	if err := tok.ImportTDES(tdes, randKey(t), hsm.UseDerive); err != nil {
		t.Fatal(err)
	}
	k := make([]byte, 16)
	rand.Read(k)
	if err := tok.ImportAES(aes, k, hsm.UseDerive); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		smi, smc string
		c        hsm.ScriptCommand
		want     error
	}{
		{"aes_imk", aes, aes, hsm.ScriptCommand{PAN: "4761739001010010"}, hsm.ErrKeyType},
		{"bad_pan", tdes, tdes, hsm.ScriptCommand{PAN: "47617390A1010010"}, hsm.ErrInput},
		{"data_too_long", tdes, tdes, hsm.ScriptCommand{PAN: "4761739001010010", Data: make([]byte, 248)}, hsm.ErrInput},
		{"missing_key", hsmtest.Label(t, "none"), tdes, hsm.ScriptCommand{PAN: "4761739001010010"}, hsm.ErrKeyNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := tok.SecureMessaging(tc.smi, tc.smc, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer sm.Close()
			if _, err := sm.ScriptMAC(tc.c); !errors.Is(err, tc.want) {
				t.Fatalf("script MAC: %v, want %v", err, tc.want)
			}
			if tc.name == "aes_imk" {
				if _, err := sm.EncipherScriptData(tc.c.PAN, 0, [8]byte{}, []byte{1}); !errors.Is(err, hsm.ErrKeyType) {
					t.Fatalf("encipher: %v, want ErrKeyType", err)
				}
			}
		})
	}
}

func randKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 16)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	cryptogram.SetParity(k)
	return k
}
