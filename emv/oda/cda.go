package oda

import (
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // EMV Book 2 SHA-1
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/emv/tlv"
)

// Combined DDA/application cryptogram generation (CDA), EMV 4.4 Book 2
// section 6.6. The card signs, in GENERATE AC, dynamic data that holds its
// ICC dynamic number, the cryptogram information data, the application
// cryptogram and a hash of the transaction data; the signature's hash
// covers the unpredictable number. The response carries 9F4B instead of
// the cryptogram in the clear.

// cdaDynamicLen is the length of CDA's ICC dynamic data after the
// dynamic number: CID (1), cryptogram (8), transaction data hash (20).
const cdaDynamicLen = 1 + 8 + hashLen

// TransactionDataHash is the CDA transaction data hash code: SHA-1 over
// the PDOL data (GET PROCESSING OPTIONS; nil when the card has no PDOL),
// the CDOL data of this GENERATE AC (for the second GENERATE AC, CDOL1
// data then CDOL2 data) and the data objects of the GENERATE AC response
// in the order returned, except 9F4B, TLV-encoded.
func TransactionDataHash(pdolData, cdolData []byte, response []tlv.TLV) ([sha1.Size]byte, error) {
	objs := make([]tlv.TLV, 0, len(response))
	for _, o := range response {
		if o.Tag != tags.SignedDynamicData {
			objs = append(objs, o)
		}
	}
	enc, err := tlv.Encode(objs)
	if err != nil {
		return [sha1.Size]byte{}, fmt.Errorf("transaction data hash: %w", err)
	}
	return sha1Of(pdolData, cdolData, enc), nil
}

// CDADynamicData builds CDA's ICC dynamic data: the length of the ICC
// dynamic number (2 to 8 bytes), the number, the CID, the cryptogram and
// the transaction data hash code.
func CDADynamicData(number []byte, cid emv.CID, ac [8]byte, txHash [sha1.Size]byte) ([]byte, error) {
	if len(number) < 2 || len(number) > 8 {
		return nil, fmt.Errorf("CDA dynamic data: ICC dynamic number of %d bytes: %w", len(number), ErrRecoveredFormat)
	}
	b := append([]byte{byte(len(number))}, number...)
	b = append(b, byte(cid))
	b = append(b, ac[:]...)
	return append(b, txHash[:]...), nil
}

// CDAResult is what a verified CDA signature yields.
type CDAResult struct {
	// DynamicNumber is the ICC dynamic number (9F4C).
	DynamicNumber []byte
	// Cryptogram is the application cryptogram (9F26) recovered from
	// the signature: the one to send online or keep with an offline TC.
	Cryptogram [8]byte
}

// VerifyCDA verifies a GENERATE AC answer with CDA (Book 2 6.6.2): it
// recovers the issuer and ICC keys, the signed dynamic data (9F4B in
// response) under the ICC key with its hash over un, checks that the CID
// signed equals 9F27 in response and that the transaction data hash
// signed equals TransactionDataHash(pdolData, cdolData, response). It
// returns the cryptogram the card signed.
func (v *Verifier) VerifyCDA(d CardData, un [4]byte, pdolData, cdolData []byte, response []tlv.TLV) (CDAResult, error) {
	icc, err := v.ICCKey(d)
	if err != nil {
		return CDAResult{}, fmt.Errorf("CDA: %w", err)
	}
	return verifyCDA(icc, un, pdolData, cdolData, response)
}

func verifyCDA(icc *rsa.PublicKey, un [4]byte, pdolData, cdolData []byte, response []tlv.TLV) (CDAResult, error) {
	sdad, ok := tlv.Find(response, tags.SignedDynamicData)
	if !ok || len(sdad.Value) == 0 {
		return CDAResult{}, fmt.Errorf("CDA: signed dynamic data absent: %w", ErrMissingData)
	}
	cid, ok := tlv.Find(response, tags.CID)
	if !ok || len(cid.Value) != 1 {
		return CDAResult{}, fmt.Errorf("CDA: cryptogram information data absent: %w", ErrMissingData)
	}
	s, err := recoverSigned(icc, sdad.Value, FormatSignedDynamic, un[:])
	if err != nil {
		return CDAResult{}, fmt.Errorf("CDA: signed dynamic data: %w", err)
	}
	n, ok := s.ICCDynamicNumber()
	if !ok || len(s.Dynamic) != 1+len(n)+cdaDynamicLen {
		return CDAResult{}, fmt.Errorf("CDA: ICC dynamic data of %d bytes: %w", len(s.Dynamic), ErrRecoveredFormat)
	}
	rest := s.Dynamic[1+len(n):]
	if rest[0] != cid.Value[0] {
		return CDAResult{}, fmt.Errorf("CDA: signed CID %02X, response %02X: %w", rest[0], cid.Value[0], ErrHash)
	}
	want, err := TransactionDataHash(pdolData, cdolData, response)
	if err != nil {
		return CDAResult{}, fmt.Errorf("CDA: %w", err)
	}
	if subtle.ConstantTimeCompare(want[:], rest[9:]) != 1 {
		return CDAResult{}, fmt.Errorf("CDA: transaction data: %w", ErrHash)
	}
	return CDAResult{DynamicNumber: n, Cryptogram: [8]byte(rest[1:9])}, nil
}

// AuthenticateCDA is VerifyCDA recording a failure in tvr: "CDA failed",
// and "ICC data missing" when data was absent. Call it on the GENERATE AC
// answer after Authenticate chose MethodCDA. Per Book 3, an AAC answer
// carries no CDA signature: the caller declines without calling it.
func (v *Verifier) AuthenticateCDA(d CardData, un [4]byte, pdolData, cdolData []byte, response []tlv.TLV, tvr *emv.TVR) (CDAResult, error) {
	r, err := v.VerifyCDA(d, un, pdolData, cdolData, response)
	if err != nil {
		if errors.Is(err, ErrMissingData) {
			tvr.Set(emv.TVRICCDataMissing)
		}
		tvr.Set(emv.TVRCDAFailed)
	}
	return r, err
}

// SignCDA makes the card's CDA signature (9F4B) under the ICC key over
// dynamic data built by CDADynamicData and the unpredictable number.
func SignCDA(icc *rsa.PrivateKey, dynamic []byte, un [4]byte) ([]byte, error) {
	return SignDynamicData(icc, dynamic, un[:])
}
