//go:debug rsa1024min=0

package card_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/oda"
	"github.com/posgate/posgate/emv/tlv"
)

// odaKeys reads the fixed test keys emv/oda's tests use.
func odaKeys(t *testing.T) map[string]*rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("../../testdata/emv/oda_test_keys.pem")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*rsa.PrivateKey{}
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatalf("parse key %s: %v", blk.Headers["Name"], err)
		}
		m[blk.Headers["Name"]] = k
	}
	return m
}

func TestODAPersonalisation(t *testing.T) {
	k := odaKeys(t)
	ca, err := oda.NewCA([5]byte{0xA0, 0, 0, 0x09, 0x99}, 1, k["ca"])
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	iss, err := ca.CertifyIssuer(k["issuer"], oda.CertTemplate{Subject: "476173", Expiry: exp})
	if err != nil {
		t.Fatal(err)
	}
	base := card.Config{PAN: "4761739001010119", Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: make([]byte, 16)}
	for _, tc := range []struct {
		name    string
		oda     *card.ODAConfig
		wantAIP emv.AIP
		wantErr error
		odaRecs int
	}{
		{"with_oda", &card.ODAConfig{Issuer: iss, ICCKey: k["icc"], CertExpiry: exp}, emv.AIP{0x79, 0x80}, nil, 1},
		{"without_oda", nil, emv.AIP{0x19, 0x80}, card.ErrNoODA, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.ODA = tc.oda
			c, err := card.New(cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if c.AIP() != tc.wantAIP {
				t.Errorf("AIP %X, want %X", c.AIP(), tc.wantAIP)
			}
			afl, recs, err := c.ReadRecords()
			if err != nil {
				t.Fatalf("ReadRecords: %v", err)
			}
			sel, err := oda.ODARecords(afl, recs)
			if err != nil || len(sel) != tc.odaRecs {
				t.Fatalf("ODARecords = %d, %v; want %d", len(sel), err, tc.odaRecs)
			}
			for i, r := range recs {
				list, err := tlv.DecodeCard(r.Data)
				if err != nil || len(list) != 1 || list[0].Tag != 0x70 || len(r.Data) > 254 {
					t.Errorf("record %d (%v) is not one 70 template of at most 254 bytes: %v", i, r, err)
				}
			}
			if _, err := c.InternalAuthenticate([]byte{1, 2, 3, 4}); !errors.Is(err, tc.wantErr) {
				t.Errorf("InternalAuthenticate: %v, want %v", err, tc.wantErr)
			}
			if _, err := c.GenerateACCDA(emv.TC, make([]byte, card.DefaultCDOL1().DataLen())); !errors.Is(err, tc.wantErr) {
				t.Errorf("GenerateACCDA: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestODAPersonalisationRefused(t *testing.T) {
	k := odaKeys(t)
	ca, err := oda.NewCA([5]byte{0xA0, 0, 0, 0x09, 0x99}, 1, k["ca"])
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	iss, err := ca.CertifyIssuer(k["issuer"], oda.CertTemplate{Subject: "476173", Expiry: exp})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *card.ODAConfig
		want error
	}{
		{"no_issuer", &card.ODAConfig{ICCKey: k["icc"], CertExpiry: exp}, oda.ErrKeySize},
		{"icc_key_longer_than_issuer", &card.ODAConfig{Issuer: iss, ICCKey: k["ca"], CertExpiry: exp}, oda.ErrKeySize},
		{"expiry_out_of_range", &card.ODAConfig{Issuer: iss, ICCKey: k["icc"]}, oda.ErrCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := card.New(card.Config{PAN: "4761739001010119", Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: make([]byte, 16), ODA: tc.cfg})
			if !errors.Is(err, tc.want) {
				t.Fatalf("New: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInternalAuthenticateRefusesBadData(t *testing.T) {
	k := odaKeys(t)
	ca, _ := oda.NewCA([5]byte{0xA0, 0, 0, 0x09, 0x99}, 1, k["ca"])
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	iss, err := ca.CertifyIssuer(k["issuer"], oda.CertTemplate{Subject: "476173", Expiry: exp})
	if err != nil {
		t.Fatal(err)
	}
	c, err := card.New(card.Config{PAN: "4761739001010119", Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: make([]byte, 16),
		ODA: &card.ODAConfig{Issuer: iss, ICCKey: k["icc512"], CertExpiry: exp}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{{"empty", nil}, {"three_bytes", []byte{1, 2, 3}}, {"five_bytes", []byte{1, 2, 3, 4, 5}}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.InternalAuthenticate(tc.data); !errors.Is(err, card.ErrData) {
				t.Fatalf("InternalAuthenticate: %v, want ErrData", err)
			}
		})
	}
}
