package card

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/oda"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

// ErrNoODA means the card was personalised without offline data
// authentication and cannot answer INTERNAL AUTHENTICATE.
var ErrNoODA = errors.New("card: no offline data authentication personalisation")

// ODAConfig personalises a card for offline data authentication (SDA and
// DDA). At New the issuer certifies the ICC public key and signs the
// card's static data; the card keeps the certificates and the ICC private
// key, not the issuer.
type ODAConfig struct {
	// Issuer is the test issuer (oda.CA.CertifyIssuer) whose certificate
	// and signatures the card carries. Required.
	Issuer *oda.Issuer
	// ICCKey is the card's RSA key for DDA, its modulus no longer than
	// the issuer's. Required (generating one per card is slow; tests
	// share one).
	ICCKey *rsa.PrivateKey
	// CertExpiry is the ICC certificate's expiration month. Required.
	CertExpiry time.Time
	// Serial is the ICC certificate serial number.
	Serial [3]byte
	// DAC is the data authentication code signed into tag 93.
	DAC [2]byte
}

type odaState struct {
	iccKey  *rsa.PrivateKey
	afl     []byte
	records []oda.Record
}

// The ODA card's files: SFI 1 record 1 holds the card data the issuer
// signs (the one ODA record), SFI 2 records 1 to 3 the certificates and
// signed data, which ODA does not cover.
var odaAFL = oda.EncodeAFL([]oda.AFLEntry{{SFI: 1, First: 1, Last: 1, ODACount: 1}, {SFI: 2, First: 1, Last: 3}})

// personaliseODA builds the card's records and has the issuer certify
// them. It runs in New, before the card is shared.
func (c *Card) personaliseODA(cfg *ODAConfig) error {
	if cfg.Issuer == nil || cfg.ICCKey == nil {
		return fmt.Errorf("ODA: issuer and ICC key required: %w", oda.ErrKeySize)
	}
	signed := c.cardDataTLVs()
	rec1, err := record(signed)
	if err != nil {
		return err
	}
	ddol := oda.DefaultDDOL().Encode()
	static, err := oda.StaticData([]oda.Record{{SFI: 1, Data: rec1}}, []byte{0x82}, c.aip)
	if err != nil {
		return fmt.Errorf("ODA: %w", err)
	}
	ssad, err := cfg.Issuer.SignStaticData(cfg.DAC, static)
	if err != nil {
		return fmt.Errorf("ODA: %w", err)
	}
	iccCert, err := cfg.Issuer.CertifyICC(&cfg.ICCKey.PublicKey, oda.CertTemplate{Subject: c.pan, Expiry: cfg.CertExpiry, Serial: cfg.Serial}, static)
	if err != nil {
		return fmt.Errorf("ODA: %w", err)
	}
	r21 := append(cfg.Issuer.TLVs(), tlv.New(tags.SDATagList, []byte{0x82}), tlv.New(tags.DDOL, ddol))
	recs := []oda.Record{{SFI: 1, Data: rec1}}
	for _, list := range [][]tlv.TLV{r21, {tlv.New(tags.SignedStaticData, ssad)}, iccCert.TLVs()} {
		r, err := record(list)
		if err != nil {
			return err
		}
		recs = append(recs, oda.Record{SFI: 2, Data: r})
	}
	c.oda = &odaState{iccKey: cfg.ICCKey, afl: odaAFL, records: recs}
	return nil
}

func record(list []tlv.TLV) ([]byte, error) {
	r, err := tlv.Encode([]tlv.TLV{tlv.Template(0x70, list...)})
	if err != nil {
		return nil, fmt.Errorf("ODA: encode record: %w", err)
	}
	if len(r) > 254 {
		return nil, fmt.Errorf("ODA: record of %d bytes exceeds 254: %w", len(r), oda.ErrKeySize)
	}
	return r, nil
}

// cardDataTLVs is Records without the AIP (which GET PROCESSING OPTIONS
// returns, not a record).
func (c *Card) cardDataTLVs() []tlv.TLV {
	var out []tlv.TLV
	for _, t := range c.Records() {
		if t.Tag != tags.AIP {
			out = append(out, t)
		}
	}
	return out
}

// AIP returns the card's application interchange profile (82), as GET
// PROCESSING OPTIONS returns it.
func (c *Card) AIP() emv.AIP { return c.aip }

// ReadRecords returns the application file locator (94) and the records
// it names, in AFL order, as READ RECORD returns them (70 templates). A
// card without ODA has one record, SFI 1, holding Records' data but the
// AIP, and no ODA record. The records contain card data: never log them.
func (c *Card) ReadRecords() (afl []byte, records []oda.Record, err error) {
	if c.oda == nil {
		r, err := record(c.cardDataTLVs())
		if err != nil {
			return nil, nil, err
		}
		return oda.EncodeAFL([]oda.AFLEntry{{SFI: 1, First: 1, Last: 1}}), []oda.Record{{SFI: 1, Data: r}}, nil
	}
	recs := make([]oda.Record, len(c.oda.records))
	for i, r := range c.oda.records {
		recs[i] = oda.Record{SFI: r.SFI, Data: append([]byte(nil), r.Data...)}
	}
	return append([]byte(nil), c.oda.afl...), recs, nil
}

// InternalAuthenticate answers INTERNAL AUTHENTICATE for DDA: it signs a
// fresh 8-byte ICC dynamic number and ddolData (the terminal's data for
// the DDOL, 9F37 four bytes) with the ICC key and returns the signed
// dynamic application data (9F4B's value). A card without ODA returns
// ErrNoODA.
func (c *Card) InternalAuthenticate(ddolData []byte) ([]byte, error) {
	if c.oda == nil {
		return nil, fmt.Errorf("INTERNAL AUTHENTICATE: %w", ErrNoODA)
	}
	if len(ddolData) != 4 {
		return nil, fmt.Errorf("INTERNAL AUTHENTICATE: %d bytes of DDOL data, want 4: %w", len(ddolData), ErrData)
	}
	dyn := make([]byte, 9)
	dyn[0] = 8
	if _, err := rand.Read(dyn[1:]); err != nil {
		return nil, fmt.Errorf("INTERNAL AUTHENTICATE: dynamic number: %w", err)
	}
	sig, err := oda.SignDynamicData(c.oda.iccKey, dyn, ddolData)
	if err != nil {
		return nil, fmt.Errorf("INTERNAL AUTHENTICATE: %w", err)
	}
	return sig, nil
}

// GenerateACCDA is the first GENERATE AC with CDA requested (Book 2
// 6.6.1): it answers as GenerateAC does, and for a TC or ARQC returns the
// response objects 9F27, 9F36, 9F4B (the CDA signature, which carries the
// cryptogram) and 9F10, in that order; an AAC is answered unsigned as
// Response.TLVs. The signature covers the unpredictable number from
// cdol1Data and the transaction data hash over cdol1Data and these
// objects (no PDOL data: the contact card has no PDOL). A card without ODA
// returns ErrNoODA.
func (c *Card) GenerateACCDA(want emv.CryptogramType, cdol1Data []byte) ([]tlv.TLV, error) {
	if c.oda == nil {
		return nil, fmt.Errorf("GENERATE AC with CDA: %w", ErrNoODA)
	}
	r, err := c.GenerateAC(want, cdol1Data)
	if err != nil {
		return nil, err
	}
	if r.CID.Type() == emv.AAC {
		return r.TLVs(), nil
	}
	un, _ := defaultCDOL1.Lookup(cdol1Data, tags.UnpredictableNumber) // length checked by GenerateAC
	objs := []tlv.TLV{
		tlv.New(tags.CID, []byte{byte(r.CID)}),
		tlv.New(tags.ATC, []byte{byte(r.ATC >> 8), byte(r.ATC)}),
		tlv.New(tags.SignedDynamicData, nil),
		tlv.New(tags.IssuerApplicationData, r.IAD),
	}
	txHash, err := oda.TransactionDataHash(nil, cdol1Data, objs)
	if err != nil {
		return nil, fmt.Errorf("GENERATE AC with CDA: %w", err)
	}
	number := make([]byte, 8)
	if _, err := rand.Read(number); err != nil {
		return nil, fmt.Errorf("GENERATE AC with CDA: dynamic number: %w", err)
	}
	dyn, err := oda.CDADynamicData(number, r.CID, r.Cryptogram, txHash)
	if err != nil {
		return nil, fmt.Errorf("GENERATE AC with CDA: %w", err)
	}
	sig, err := oda.SignCDA(c.oda.iccKey, dyn, [4]byte(un))
	if err != nil {
		return nil, fmt.Errorf("GENERATE AC with CDA: %w", err)
	}
	objs[2] = tlv.New(tags.SignedDynamicData, sig)
	return objs, nil
}
