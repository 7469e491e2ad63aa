//go:debug rsa1024min=0

package oda_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/oda"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

var (
	testRID = [5]byte{0xA0, 0x00, 0x00, 0x09, 0x99}
	testPAN = "4761739001010119"
	testIMK = []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10}
	// today is the verifier's clock; the certificates expire after it.
	today      = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	certExpiry = time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC)
)

var update = flag.Bool("update", false, "regenerate testdata/emv/oda_test_keys.pem and oda_certificates.golden")

const (
	keysFile   = "../../testdata/emv/oda_test_keys.pem"
	goldenFile = "../../testdata/emv/oda_certificates.golden"
)

var keyBits = map[string]int{"ca": 1152, "issuer": 1024, "icc": 1024, "icc512": 512}

// keys are the test keys from testdata (fixed, so the certificates are
// golden): CA 1152 bits, issuer 1024 (so the issuer key needs a
// remainder, 92), ICC 1024 (remainder 9F48) or 512 (fits the
// certificate). -update generates new ones.
var keys = sync.OnceValue(func() map[string]*rsa.PrivateKey {
	m := map[string]*rsa.PrivateKey{}
	if *update {
		var out []byte
		for _, name := range slices.Sorted(maps.Keys(keyBits)) {
			k, err := rsa.GenerateKey(rand.Reader, keyBits[name])
			if err != nil {
				panic(fmt.Sprintf("generate %s key: %v", name, err))
			}
			m[name] = k
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Name": name}, Bytes: x509.MarshalPKCS1PrivateKey(k)})...)
		}
		if err := os.WriteFile(keysFile, out, 0o644); err != nil {
			panic(err)
		}
		return m
	}
	b, err := os.ReadFile(keysFile)
	if err != nil {
		panic(err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			panic(fmt.Sprintf("parse %s key: %v", blk.Headers["Name"], err))
		}
		m[blk.Headers["Name"]] = k
	}
	for name, bits := range keyBits {
		if m[name] == nil || m[name].N.BitLen() != bits {
			panic(fmt.Sprintf("%s: key %q missing or not %d bits; run go test -update", keysFile, name, bits))
		}
	}
	return m
})

type fixture struct {
	ca       *oda.CA
	issuer   *oda.Issuer
	card     *card.Card
	verifier *oda.Verifier
	data     oda.CardData
}

func newFixture(t testing.TB, iccKey string) fixture {
	t.Helper()
	k := keys()
	ca, err := oda.NewCA(testRID, 0x92, k["ca"])
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	iss, err := ca.CertifyIssuer(k["issuer"], oda.CertTemplate{Subject: testPAN[:6], Expiry: certExpiry, Serial: [3]byte{0, 0, 1}})
	if err != nil {
		t.Fatalf("CertifyIssuer: %v", err)
	}
	c, err := card.New(card.Config{PAN: testPAN, PSN: 1, Expiry: [3]byte{0x28, 0x12, 0x31}, IMK: testIMK,
		ODA: &card.ODAConfig{Issuer: iss, ICCKey: k[iccKey], CertExpiry: certExpiry, Serial: [3]byte{0, 0, 2}, DAC: [2]byte{0xDA, 0xC1}}})
	if err != nil {
		t.Fatalf("card.New: %v", err)
	}
	afl, recs, err := c.ReadRecords()
	if err != nil {
		t.Fatalf("ReadRecords: %v", err)
	}
	d, err := oda.ReadCardData(testRID, afl, recs, c.AIP())
	if err != nil {
		t.Fatalf("ReadCardData: %v", err)
	}
	v := &oda.Verifier{Keys: []oda.CAPublicKey{ca.PublicKey()}, Now: func() time.Time { return today }}
	return fixture{ca: ca, issuer: iss, card: c, verifier: v, data: d}
}

// with returns a copy of d with tag's value replaced inside the record
// templates (nil removes it).
func with(d oda.CardData, tag tlv.Tag, v []byte) oda.CardData {
	out := d
	out.Objects = replace(d.Objects, tag, v)
	return out
}

func replace(list []tlv.TLV, tag tlv.Tag, v []byte) []tlv.TLV {
	var out []tlv.TLV
	for _, o := range list {
		switch {
		case o.Tag.Constructed():
			o = tlv.Template(o.Tag, replace(o.Children, tag, v)...)
		case o.Tag == tag && v == nil:
			continue
		case o.Tag == tag:
			o = tlv.New(tag, v)
		}
		out = append(out, o)
	}
	return out
}

func value(t *testing.T, d oda.CardData, tag tlv.Tag) []byte {
	t.Helper()
	o, ok := tlv.Find(d.Objects, tag)
	if !ok {
		t.Fatalf("tag %s not in the card's records", tag)
	}
	return o.Value
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x01
	return out
}

func TestChainRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, icc    string
		iccRemainder bool
	}{
		{"icc_1024_with_remainder", "icc", true},
		{"icc_512_in_certificate", "icc512", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.icc)
			if _, ok := tlv.Find(f.data.Objects, tags.IssuerPublicKeyRemainder); !ok {
				t.Error("issuer key remainder (92) absent; the 1024-bit issuer key should not fit a 1152-bit CA certificate")
			}
			if _, ok := tlv.Find(f.data.Objects, tags.ICCPublicKeyRemainder); ok != tc.iccRemainder {
				t.Errorf("ICC key remainder (9F48) present = %v, want %v", ok, tc.iccRemainder)
			}
			iss, err := f.verifier.IssuerKey(f.data)
			if err != nil {
				t.Fatalf("IssuerKey: %v", err)
			}
			if !iss.Equal(&keys()["issuer"].PublicKey) {
				t.Error("recovered issuer key differs from the certified one")
			}
			icc, err := f.verifier.ICCKey(f.data)
			if err != nil {
				t.Fatalf("ICCKey: %v", err)
			}
			if !icc.Equal(&keys()[tc.icc].PublicKey) {
				t.Error("recovered ICC key differs from the certified one")
			}
		})
	}
}

func TestSDA(t *testing.T) {
	f := newFixture(t, "icc")
	ssad := value(t, f.data, tags.SignedStaticData)
	tamperedStatic := f.data
	tamperedStatic.StaticData = flip(f.data.StaticData, 7)
	for _, tc := range []struct {
		name string
		d    oda.CardData
		want error
	}{
		{"ok", f.data, nil},
		{"tampered_record", tamperedStatic, oda.ErrHash},
		{"tampered_signature", with(f.data, tags.SignedStaticData, flip(ssad, 40)), oda.ErrRecoveredFormat},
		{"short_signature", with(f.data, tags.SignedStaticData, ssad[1:]), oda.ErrSignatureLength},
		{"signature_absent", with(f.data, tags.SignedStaticData, nil), oda.ErrMissingData},
		{"issuer_remainder_absent", with(f.data, tags.IssuerPublicKeyRemainder, nil), oda.ErrMissingData},
		{"issuer_exponent_wrong", with(f.data, tags.IssuerPublicKeyExponent, []byte{0x03}), oda.ErrHash},
		{"wrong_ca_index", with(f.data, tags.CAPublicKeyIndex, []byte{0x93}), oda.ErrUnknownCAKey},
		{"pan_not_of_issuer", with(f.data, tags.PAN, []byte{0x51, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x18}), oda.ErrCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dac, err := f.verifier.VerifySDA(tc.d)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifySDA: %v", err)
				}
				if dac != [2]byte{0xDA, 0xC1} {
					t.Errorf("DAC = %X, want DAC1", dac)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifySDA error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWrongRIDRefused(t *testing.T) {
	f := newFixture(t, "icc")
	d := f.data
	d.RID = [5]byte{0xA0, 0, 0, 0, 0x04}
	if _, err := f.verifier.IssuerKey(d); !errors.Is(err, oda.ErrUnknownCAKey) {
		t.Fatalf("IssuerKey with another RID: %v, want ErrUnknownCAKey", err)
	}
}

func TestExpiredCertificateRefused(t *testing.T) {
	k := keys()
	ca, err := oda.NewCA(testRID, 0x92, k["ca"])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		issuerExpiry time.Time
		iccExpiry    time.Time
		now          time.Time
		want         error
	}{
		{"valid_through_end_of_month", certExpiry, certExpiry, time.Date(2027, 12, 31, 23, 59, 0, 0, time.UTC), nil},
		{"issuer_expired", time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), certExpiry, today, oda.ErrExpired},
		{"icc_expired", certExpiry, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), today, oda.ErrExpired},
		{"both_expired_next_month", certExpiry, certExpiry, time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC), oda.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := ca.CertifyIssuer(k["issuer"], oda.CertTemplate{Subject: "476173", Expiry: tc.issuerExpiry})
			if err != nil {
				t.Fatal(err)
			}
			c, err := card.New(card.Config{PAN: testPAN, Expiry: [3]byte{0x28, 0x12, 0x31}, IMK: testIMK,
				ODA: &card.ODAConfig{Issuer: iss, ICCKey: k["icc512"], CertExpiry: tc.iccExpiry}})
			if err != nil {
				t.Fatal(err)
			}
			afl, recs, err := c.ReadRecords()
			if err != nil {
				t.Fatal(err)
			}
			d, err := oda.ReadCardData(testRID, afl, recs, c.AIP())
			if err != nil {
				t.Fatal(err)
			}
			v := &oda.Verifier{Keys: []oda.CAPublicKey{ca.PublicKey()}, Now: func() time.Time { return tc.now }}
			_, err = v.ICCKey(d)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("ICCKey error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDDA(t *testing.T) {
	f := newFixture(t, "icc")
	un := []byte{0x11, 0x22, 0x33, 0x44}
	sdad, err := f.card.InternalAuthenticate(un)
	if err != nil {
		t.Fatalf("InternalAuthenticate: %v", err)
	}
	iccCert := value(t, f.data, tags.ICCPublicKeyCertificate)
	tamperedStatic := f.data
	tamperedStatic.StaticData = flip(f.data.StaticData, 3)
	for _, tc := range []struct {
		name string
		d    oda.CardData
		un   []byte
		sdad []byte
		want error
	}{
		{"ok", f.data, un, sdad, nil},
		{"tampered_signature", f.data, un, flip(sdad, 64), oda.ErrRecoveredFormat},
		{"wrong_unpredictable_number", f.data, []byte{0x11, 0x22, 0x33, 0x45}, sdad, oda.ErrHash},
		{"tampered_record", tamperedStatic, un, sdad, oda.ErrHash},
		{"tampered_icc_certificate", with(f.data, tags.ICCPublicKeyCertificate, flip(iccCert, 100)), un, sdad, oda.ErrRecoveredFormat},
		{"icc_certificate_absent", with(f.data, tags.ICCPublicKeyCertificate, nil), un, sdad, oda.ErrMissingData},
		{"icc_remainder_absent", with(f.data, tags.ICCPublicKeyRemainder, nil), un, sdad, oda.ErrMissingData},
		{"other_pan", with(f.data, tags.PAN, []byte{0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x27}), un, sdad, oda.ErrCertificate},
		{"signature_absent", f.data, un, nil, oda.ErrMissingData},
		{"wrong_ca_index", with(f.data, tags.CAPublicKeyIndex, []byte{0x01}), un, sdad, oda.ErrUnknownCAKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := f.verifier.VerifyDDA(tc.d, tc.un, tc.sdad)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyDDA: %v", err)
				}
				if len(n) != 8 {
					t.Errorf("ICC dynamic number of %d bytes, want 8", len(n))
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyDDA error = %v, want %v", err, tc.want)
			}
		})
	}
}

// forger answers INTERNAL AUTHENTICATE with a fixed value.
type forger struct{ sdad []byte }

func (f forger) InternalAuthenticate([]byte) ([]byte, error) { return f.sdad, nil }

// replayer replays one genuine answer, given for another unpredictable
// number.
type replayer struct {
	c  *card.Card
	un []byte
}

func (r replayer) InternalAuthenticate([]byte) ([]byte, error) { return r.c.InternalAuthenticate(r.un) }

func TestAuthenticateSetsTVR(t *testing.T) {
	f := newFixture(t, "icc")
	un := [4]byte{0xCA, 0xFE, 0xBA, 0xBE}
	tampered := f.data
	tampered.StaticData = flip(f.data.StaticData, 0)
	both := oda.Terminal{SDA: true, DDA: true}
	for _, tc := range []struct {
		name       string
		d          oda.CardData
		aip        emv.AIP
		term       oda.Terminal
		card       oda.InternalAuthenticator
		wantMethod oda.Method
		wantTVR    []emv.Bit
		wantTSI    bool
		wantErr    error
	}{
		{"dda_ok", f.data, f.card.AIP(), both, f.card, oda.MethodDDA, nil, true, nil},
		{"sda_ok_terminal_without_dda", f.data, f.card.AIP(), oda.Terminal{SDA: true}, nil, oda.MethodSDA, nil, true, nil},
		{"sda_ok_card_without_dda", f.data, emv.AIP{0x58, 0x00}, both, nil, oda.MethodSDA, nil, true, nil},
		{"dda_replayed_answer", f.data, f.card.AIP(), both, replayer{f.card, []byte{1, 2, 3, 4}}, oda.MethodDDA, []emv.Bit{emv.TVRDDAFailed}, true, oda.ErrHash},
		{"dda_forged_answer", f.data, f.card.AIP(), both, forger{bytes.Repeat([]byte{0x55}, 128)}, oda.MethodDDA, []emv.Bit{emv.TVRDDAFailed}, true, oda.ErrRecoveredFormat},
		{"dda_tampered_record", tampered, f.card.AIP(), both, f.card, oda.MethodDDA, []emv.Bit{emv.TVRDDAFailed}, true, oda.ErrHash},
		{"dda_icc_data_missing", with(f.data, tags.ICCPublicKeyCertificate, nil), f.card.AIP(), both, f.card, oda.MethodDDA, []emv.Bit{emv.TVRDDAFailed, emv.TVRICCDataMissing}, true, oda.ErrMissingData},
		{"sda_tampered_record", tampered, f.card.AIP(), oda.Terminal{SDA: true}, nil, oda.MethodSDA, []emv.Bit{emv.TVRSDAFailed}, true, oda.ErrHash},
		{"sda_icc_data_missing", with(f.data, tags.SignedStaticData, nil), f.card.AIP(), oda.Terminal{SDA: true}, nil, oda.MethodSDA, []emv.Bit{emv.TVRSDAFailed, emv.TVRICCDataMissing}, true, oda.ErrMissingData},
		{"cda_keys_ok", f.data, f.card.AIP(), oda.Terminal{SDA: true, DDA: true, CDA: true}, f.card, oda.MethodCDA, nil, true, nil},
		{"cda_icc_data_missing", with(f.data, tags.ICCPublicKeyExponent, nil), f.card.AIP(), oda.Terminal{CDA: true}, f.card, oda.MethodCDA, []emv.Bit{emv.TVRCDAFailed, emv.TVRICCDataMissing}, true, oda.ErrMissingData},
		{"not_supported", f.data, emv.AIP{0x18, 0x00}, both, f.card, oda.MethodNone, []emv.Bit{emv.TVROfflineDataAuthNotPerformed}, false, oda.ErrNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tvr emv.TVR
			var tsi emv.TSI
			m, err := f.verifier.Authenticate(tc.d, tc.aip, tc.term, un, tc.card, &tvr, &tsi)
			if m != tc.wantMethod {
				t.Errorf("method = %v, want %v", m, tc.wantMethod)
			}
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error = %v, want %v", err, tc.wantErr)
			}
			var want emv.TVR
			for _, b := range tc.wantTVR {
				want.Set(b)
			}
			if tvr != want {
				t.Errorf("TVR = %X %v, want %X %v", tvr[:], tvr.Flags(), want[:], want.Flags())
			}
			if got := tsi.Has(emv.TSIOfflineDataAuthPerformed); got != tc.wantTSI {
				t.Errorf("TSI offline data authentication performed = %v, want %v", got, tc.wantTSI)
			}
		})
	}
}

func TestStaticData(t *testing.T) {
	aip := emv.AIP{0x78, 0x80}
	for _, tc := range []struct {
		name    string
		recs    []oda.Record
		tagList []byte
		want    []byte
		wantErr error
	}{
		{"sfi_1_template_value", []oda.Record{{SFI: 1, Data: []byte{0x70, 0x03, 0x5F, 0x34, 0x00}}}, nil, []byte{0x5F, 0x34, 0x00}, nil},
		{"sfi_11_whole_record", []oda.Record{{SFI: 11, Data: []byte{0x70, 0x01, 0xAB}}}, nil, []byte{0x70, 0x01, 0xAB}, nil},
		{"aip_by_tag_list", []oda.Record{{SFI: 2, Data: []byte{0x70, 0x00}}}, []byte{0x82}, []byte{0x78, 0x80}, nil},
		{"tag_list_other_tag", []oda.Record{{SFI: 2, Data: []byte{0x70, 0x00}}}, []byte{0x82, 0x9F, 0x36}, nil, oda.ErrStaticData},
		{"sfi_1_not_template", []oda.Record{{SFI: 1, Data: []byte{0x5F, 0x34, 0x01, 0x00}}}, nil, nil, oda.ErrStaticData},
		{"template_length_wrong", []oda.Record{{SFI: 1, Data: []byte{0x70, 0x04, 0x5F, 0x34, 0x01, 0x00, 0x00}}}, nil, nil, oda.ErrStaticData},
		{"sfi_0", []oda.Record{{SFI: 0, Data: []byte{0x70, 0x00}}}, nil, nil, oda.ErrStaticData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := oda.StaticData(tc.recs, tc.tagList, aip)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("StaticData = %X, %v; want %X", got, err, tc.want)
			}
		})
	}
}

func TestParseAFL(t *testing.T) {
	for _, tc := range []struct {
		name string
		afl  []byte
		ok   bool
	}{
		{"two_entries", []byte{0x08, 0x01, 0x01, 0x01, 0x10, 0x01, 0x03, 0x00}, true},
		{"empty", nil, false},
		{"not_multiple_of_4", []byte{0x08, 0x01, 0x01}, false},
		{"sfi_0", []byte{0x00, 0x01, 0x01, 0x00}, false},
		{"low_bits_set", []byte{0x09, 0x01, 0x01, 0x00}, false},
		{"record_0", []byte{0x08, 0x00, 0x01, 0x00}, false},
		{"last_before_first", []byte{0x08, 0x02, 0x01, 0x00}, false},
		{"too_many_oda_records", []byte{0x08, 0x01, 0x02, 0x03}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := oda.ParseAFL(tc.afl)
			if tc.ok != (err == nil) {
				t.Fatalf("ParseAFL error = %v, want ok = %v", err, tc.ok)
			}
			if err == nil && !bytes.Equal(oda.EncodeAFL(e), tc.afl) {
				t.Errorf("EncodeAFL(ParseAFL(x)) = %X, want %X", oda.EncodeAFL(e), tc.afl)
			}
			if err != nil && !errors.Is(err, oda.ErrStaticData) {
				t.Errorf("error %v does not wrap ErrStaticData", err)
			}
		})
	}
}

func TestCardWithoutODA(t *testing.T) {
	c, err := card.New(card.Config{PAN: testPAN, Expiry: [3]byte{0x28, 0x12, 0x31}, IMK: testIMK})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.InternalAuthenticate([]byte{1, 2, 3, 4}); !errors.Is(err, card.ErrNoODA) {
		t.Fatalf("InternalAuthenticate without ODA: %v, want ErrNoODA", err)
	}
	afl, recs, err := c.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	d, err := oda.ReadCardData(testRID, afl, recs, c.AIP())
	if err != nil {
		t.Fatal(err)
	}
	var tvr emv.TVR
	var tsi emv.TSI
	v := &oda.Verifier{Now: func() time.Time { return today }}
	// The default AIP 1980 names CDA only, which is not built here.
	if m, err := v.Authenticate(d, c.AIP(), oda.Terminal{SDA: true, DDA: true}, [4]byte{}, c, &tvr, &tsi); m != oda.MethodNone || !errors.Is(err, oda.ErrNotSupported) || !tvr.Has(emv.TVROfflineDataAuthNotPerformed) {
		t.Fatalf("Authenticate = %v, %v, TVR %v; want none, ErrNotSupported, ODA not performed", m, err, tvr.Flags())
	}
}

// BenchmarkVerifyDDA measures the terminal's whole DDA: recover the
// issuer key (1152-bit CA), the ICC key (1024-bit issuer), and the signed
// dynamic data (1024-bit ICC), with SHA-1 over the static data.
func BenchmarkVerifyDDA(b *testing.B) {
	f := newFixture(b, "icc")
	un := []byte{1, 2, 3, 4}
	sdad, err := f.card.InternalAuthenticate(un)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.verifier.VerifyDDA(f.data, un, sdad); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkInternalAuthenticate measures the simulated card's signature
// (1024-bit ICC key, no CRT).
func BenchmarkInternalAuthenticate(b *testing.B) {
	f := newFixture(b, "icc")
	un := []byte{1, 2, 3, 4}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.card.InternalAuthenticate(un); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCertificatesGolden pins the certificates made from the fixed test
// keys: the CA public key, the issuer certificate (90, 92, 9F32), the
// signed static data (93) and the ICC certificate (9F46, 9F48, 9F47) of
// the test card, as tag and hex per line. Another implementation can
// check its recovery against these.
func TestCertificatesGolden(t *testing.T) {
	f := newFixture(t, "icc")
	var b strings.Builder
	ca := f.ca.PublicKey()
	fmt.Fprintf(&b, "# CA public key RID %X index %02X exponent %X\nCA %X\n", ca.RID, ca.Index, ca.Key.E, ca.Key.N.Bytes())
	for _, tag := range []tlv.Tag{tags.CAPublicKeyIndex, tags.IssuerPublicKeyCertificate, tags.IssuerPublicKeyRemainder, tags.IssuerPublicKeyExponent,
		tags.SignedStaticData, tags.ICCPublicKeyCertificate, tags.ICCPublicKeyRemainder, tags.ICCPublicKeyExponent, tags.SDATagList, tags.DDOL} {
		fmt.Fprintf(&b, "%s %s\n", tag, strings.ToUpper(hex.EncodeToString(value(t, f.data, tag))))
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(goldenFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("read golden (go test -update writes it): %v", err)
	}
	if got != string(want) {
		t.Errorf("certificates differ from %s (go test -update rewrites it):\n%s", goldenFile, got)
	}
}
