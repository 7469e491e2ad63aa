package oda_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv/oda"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

func seedCertificates() [][]byte {
	key := bytes.Repeat([]byte{0xC3}, 108)
	issuer := &oda.Certificate{Format: oda.FormatIssuerCert, Subject: []byte{0x47, 0x61, 0x73, 0xFF}, Expiry: [2]byte{0x12, 0x27},
		Serial: [3]byte{0, 0, 1}, HashAlg: oda.HashSHA1, KeyAlg: oda.AlgRSA, KeyLen: 128, ExpLen: 3, KeyField: key}
	icc := &oda.Certificate{Format: oda.FormatICCCert, Subject: []byte{0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19, 0xFF, 0xFF},
		Expiry: [2]byte{0x12, 0x27}, HashAlg: oda.HashSHA1, KeyAlg: oda.AlgRSA, KeyLen: 64, ExpLen: 1, KeyField: key[:86]}
	return [][]byte{issuer.Encode(), icc.Encode(), {0x6A, 0x02, 0xBC}, {0x6A, 0x04}, {}}
}

// FuzzParseCertificate: whatever ParseCertificate accepts re-encodes to
// the same bytes, and parsing that again gives the same certificate.
func FuzzParseCertificate(f *testing.F) {
	for _, s := range seedCertificates() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		c, err := oda.ParseCertificate(rec)
		if err != nil {
			return
		}
		enc := c.Encode()
		if !bytes.Equal(enc, rec) {
			t.Fatalf("Encode(ParseCertificate(x)) differs from x (%d vs %d bytes)", len(enc), len(rec))
		}
		c2, err := oda.ParseCertificate(enc)
		if err != nil || !bytes.Equal(c2.Encode(), enc) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

// FuzzParseSignedData: whatever ParseSignedData accepts re-encodes to the
// same bytes.
func FuzzParseSignedData(f *testing.F) {
	static := &oda.SignedData{Format: oda.FormatSignedStatic, HashAlg: oda.HashSHA1, DAC: [2]byte{0xDA, 0xC1}, Pad: bytes.Repeat([]byte{0xBB}, 102)}
	dynamic := &oda.SignedData{Format: oda.FormatSignedDynamic, HashAlg: oda.HashSHA1, Dynamic: []byte{8, 1, 2, 3, 4, 5, 6, 7, 8}, Pad: bytes.Repeat([]byte{0xBB}, 94)}
	for _, s := range [][]byte{static.Encode(), dynamic.Encode(), {0x6A, 0x05, 0x01, 0xFF, 0xBC}, {0x6A, 0xBC}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		s, err := oda.ParseSignedData(rec)
		if err != nil {
			return
		}
		if enc := s.Encode(); !bytes.Equal(enc, rec) {
			t.Fatalf("Encode(ParseSignedData(x)) differs from x (%d vs %d bytes)", len(enc), len(rec))
		}
		if n, ok := s.ICCDynamicNumber(); ok && (len(n) < 2 || len(n) > 8) {
			t.Fatalf("ICC dynamic number of %d bytes accepted", len(n))
		}
	})
}

// FuzzRecoverCertificates feeds arbitrary issuer certificate, ICC
// certificate and signed dynamic data bytes through the whole DDA chain:
// no panic, and only the genuine bytes verify.
func FuzzRecoverCertificates(f *testing.F) {
	fx := newFixture(f, "icc")
	un := []byte{9, 8, 7, 6}
	sdad, err := fx.card.InternalAuthenticate(un)
	if err != nil {
		f.Fatal(err)
	}
	issuerCert := tlvValue(fx.data, tags.IssuerPublicKeyCertificate)
	iccCert := tlvValue(fx.data, tags.ICCPublicKeyCertificate)
	f.Add(issuerCert, iccCert, sdad)
	f.Add(issuerCert[1:], iccCert, sdad)
	f.Add(issuerCert, bytes.Repeat([]byte{0xFF}, len(iccCert)), sdad)
	f.Add(issuerCert, iccCert, append([]byte{0}, sdad[1:]...))
	f.Fuzz(func(t *testing.T, ic, cc, sd []byte) {
		d := with(with(fx.data, tags.IssuerPublicKeyCertificate, ic), tags.ICCPublicKeyCertificate, cc)
		_, err := fx.verifier.VerifyDDA(d, un, sd)
		genuine := bytes.Equal(ic, issuerCert) && bytes.Equal(cc, iccCert) && bytes.Equal(sd, sdad)
		if err == nil && !genuine {
			t.Fatal("altered certificate or signature verified")
		}
		if err != nil && genuine {
			t.Fatalf("genuine data refused: %v", err)
		}
	})
}

func tlvValue(d oda.CardData, tag tlv.Tag) []byte {
	o, _ := tlv.Find(d.Objects, tag)
	return o.Value
}

// FuzzParseAFL: an accepted AFL re-encodes to the same bytes, and
// ODARecords over as many records as it names never panics.
func FuzzParseAFL(f *testing.F) {
	for _, s := range [][]byte{{0x08, 0x01, 0x01, 0x01, 0x10, 0x01, 0x03, 0x00}, {0x08, 0x01, 0x01}, {0xF0, 0x01, 0xFF, 0xFF}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, afl []byte) {
		e, err := oda.ParseAFL(afl)
		if err != nil {
			return
		}
		if enc := oda.EncodeAFL(e); !bytes.Equal(enc, afl) {
			t.Fatalf("EncodeAFL(ParseAFL(x)) = %X, want %X", enc, afl)
		}
		var recs []oda.Record
		want := 0
		for _, x := range e {
			for r := x.First; ; r++ {
				recs = append(recs, oda.Record{SFI: x.SFI, Data: []byte{0x70, 0x00}})
				if r == x.Last {
					break
				}
			}
			want += int(x.ODACount)
		}
		sel, err := oda.ODARecords(afl, recs)
		if err != nil || len(sel) != want {
			t.Fatalf("ODARecords = %d records, %v; want %d", len(sel), err, want)
		}
	})
}

// TestRecordPrintsNoContent: fmt and slog never show a record's or the
// card data's bytes.
func TestRecordPrintsNoContent(t *testing.T) {
	r := oda.Record{SFI: 1, Data: []byte{0x70, 0x0A, 0x5A, 0x08, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19}}
	d := oda.CardData{Objects: []tlv.TLV{tlv.New(tags.PAN, r.Data[4:])}, StaticData: r.Data}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %x %s", r, r, r, r, r), fmt.Sprintf("%v %+v %#v %x %s", d, d, d, d, d)} {
		if strings.Contains(strings.ToUpper(s), "4761739") || strings.Contains(s, "\x47\x61") {
			t.Fatalf("formatted output shows card data: %q", s)
		}
	}
}
