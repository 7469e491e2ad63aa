package cloudtest

import (
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
)

// ChipDE55 runs a terminal's first GENERATE AC on the simulated card cc
// asking for ask, fails the test unless the card answers want, and returns
// the request DE 55 (with tag 84 = aid unless aid is ""). tvr and un are
// the TVR and unpredictable number in hex; the date is LocalTime's, the
// currency and country yen and Japan.
func ChipDE55(t testing.TB, cc *card.Card, amount int64, ask, want emv.CryptogramType, tvr, un, aid string) []byte {
	t.Helper()
	term := dol.Values{
		tags.AmountAuthorised:        mustHexT(t, fmt.Sprintf("%012d", amount)),
		tags.AmountOther:             mustHexT(t, "000000000000"),
		tags.TerminalCountryCode:     mustHexT(t, "0392"),
		tags.TVR:                     mustHexT(t, tvr),
		tags.TransactionCurrencyCode: mustHexT(t, "0392"),
		tags.TransactionDate:         mustHexT(t, LocalTime[:6]),
		tags.TransactionType:         {0x00},
		tags.UnpredictableNumber:     mustHexT(t, un),
	}
	data, err := card.DefaultCDOL1().Build(term)
	if err != nil {
		t.Fatalf("CDOL1 data: %v", err)
	}
	r, err := cc.GenerateAC(ask, data)
	if err != nil || r.CID.Type() != want {
		t.Fatalf("first GENERATE AC: %v %v, want %v", r.CID.Flags(), err, want)
	}
	v := dol.Values{}
	for k, x := range term {
		v[k] = x
	}
	for _, x := range r.TLVs() {
		v[x.Tag] = x.Value
	}
	for _, x := range cc.Records() {
		if x.Tag == tags.AIP || x.Tag == tags.PANSequenceNumber {
			v[x.Tag] = x.Value
		}
	}
	if aid != "" {
		v[0x84] = mustHexT(t, aid)
	}
	b, err := de55.Build(v)
	if err != nil {
		t.Fatalf("build DE 55: %v", err)
	}
	return b
}

func mustHexT(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}
