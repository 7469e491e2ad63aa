// Package oda implements EMV offline data authentication (EMV 4.4 Book 2
// sections 5 and 6, Book 3 section 10.3): static data authentication
// (SDA) and dynamic data authentication (DDA) with RSA certificates, the
// terminal's verification (Verifier) and a test certification authority
// (CA, Issuer) that makes the certificates and signatures a simulated card
// carries.
//
// RSA here is EMV's "digital signature scheme giving message recovery":
// the signer applies the private exponent to a block that starts with
// header 6A and ends with trailer BC and a SHA-1 hash; the verifier applies
// the public exponent and reads the block back. No crypto/rsa padding
// scheme applies; the arithmetic is math/big.
//
// Combined DDA/application cryptogram generation (CDA) is in cda.go: the
// terminal recovers the keys at the ODA step (Authenticate) and verifies
// the card's signature in the GENERATE AC answer (AuthenticateCDA).
//
// Errors never carry key bytes or card data (a PAN mismatch says so, without
// either PAN). The package's functions are safe for concurrent use; CA,
// Issuer and a Verifier whose fields are not changed after first use are
// safe for concurrent use.
package oda

import (
	"bytes"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

// Errors callers branch on. Verification errors wrap one of them.
var (
	// ErrMissingData means a data object ODA needs is absent (the
	// terminal sets "ICC data missing").
	ErrMissingData = errors.New("oda: ICC data missing")
	// ErrUnknownCAKey means the terminal holds no CA public key for the
	// card's RID and CA public key index.
	ErrUnknownCAKey = errors.New("oda: unknown CA public key")
	// ErrSignatureLength means a certificate or signature is not as long
	// as the key that recovers it, or not below its modulus.
	ErrSignatureLength = errors.New("oda: signature length does not match the key")
	// ErrRecoveredFormat means recovered data lacks header 6A, trailer BC
	// or the expected format byte, or its fields do not fit.
	ErrRecoveredFormat = errors.New("oda: recovered data malformed")
	// ErrHash means the hash recovered from a certificate or signature
	// does not match the data.
	ErrHash = errors.New("oda: hash mismatch")
	// ErrCertificate means a certificate's content is wrong: algorithm
	// indicators, key or exponent lengths, issuer identifier or PAN.
	ErrCertificate = errors.New("oda: certificate content invalid")
	// ErrExpired means a certificate's expiration month has passed.
	ErrExpired = errors.New("oda: certificate expired")
	// ErrStaticData means the records for offline data authentication
	// are malformed (a record in SFI 1..10 that is not a 70 template, an
	// SDA tag list naming anything but 82).
	ErrStaticData = errors.New("oda: static data to be authenticated malformed")
	// ErrKeySize means a key does not suit its role (modulus not whole
	// bytes, outside 512..1984 bits, longer than its certifier's).
	ErrKeySize = errors.New("oda: key size unsuitable")
	// ErrNotSupported means neither the card nor the terminal settings
	// allow SDA or DDA (the terminal sets "offline data authentication
	// not performed").
	ErrNotSupported = errors.New("oda: no offline data authentication method in common")
)

// Tags ODA reads, named once.
const (
	tagCAIndex         = tags.CAPublicKeyIndex
	tagIssuerCert      = tags.IssuerPublicKeyCertificate
	tagIssuerRemainder = tags.IssuerPublicKeyRemainder
	tagIssuerExponent  = tags.IssuerPublicKeyExponent
	tagICCCert         = tags.ICCPublicKeyCertificate
	tagICCRemainder    = tags.ICCPublicKeyRemainder
	tagICCExponent     = tags.ICCPublicKeyExponent
	tagSignedStatic    = tags.SignedStaticData
)

// CAPublicKey is a certification authority public key as a terminal
// loads it: registered application provider identifier, CA public key
// index (tag 8F) and the RSA key.
type CAPublicKey struct {
	RID   [5]byte
	Index byte
	Key   *rsa.PublicKey
}

// Method is the offline data authentication a terminal performed.
type Method int

// Methods.
const (
	MethodNone Method = iota
	MethodSDA
	MethodDDA
	MethodCDA
)

// String names the method.
func (m Method) String() string {
	switch m {
	case MethodSDA:
		return "SDA"
	case MethodDDA:
		return "DDA"
	case MethodCDA:
		return "CDA"
	}
	return "none"
}

// Record is one record the AFL marks for offline data authentication, as
// READ RECORD returned it: for SFI 1 to 10 a 70 template whose value is
// authenticated, for SFI 11 to 30 the whole record.
//
// Data holds card data (the PAN): String, Format and LogValue show the SFI
// and length only.
type Record struct {
	SFI  byte
	Data []byte
}

// String describes the record without its content.
func (r Record) String() string { return fmt.Sprintf("SFI %d record [%d bytes]", r.SFI, len(r.Data)) }

// Format prints String for every verb, so no fmt verb shows the content.
func (r Record) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

// LogValue is String for log/slog.
func (r Record) LogValue() slog.Value { return slog.StringValue(r.String()) }

// AFLEntry is one four-byte entry of the application file locator (94).
type AFLEntry struct {
	SFI, First, Last, ODACount byte
}

// ParseAFL splits an AFL into entries, refusing a length that is not a
// multiple of 4, SFI 0 or above 30, record 0, last before first, and more
// ODA records than the entry names.
func ParseAFL(afl []byte) ([]AFLEntry, error) {
	if len(afl) == 0 || len(afl)%4 != 0 {
		return nil, fmt.Errorf("parse AFL of %d bytes: %w", len(afl), ErrStaticData)
	}
	out := make([]AFLEntry, 0, len(afl)/4)
	for i := 0; i < len(afl); i += 4 {
		e := AFLEntry{SFI: afl[i] >> 3, First: afl[i+1], Last: afl[i+2], ODACount: afl[i+3]}
		if afl[i]&7 != 0 || e.SFI == 0 || e.SFI > 30 || e.First == 0 || e.Last < e.First || int(e.ODACount) > int(e.Last-e.First)+1 {
			return nil, fmt.Errorf("parse AFL entry %d: %w", i/4, ErrStaticData)
		}
		out = append(out, e)
	}
	return out, nil
}

// EncodeAFL returns the AFL bytes for entries (ParseAFL's inverse).
func EncodeAFL(entries []AFLEntry) []byte {
	b := make([]byte, 0, 4*len(entries))
	for _, e := range entries {
		b = append(b, e.SFI<<3, e.First, e.Last, e.ODACount)
	}
	return b
}

// StaticData builds the static data to be authenticated (Book 3 10.3):
// the records in AFL order (the value of the 70 template for SFI 1 to 10,
// the whole record otherwise), then, when the card has an SDA tag list
// (9F4A, nil when absent), the AIP. The list may name only 82.
func StaticData(records []Record, sdaTagList []byte, aip emv.AIP) ([]byte, error) {
	var out []byte
	for i, r := range records {
		if r.SFI == 0 || r.SFI > 30 {
			return nil, fmt.Errorf("static data: record %d: SFI %d: %w", i, r.SFI, ErrStaticData)
		}
		if r.SFI > 10 {
			out = append(out, r.Data...)
			continue
		}
		if len(r.Data) < 2 || r.Data[0] != 0x70 {
			return nil, fmt.Errorf("static data: record %d of SFI %d is not a 70 template: %w", i, r.SFI, ErrStaticData)
		}
		l, n, err := tlv.ReadLength(r.Data[1:])
		if err != nil || 1+n+l != len(r.Data) {
			return nil, fmt.Errorf("static data: record %d of SFI %d: bad template length: %w", i, r.SFI, ErrStaticData)
		}
		out = append(out, r.Data[1+n:]...)
	}
	if sdaTagList != nil {
		if !bytes.Equal(sdaTagList, []byte{0x82}) {
			return nil, fmt.Errorf("static data: SDA tag list names other tags than 82: %w", ErrStaticData)
		}
		out = append(out, aip[:]...)
	}
	return out, nil
}

// CardData is what the terminal read from the card for ODA.
type CardData struct {
	// RID is the first five bytes of the selected AID.
	RID [5]byte
	// Objects are the data objects read from the card's records (8F, 90,
	// 92, 9F32, 93, 9F46-9F49, 5A). Templates are searched depth first.
	Objects []tlv.TLV
	// StaticData is the static data to be authenticated (StaticData).
	StaticData []byte
}

// String describes the card data without its content (it holds the PAN).
func (d CardData) String() string {
	return fmt.Sprintf("RID %X, %d objects, %d bytes of static data", d.RID, len(d.Objects), len(d.StaticData))
}

// Format prints String for every verb, so no fmt verb shows the content.
func (d CardData) Format(f fmt.State, _ rune) { fmt.Fprint(f, d.String()) }

// LogValue is String for log/slog.
func (d CardData) LogValue() slog.Value { return slog.StringValue(d.String()) }

func (d CardData) get(t tlv.Tag) []byte {
	o, ok := tlv.Find(d.Objects, t)
	if !ok {
		return nil
	}
	return o.Value
}

func (d CardData) need(t tlv.Tag) ([]byte, error) {
	v := d.get(t)
	if len(v) == 0 {
		return nil, fmt.Errorf("tag %s absent: %w", t, ErrMissingData)
	}
	return v, nil
}

// Verifier is a terminal's offline data authentication: its CA public
// keys and clock. Safe for concurrent use when its fields are not changed
// after the first call.
type Verifier struct {
	// Keys are the CA public keys the terminal trusts.
	Keys []CAPublicKey
	// Now gives the date certificates are checked against; nil means
	// time.Now.
	Now func() time.Time
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) caKey(rid [5]byte, index byte) (*rsa.PublicKey, error) {
	for _, k := range v.Keys {
		if k.RID == rid && k.Index == index && k.Key != nil {
			return k.Key, nil
		}
	}
	return nil, fmt.Errorf("RID %X index %02X: %w", rid, index, ErrUnknownCAKey)
}

// IssuerKey recovers and checks the issuer public key certificate (90,
// with 92 and 9F32) under the CA key named by the RID and 8F (Book 2
// 5.3): length, framing, format 02, hash, issuer identifier against the
// PAN, expiry, algorithm indicators.
func (v *Verifier) IssuerKey(d CardData) (*rsa.PublicKey, error) {
	idx, err := d.need(tagCAIndex)
	if err != nil {
		return nil, fmt.Errorf("recover issuer key: %w", err)
	}
	ca, err := v.caKey(d.RID, idx[0])
	if err != nil {
		return nil, fmt.Errorf("recover issuer key: %w", err)
	}
	certBytes, err := d.need(tagIssuerCert)
	if err != nil {
		return nil, fmt.Errorf("recover issuer key: %w", err)
	}
	exp, err := d.need(tagIssuerExponent)
	if err != nil {
		return nil, fmt.Errorf("recover issuer key: %w", err)
	}
	pan, err := d.need(tags.PAN)
	if err != nil {
		return nil, fmt.Errorf("recover issuer key: %w", err)
	}
	key, err := v.recoverKey(ca, certBytes, FormatIssuerCert, d.get(tagIssuerRemainder), exp, nil)
	if err != nil {
		return nil, fmt.Errorf("recover issuer key: %w", err)
	}
	if !issuerIDMatches(key.subject, pan) {
		return nil, fmt.Errorf("recover issuer key: issuer identifier does not match the PAN: %w", ErrCertificate)
	}
	return key.pub, nil
}

// ICCKey recovers the issuer key, then the ICC public key certificate
// (9F46, with 9F48 and 9F47) under it (Book 2 6.4): the certificate's hash
// covers d.StaticData, and its PAN must equal 5A.
func (v *Verifier) ICCKey(d CardData) (*rsa.PublicKey, error) {
	iss, err := v.IssuerKey(d)
	if err != nil {
		return nil, err
	}
	return v.iccKey(iss, d)
}

func (v *Verifier) iccKey(iss *rsa.PublicKey, d CardData) (*rsa.PublicKey, error) {
	certBytes, err := d.need(tagICCCert)
	if err != nil {
		return nil, fmt.Errorf("recover ICC key: %w", err)
	}
	exp, err := d.need(tagICCExponent)
	if err != nil {
		return nil, fmt.Errorf("recover ICC key: %w", err)
	}
	pan := d.get(tags.PAN)
	key, err := v.recoverKey(iss, certBytes, FormatICCCert, d.get(tagICCRemainder), exp, d.StaticData)
	if err != nil {
		return nil, fmt.Errorf("recover ICC key: %w", err)
	}
	want := padF(10)
	copy(want, pan)
	if len(pan) > 10 || subtle.ConstantTimeCompare(key.subject, want) != 1 {
		return nil, fmt.Errorf("recover ICC key: certificate PAN does not match the card's: %w", ErrCertificate)
	}
	return key.pub, nil
}

type recoveredKey struct {
	pub     *rsa.PublicKey
	subject []byte
}

// recoverKey recovers a format 02 or 04 certificate under signer and
// rebuilds the certified key.
func (v *Verifier) recoverKey(signer *rsa.PublicKey, certBytes []byte, format byte, rem, exp, extra []byte) (recoveredKey, error) {
	rec, err := recoverRSA(signer, certBytes)
	if err != nil {
		return recoveredKey{}, err
	}
	c, err := ParseCertificate(rec)
	if err != nil {
		return recoveredKey{}, err
	}
	if c.Format != format {
		return recoveredKey{}, fmt.Errorf("certificate format %02X, want %02X: %w", c.Format, format, ErrRecoveredFormat)
	}
	if int(c.KeyLen) > len(c.KeyField) && len(rem) == 0 {
		// Checked before the hash, which would fail too, so that the
		// terminal can tell "ICC data missing".
		return recoveredKey{}, fmt.Errorf("key remainder absent: %w", ErrMissingData)
	}
	want := sha1Of(c.hashedPart(), rem, exp, extra)
	if subtle.ConstantTimeCompare(want[:], c.Hash[:]) != 1 {
		return recoveredKey{}, fmt.Errorf("certificate: %w", ErrHash)
	}
	if c.HashAlg != HashSHA1 || c.KeyAlg != AlgRSA {
		return recoveredKey{}, fmt.Errorf("certificate algorithm indicators %02X/%02X: %w", c.HashAlg, c.KeyAlg, ErrCertificate)
	}
	if err := checkExpiry(c.Expiry, v.now()); err != nil {
		return recoveredKey{}, err
	}
	if int(c.ExpLen) != len(exp) {
		return recoveredKey{}, fmt.Errorf("certificate exponent length %d, card's %d: %w", c.ExpLen, len(exp), ErrCertificate)
	}
	e, err := parseExponent(exp)
	if err != nil {
		return recoveredKey{}, err
	}
	n := int(c.KeyLen)
	var mod []byte
	switch {
	case n <= len(c.KeyField):
		if len(rem) != 0 {
			return recoveredKey{}, fmt.Errorf("certificate holds the whole key but a remainder is present: %w", ErrCertificate)
		}
		mod = c.KeyField[:n]
	case n == len(c.KeyField)+len(rem):
		mod = append(append([]byte(nil), c.KeyField...), rem...)
	default:
		return recoveredKey{}, fmt.Errorf("key remainder of %d bytes, want %d: %w", len(rem), n-len(c.KeyField), ErrCertificate)
	}
	if n < 64 || mod[0] == 0 {
		return recoveredKey{}, fmt.Errorf("certified key of %d bytes: %w", n, ErrCertificate)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(mod), E: e}
	return recoveredKey{pub: pub, subject: c.Subject}, nil
}

// issuerIDMatches compares the F-padded issuer identifier (3 to 8
// digits) with the leading digits of the PAN (5A).
func issuerIDMatches(id, pan []byte) bool {
	digits := 0
	for i := 0; i < 8; i++ {
		nib := id[i/2] >> 4
		if i%2 == 1 {
			nib = id[i/2] & 0x0F
		}
		if nib == 0xF {
			break
		}
		if nib > 9 || i/2 >= len(pan) {
			return false
		}
		p := pan[i/2] >> 4
		if i%2 == 1 {
			p = pan[i/2] & 0x0F
		}
		if p != nib {
			return false
		}
		digits++
	}
	if digits < 3 {
		return false
	}
	for i := digits; i < 8; i++ { // the rest must be F padding
		nib := id[i/2] >> 4
		if i%2 == 1 {
			nib = id[i/2] & 0x0F
		}
		if nib != 0xF {
			return false
		}
	}
	return true
}

// checkExpiry refuses an MMYY date whose month ended before now (UTC).
func checkExpiry(mmyy [2]byte, now time.Time) error {
	m := int(mmyy[0]>>4)*10 + int(mmyy[0]&0x0F)
	yy := int(mmyy[1]>>4)*10 + int(mmyy[1]&0x0F)
	if mmyy[0]&0x0F > 9 || mmyy[0]>>4 > 9 || mmyy[1]&0x0F > 9 || mmyy[1]>>4 > 9 || m < 1 || m > 12 {
		return fmt.Errorf("certificate expiry not MMYY: %w", ErrCertificate)
	}
	y := 2000 + yy
	if yy >= 50 {
		y = 1900 + yy
	}
	end := time.Date(y, time.Month(m)+1, 1, 0, 0, 0, 0, time.UTC)
	if !now.UTC().Before(end) {
		return fmt.Errorf("certificate expired %02d/%04d: %w", m, y, ErrExpired)
	}
	return nil
}

// VerifySDA performs static data authentication (Book 2 section 5):
// recover the issuer key, recover the signed static application data (93)
// under it, and compare its hash with d.StaticData. It returns the data
// authentication code.
func (v *Verifier) VerifySDA(d CardData) ([2]byte, error) {
	iss, err := v.IssuerKey(d)
	if err != nil {
		return [2]byte{}, fmt.Errorf("SDA: %w", err)
	}
	ssad, err := d.need(tagSignedStatic)
	if err != nil {
		return [2]byte{}, fmt.Errorf("SDA: %w", err)
	}
	s, err := recoverSigned(iss, ssad, FormatSignedStatic, d.StaticData)
	if err != nil {
		return [2]byte{}, fmt.Errorf("SDA: signed static data: %w", err)
	}
	return s.DAC, nil
}

func recoverSigned(k *rsa.PublicKey, sig []byte, format byte, data []byte) (*SignedData, error) {
	rec, err := recoverRSA(k, sig)
	if err != nil {
		return nil, err
	}
	s, err := ParseSignedData(rec)
	if err != nil {
		return nil, err
	}
	if s.Format != format {
		return nil, fmt.Errorf("format %02X, want %02X: %w", s.Format, format, ErrRecoveredFormat)
	}
	want := sha1Of(s.hashedPart(), data)
	if subtle.ConstantTimeCompare(want[:], s.Hash[:]) != 1 {
		return nil, ErrHash
	}
	if s.HashAlg != HashSHA1 {
		return nil, fmt.Errorf("hash algorithm %02X: %w", s.HashAlg, ErrCertificate)
	}
	return s, nil
}

// DefaultDDOL is the terminal's default DDOL (9F37, 4 bytes), used when
// the card has none.
func DefaultDDOL() dol.DOL { return dol.DOL{{Tag: tags.UnpredictableNumber, Len: 4}} }

// DDOLData builds the terminal's data for the card's DDOL (9F49 in
// d.Objects, DefaultDDOL when absent) from values. Book 3 requires the
// DDOL to ask for the unpredictable number (9F37); one that does not is
// ErrMissingData.
func DDOLData(d CardData, values dol.Values) ([]byte, error) {
	ddol := DefaultDDOL()
	if b := d.get(tags.DDOL); b != nil {
		p, err := dol.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("DDOL: %w", err)
		}
		ddol = p
	}
	found := false
	for _, e := range ddol {
		found = found || e.Tag == tags.UnpredictableNumber
	}
	if !found {
		return nil, fmt.Errorf("DDOL without the unpredictable number: %w", ErrMissingData)
	}
	out, err := ddol.Build(values)
	if err != nil {
		return nil, fmt.Errorf("DDOL: %w", err)
	}
	return out, nil
}

// VerifyDDA performs dynamic data authentication (Book 2 section 6):
// recover the issuer key from the CA, the ICC key from the issuer (its
// certificate covering d.StaticData), then the signed dynamic application
// data sdad (9F4B, from INTERNAL AUTHENTICATE) under the ICC key, whose
// hash must cover ddolData (the data the terminal sent). It returns the
// ICC dynamic number (9F4C).
func (v *Verifier) VerifyDDA(d CardData, ddolData, sdad []byte) ([]byte, error) {
	icc, err := v.ICCKey(d)
	if err != nil {
		return nil, fmt.Errorf("DDA: %w", err)
	}
	return verifyDynamic(icc, ddolData, sdad)
}

func verifyDynamic(icc *rsa.PublicKey, ddolData, sdad []byte) ([]byte, error) {
	if len(sdad) == 0 {
		return nil, fmt.Errorf("DDA: signed dynamic data absent: %w", ErrMissingData)
	}
	s, err := recoverSigned(icc, sdad, FormatSignedDynamic, ddolData)
	if err != nil {
		return nil, fmt.Errorf("DDA: signed dynamic data: %w", err)
	}
	n, ok := s.ICCDynamicNumber()
	if !ok {
		return nil, fmt.Errorf("DDA: ICC dynamic number: %w", ErrRecoveredFormat)
	}
	return n, nil
}

// InternalAuthenticator is a card that answers INTERNAL AUTHENTICATE
// with its signed dynamic application data (the 9F4B value) over the
// terminal's DDOL data.
type InternalAuthenticator interface {
	InternalAuthenticate(ddolData []byte) ([]byte, error)
}

// Terminal says which methods the terminal supports (Terminal
// Capabilities 9F33 byte 3).
type Terminal struct {
	SDA, DDA, CDA bool
}

// Authenticate runs the terminal's offline data authentication step (Book
// 3 10.3) and records the outcome in tvr and tsi: it picks CDA when both
// the AIP and t allow it, otherwise DDA, otherwise SDA, otherwise none
// (TVR "offline data authentication not performed", ErrNotSupported).
// Data missing sets "ICC data missing" and the failed method's bit; any
// other failure sets "SDA failed", "DDA failed" or "CDA failed". For CDA
// this step only recovers the issuer and ICC keys; nil then means "ask
// for CDA in GENERATE AC and check the answer with AuthenticateCDA". TSI "offline data authentication
// performed" is set whenever a method was attempted. un is the
// unpredictable number (9F37) for the DDOL; card answers INTERNAL
// AUTHENTICATE (unused for SDA). The method attempted is returned with
// the error; nil means it succeeded.
func (v *Verifier) Authenticate(d CardData, aip emv.AIP, t Terminal, un [4]byte, card InternalAuthenticator, tvr *emv.TVR, tsi *emv.TSI) (Method, error) {
	var m Method
	var err error
	switch {
	case t.CDA && aip.Has(emv.AIPCDA):
		m = MethodCDA
		_, err = v.ICCKey(d)
	case t.DDA && aip.Has(emv.AIPDDA):
		m = MethodDDA
		err = v.dda(d, un, card)
	case t.SDA && aip.Has(emv.AIPSDA):
		m = MethodSDA
		_, err = v.VerifySDA(d)
	default:
		tvr.Set(emv.TVROfflineDataAuthNotPerformed)
		return MethodNone, fmt.Errorf("offline data authentication: %w", ErrNotSupported)
	}
	tsi.Set(emv.TSIOfflineDataAuthPerformed)
	if err == nil {
		return m, nil
	}
	if errors.Is(err, ErrMissingData) {
		tvr.Set(emv.TVRICCDataMissing)
	}
	switch m {
	case MethodCDA:
		tvr.Set(emv.TVRCDAFailed)
	case MethodDDA:
		tvr.Set(emv.TVRDDAFailed)
	default:
		tvr.Set(emv.TVRSDAFailed)
	}
	return m, err
}

func (v *Verifier) dda(d CardData, un [4]byte, card InternalAuthenticator) error {
	// Recover the keys before asking the card, as a terminal must not
	// send INTERNAL AUTHENTICATE when the certificates already fail.
	icc, err := v.ICCKey(d)
	if err != nil {
		return fmt.Errorf("DDA: %w", err)
	}
	data, err := DDOLData(d, dol.Values{tags.UnpredictableNumber: un[:]})
	if err != nil {
		return fmt.Errorf("DDA: %w", err)
	}
	if card == nil {
		return fmt.Errorf("DDA: no card to authenticate: %w", ErrMissingData)
	}
	sdad, err := card.InternalAuthenticate(data)
	if err != nil {
		return fmt.Errorf("DDA: INTERNAL AUTHENTICATE: %w", err)
	}
	_, err = verifyDynamic(icc, data, sdad)
	return err
}

// ODARecords picks the records the AFL marks for offline data
// authentication (the first ODACount of each entry) from records read in
// AFL order, one per record number the AFL names.
func ODARecords(afl []byte, records []Record) ([]Record, error) {
	entries, err := ParseAFL(afl)
	if err != nil {
		return nil, err
	}
	var out []Record
	i := 0
	for _, e := range entries {
		n := int(e.Last-e.First) + 1
		if i+n > len(records) {
			return nil, fmt.Errorf("AFL names %d records or more, %d read: %w", i+n, len(records), ErrMissingData)
		}
		for j := 0; j < n; j++ {
			if records[i+j].SFI != e.SFI {
				return nil, fmt.Errorf("record %d is from SFI %d, AFL says %d: %w", i+j, records[i+j].SFI, e.SFI, ErrStaticData)
			}
		}
		out = append(out, records[i:i+int(e.ODACount)]...)
		i += n
	}
	if i != len(records) {
		return nil, fmt.Errorf("%d records read, AFL names %d: %w", len(records), i, ErrStaticData)
	}
	return out, nil
}

// ReadCardData gathers CardData from records read in AFL order: the data
// objects of every record (70 templates, 00 padding allowed) and the
// static data to be authenticated over the AFL's ODA records and, when
// the records carry an SDA tag list (9F4A), aip. The PAN (5A) must be in
// the records for ODA to succeed.
func ReadCardData(rid [5]byte, afl []byte, records []Record, aip emv.AIP) (CardData, error) {
	sel, err := ODARecords(afl, records)
	if err != nil {
		return CardData{}, fmt.Errorf("read card data: %w", err)
	}
	var objs []tlv.TLV
	for i, r := range records {
		list, err := tlv.DecodeCard(r.Data)
		if err != nil {
			return CardData{}, fmt.Errorf("read card data: record %d: %w", i, err)
		}
		objs = append(objs, list...)
	}
	d := CardData{RID: rid, Objects: objs}
	static, err := StaticData(sel, d.get(tags.SDATagList), aip)
	if err != nil {
		return CardData{}, fmt.Errorf("read card data: %w", err)
	}
	d.StaticData = static
	return d, nil
}
