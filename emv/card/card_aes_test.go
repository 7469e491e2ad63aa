package card_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
)

// aesIMK returns a test AES IMK of n bytes.
func aesIMK(n int) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = byte(0x11*i + 0x2B)
	}
	return k
}

const aesPAN = "4761739001010010"

// TestAESCardSoftware checks the AES card against the pure-Go
// definitions: its ICC master key is option C's, its ARQC the AES-CMAC
// cryptogram of the DE 55 data under the AES session key for its ATC, and
// it accepts the AES ARPC method 1 (and refuses the TDES one).
func TestAESCardSoftware(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		t.Run(fmt.Sprintf("aes%d", n*8), func(t *testing.T) {
			imk := aesIMK(n)
			c := newCard(t, card.Config{IMK: imk, AES: true, PAN: aesPAN, PSN: 0x01, ATC: 0x0100})
			mk, _ := cryptogram.DeriveICCMasterKeyC(imk, aesPAN, 0x01)
			if want, _ := cryptogram.KCVAES(mk); !bytes.Equal(c.MasterKeyKCV(), want) {
				t.Fatalf("ICC MK KCV = %X, want %X", c.MasterKeyKCV(), want)
			}
			term := terminal(t, "0A0B0C0D")
			data, _ := card.DefaultCDOL1().Build(term)
			r, err := c.GenerateAC(emv.ARQC, data)
			if err != nil || r.ATC != 0x0101 {
				t.Fatalf("GENERATE AC: ATC %04X, %v", r.ATC, err)
			}
			req, err := de55.ParseRequest(de55For(t, c, term, r))
			if err != nil {
				t.Fatalf("parse DE 55: %v", err)
			}
			sk, _ := cryptogram.DeriveSessionKeyAES(mk, cryptogram.ACSessionRAES(r.ATC))
			if err := cryptogram.VerifyACAES(sk, req.ACData(), r.Cryptogram); err != nil {
				t.Fatalf("ARQC does not verify under the AES session key: %v", err)
			}
			tdesARPC, _ := cryptogram.ARPC1(mk[:16], r.Cryptogram, [2]byte{'0', '0'})
			cdol2, _ := card.DefaultCDOL2().Build(dol.Values{tags.AuthorisationResponseCode: []byte("00")})
			r2, err := c.CompleteOnline(de55.IssuerAuthDataMethod1(tdesARPC, [2]byte{'0', '0'}), true, cdol2)
			if !errors.Is(err, cryptogram.ErrMismatch) || r2.CID.Type() != emv.AAC {
				t.Fatalf("TDES ARPC: %v, %v; want AAC and ErrMismatch", r2.CID.Flags(), err)
			}
			// A new transaction, answered with the AES ARPC.
			r, _ = c.GenerateAC(emv.ARQC, data)
			arpc, _ := cryptogram.ARPC1AES(mk, r.Cryptogram, [2]byte{'0', '0'})
			r2, err = c.CompleteOnline(de55.IssuerAuthDataMethod1(arpc, [2]byte{'0', '0'}), true, cdol2)
			if err != nil || r2.CID.Type() != emv.TC {
				t.Fatalf("AES ARPC: %v, %v; want TC", r2.CID.Flags(), err)
			}
			sk, _ = cryptogram.DeriveSessionKeyAES(mk, cryptogram.ACSessionRAES(r.ATC))
			if err := cryptogram.VerifyACAES(sk, append(acDataOf(t, c, term, r), cdol2...), r2.Cryptogram); err != nil {
				t.Fatalf("TC does not verify: %v", err)
			}
		})
	}
}

// acDataOf returns the AC data the issuer reads from the request DE 55
// for the card's answer r.
func acDataOf(t testing.TB, c *card.Card, term dol.Values, r card.Response) []byte {
	t.Helper()
	req, err := de55.ParseRequest(de55For(t, c, term, r))
	if err != nil {
		t.Fatalf("parse DE 55: %v", err)
	}
	return req.ACData()
}

// TestAESContactFlowToken runs the AES card against the issuer in the
// token for each AES key length and both ARPC method 1 keys: the token
// verifies the card's ARQC and its ARPC makes the card answer TC; a
// tampered ARQC is refused, and a tampered ARPC makes the card decline.
func TestAESContactFlowToken(t *testing.T) {
	tok := hsmtest.Token(t)
	for _, n := range []int{16, 24, 32} {
		for _, key := range []hsm.ARPCKey{hsm.ARPCKeyICCMaster, hsm.ARPCKeySession} {
			t.Run(fmt.Sprintf("aes%d_arpc_key_%d", n*8, key), func(t *testing.T) {
				imk := aesIMK(n)
				label := hsmtest.Label(t, "imk-ac-aes")
				if err := tok.ImportAES(label, imk, hsm.UseDerive); err != nil {
					t.Fatalf("import AES IMK: %v", err)
				}
				iss, err := tok.EMVIssuer(label, 0)
				if err != nil {
					t.Fatalf("EMV issuer: %v", err)
				}
				defer iss.Close()
				c := newCard(t, card.Config{IMK: imk, AES: true, PAN: aesPAN, PSN: 0x01, ARPCWithSessionKey: key == hsm.ARPCKeySession})
				if kcv, err := iss.ICCMasterKeyKCV(aesPAN, 0x01); err != nil || kcv != fmt.Sprintf("%X", c.MasterKeyKCV()) {
					t.Fatalf("token ICC MK KCV %s, %v; card %X", kcv, err, c.MasterKeyKCV())
				}
				cdol2, _ := card.DefaultCDOL2().Build(dol.Values{tags.AuthorisationResponseCode: []byte("00")})
				for i, un := range []string{"11111111", "22222222"} {
					term := terminal(t, un)
					data, _ := card.DefaultCDOL1().Build(term)
					r, err := c.GenerateAC(emv.ARQC, data)
					if err != nil {
						t.Fatalf("GENERATE AC %d: %v", i, err)
					}
					req, err := de55.ParseRequest(de55For(t, c, term, r))
					if err != nil {
						t.Fatalf("parse DE 55: %v", err)
					}
					areq := hsm.ARQCRequest{PAN: aesPAN, PSN: req.PSN(), R: cryptogram.ACSessionR(req.ATC()), Data: req.ACData(), ARQC: req.Cryptogram()}
					bad := areq
					bad.ARQC[2] ^= 0x04
					if _, err := iss.VerifyARQCAndARPC1(bad, [2]byte{'0', '0'}, key); !errors.Is(err, hsm.ErrCryptogram) {
						t.Fatalf("tampered ARQC %d: %v, want ErrCryptogram", i, err)
					}
					arpc, err := iss.VerifyARQCAndARPC1(areq, [2]byte{'0', '0'}, key)
					if err != nil {
						t.Fatalf("verify ARQC %d: %v", i, err)
					}
					iad := de55.IssuerAuthDataMethod1(arpc, [2]byte{'0', '0'})
					if i == 1 {
						iad[5] ^= 0x20 // a tampered ARPC: the card must decline
						r2, err := c.CompleteOnline(iad, true, cdol2)
						if !errors.Is(err, cryptogram.ErrMismatch) || r2.CID.Type() != emv.AAC {
							t.Fatalf("tampered ARPC: %v, %v; want AAC and ErrMismatch", r2.CID.Flags(), err)
						}
						continue
					}
					r2, err := c.CompleteOnline(iad, true, cdol2)
					if err != nil || r2.CID.Type() != emv.TC {
						t.Fatalf("second GENERATE AC %d: %v, %v; want TC", i, r2.CID.Flags(), err)
					}
					// The TC verifies in the token too.
					tc := hsm.ARQCRequest{PAN: aesPAN, PSN: req.PSN(), R: cryptogram.ACSessionR(r2.ATC), Data: append(req.ACData(), cdol2...), ARQC: r2.Cryptogram}
					if err := iss.VerifyARQC(tc); err != nil {
						t.Fatalf("token refuses the card's TC: %v", err)
					}
				}
			})
		}
	}
}
