package tokenvault_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/cloud/tokenvault"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/fingerprint"
	"github.com/posgate/posgate/protocol/iso93"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

// Values from testdata/vectors/fingerprint.txt and
// testdata/vectors/cardblock.txt (AES row; BDK from X9.24-3-2017).
const (
	fpKey       = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
	fpPAN       = "4111111111111111"
	fpWant      = "0622241201382a45912fb22828b3f7db"
	bdk128      = "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	vectorBlock = "010130000C1234567890123456000000010030F78EBBE57A5767207ECACA9ADF583D998B094C0A32A63EE90DD5AB0D87487875E399A24DA4B5EB4267CF3742218482F9"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex constant: %v", err)
	}
	return b
}

// newVault imports the test keys under unique labels in the shared test
// token.
func newVault(t testing.TB) *tokenvault.Vault {
	t.Helper()
	tok := hsmtest.Token(t)
	v := &tokenvault.Vault{Token: tok, VaultLabel: hsmtest.Label(t, "vault"),
		FingerprintLabel: hsmtest.Label(t, "fp"), BDKLabel: hsmtest.Label(t, "bdk")}
	if err := tok.GenerateAES(v.VaultLabel, 256, hsm.UseEncrypt, hsm.UseDecrypt); err != nil {
		t.Fatalf("generate vault key: %v", err)
	}
	if err := tok.ImportHMAC(v.FingerprintLabel, unhex(t, fpKey)); err != nil {
		t.Fatalf("import fingerprint key: %v", err)
	}
	if err := tok.ImportAES(v.BDKLabel, unhex(t, bdk128), hsm.UsageBDK); err != nil {
		t.Fatalf("import BDK: %v", err)
	}
	return v
}

func TestSealOpen(t *testing.T) {
	v := newVault(t)
	pan, _ := card.ParsePAN(fpPAN)
	sealed, err := v.Seal(pan)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if bytes.Contains(sealed, []byte(pan.Digits())) {
		t.Fatal("sealed PAN contains the clear digits")
	}
	got, err := v.Open(sealed)
	if err != nil || got.Digits() != pan.Digits() {
		t.Fatalf("open = %s, %v; want %s", got, err, pan)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := v.Open(sealed); err == nil {
		t.Fatal("a tampered sealed PAN opened")
	}
}

func TestFingerprintMatchesVectorAndSoftware(t *testing.T) {
	v := newVault(t)
	for _, s := range []string{fpPAN, "4012345678909", "5555555555554444"} {
		pan, _ := card.ParsePAN(s)
		got, err := v.Fingerprint(pan)
		if err != nil {
			t.Fatalf("fingerprint %s: %v", pan, err)
		}
		soft, _ := fingerprint.Compute(unhex(t, fpKey), pan)
		if got != soft {
			t.Fatalf("token fingerprint %s, software %s for %s", got, soft, pan)
		}
		if s == fpPAN && got != fpWant {
			t.Fatalf("fingerprint = %s, want vector %s", got, fpWant)
		}
	}
}

func TestOpenCardBlock(t *testing.T) {
	v := newVault(t)
	ctx := context.Background()
	t.Run("published_vector", func(t *testing.T) {
		cd, device, ctr, err := v.OpenCardBlock(ctx, unhex(t, vectorBlock))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if cd.PAN.Digits() != fpPAN || cd.Expiry.String() != "2512" || device != "1234567890123456" || ctr != 1 {
			t.Fatalf("opened %v device %s counter %d", cd, device, ctr)
		}
	})
	t.Run("sealed_by_terminal_side", func(t *testing.T) {
		pan, _ := card.ParsePAN("5555555555554444")
		exp, _ := card.ParseExpiry("3001")
		raw := terminalBlock(t, pan, exp, 77)
		cd, device, ctr, err := v.OpenCardBlock(ctx, raw)
		if err != nil || cd.PAN.Digits() != pan.Digits() || ctr != 77 || device != "1234567890123456" {
			t.Fatalf("open = %v, %s, %d, %v", cd, device, ctr, err)
		}
	})
	malformed := []struct {
		name  string
		block []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a block")},
		{"truncated", unhex(t, vectorBlock)[:20]},
		{"ciphertext_flipped", func() []byte { b := unhex(t, vectorBlock); b[len(b)-20] ^= 0xff; return b }()},
	}
	for _, m := range malformed {
		t.Run("malformed_"+m.name, func(t *testing.T) {
			_, _, _, err := v.OpenCardBlock(ctx, m.block)
			if !errors.Is(err, cardblock.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformedBlock", err)
			}
		})
	}
	t.Run("missing_bdk_is_a_fault", func(t *testing.T) {
		w := *v
		w.BDKLabel = hsmtest.Label(t, "absent")
		_, _, _, err := w.OpenCardBlock(ctx, unhex(t, vectorBlock))
		if err == nil || errors.Is(err, cardblock.ErrMalformed) {
			t.Fatalf("err = %v, want a fault that is not ErrMalformedBlock", err)
		}
	})
}

// TestOpenTDESCardBlock checks the legacy-reader path: a block a TDES DUKPT
// reader sealed in software opens through the token's TDES BDK (ANSI
// X9.24-1 vector BDK and KSN).
func TestOpenTDESCardBlock(t *testing.T) {
	v := newVault(t)
	v.TDESBDKLabel = hsmtest.Label(t, "tdes-bdk")
	ctx := context.Background()
	bdk := unhex(t, "0123456789ABCDEFFEDCBA9876543210")
	ksn, err := dukpt.ParseTDESKSNHex("FFFF9876543210E00008")
	if err != nil {
		t.Fatal(err)
	}
	ipek, err := dukpt.TDESInitialKey(bdk, ksn)
	if err != nil {
		t.Fatal(err)
	}
	pan, _ := card.ParsePAN("4111111111111111")
	exp, _ := card.ParseExpiry("3012")
	b, err := cardblock.SealTDES(ipek, ksn, cardblock.ClearData{PAN: pan, Expiry: exp})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := v.OpenCardBlock(ctx, raw); !errors.Is(err, cardblock.ErrMalformed) {
		t.Fatalf("without a TDES BDK: err = %v, want ErrMalformedBlock", err)
	}
	if err := v.Token.ImportTDESBDK(v.TDESBDKLabel, bdk); err != nil {
		t.Fatal(err)
	}
	cd, device, ctr, err := v.OpenCardBlock(ctx, raw)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if cd.PAN.Digits() != pan.Digits() || cd.Expiry.String() != "3012" || ctr != 8 || device != "FFFF9876543210E00000" {
		t.Fatalf("opened %v device %s counter %d", cd, device, ctr)
	}
	raw[len(raw)-3] ^= 0x40
	if _, _, _, err := v.OpenCardBlock(ctx, raw); !errors.Is(err, cardblock.ErrMalformed) {
		t.Fatalf("tampered block: err = %v, want ErrMalformedBlock", err)
	}
}

// terminalBlock encrypts card data the way a terminal does: software DUKPT
// from the BDK's initial key for IKID 1234567890123456.
func terminalBlock(t testing.TB, pan card.PAN, exp card.Expiry, counter uint32) []byte {
	t.Helper()
	ikid := [8]byte{0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56}
	ik, err := dukpt.AESInitialKey(unhex(t, bdk128), ikid)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cardblock.SealAES(ik, dukpt.NewAESKSN(ikid, counter), cardblock.ClearData{PAN: pan, Expiry: exp})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestSwitchThroughToken runs an authorization end to end with the real
// token: decrypt in the token, fingerprint in the token, decide in SQLite.
func TestSwitchThroughToken(t *testing.T) {
	v := newVault(t)
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	w.Issuer.Vault = v
	sw := &authz.Switch{Store: st, Decrypter: v, Vault: v}
	c := w.NewCard(t, store.KindCredit, 5000, 0)
	fp, err := v.Fingerprint(c.PAN)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		counter uint32
		want    iso93.ActionCode
	}{{5, iso93.ActionApproved}, {5, iso93.ActionDuplicateTransmission}, {6, iso93.ActionApproved}} {
		r := w.Request(iso93.MTIAuthorizationRequest, c, 1000)
		r.CardBlock, r.Fingerprint = terminalBlock(t, c.PAN, c.Expiry, tc.counter), fp
		resp, err := sw.Authorize(context.Background(), r)
		if err != nil || resp.ActionCode != tc.want {
			t.Fatalf("request %d: %+v, %v; want %s", i, resp, err, tc.want)
		}
	}
	if got := w.Available(t, c.AccountID); got != 3000 {
		t.Fatalf("available = %d, want 3000", got)
	}
	cloudtest.CheckLedger(t, st)
}
