// Package standin is the stand-in decision at the gateway: it reads the
// card-safe view of a 1100/1200 the center could not be sent, has the
// offline store decide it under the stand-in policy (offline/standin),
// answers the terminal only once an approval is durable, counts the
// decisions, and tells the POS API what stand-in could still approve on a
// terminal (docs/offline.md).
package standin

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/offline"
	policy "github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
)

// SaleFrom reads the stand-in view of a 1100 or 1200: no clear card data,
// only the fingerprint (DE 122), the masked PAN (DE 124) and the raw
// request, whose card data is the encrypted block.
func SaleFrom(raw []byte) (offline.Sale, error) {
	if len(raw) < 4 {
		return offline.Sale{}, ErrNotSale
	}
	var (
		t   iso93.Trace
		p   iso93.Payment
		c   iso93.Card
		mti = string(raw[:4])
	)
	switch mti {
	case iso93.MTIFinancialRequest:
		var m iso93.FinancialRequest
		if err := iso93.UnpackInto(raw, &m); err != nil {
			return offline.Sale{}, fmt.Errorf("unpack %s for stand-in: %w", mti, err)
		}
		t, p, c = m.Trace, m.Payment, m.Card
	case iso93.MTIAuthorizationRequest:
		var m iso93.AuthorizationRequest
		if err := iso93.UnpackInto(raw, &m); err != nil {
			return offline.Sale{}, fmt.Errorf("unpack %s for stand-in: %w", mti, err)
		}
		t, p, c = m.Trace, m.Payment, m.Card
	default:
		return offline.Sale{}, ErrNotSale
	}
	chip, err := Chip(c.ICCData)
	if err != nil {
		return offline.Sale{}, fmt.Errorf("%s for stand-in: %w", mti, err)
	}
	return offline.Sale{
		IdempotencyKey: t.IdempotencyKey,
		TerminalID:     t.TerminalID,
		MerchantID:     t.MerchantID,
		Brand:          BrandOf(c.MaskedPAN),
		Fingerprint:    c.Fingerprint,
		MaskedPAN:      c.MaskedPAN,
		Amount:         p.Amount,
		Currency:       p.Currency,
		Refund:         strings.HasPrefix(p.ProcessingCode, "20"),
		Chip:           chip,
		Message:        raw,
	}, nil
}

// Chip reads the card's own offline decision from a request's DE 55
// (ICC data): the cryptogram type in the Cryptogram Information Data (9F27).
// A TC (the card approved offline) is policy.ChipTC, an AAC (the card
// declined) policy.ChipAAC, an ARQC (the card asks to go online) and a
// request without DE 55 (magstripe, or no chip data) policy.ChipNone, so
// the policy alone decides. A DE 55 that de55.ParseRequest refuses, or a
// 9F27 of the reserved type, is an error: the center would refuse the
// request as malformed (904), so stand-in does too.
func Chip(iccData []byte) (policy.Chip, error) {
	if len(iccData) == 0 {
		return policy.ChipNone, nil
	}
	req, err := de55.ParseRequest(iccData)
	if err != nil {
		return 0, fmt.Errorf("read DE 55: %w", err)
	}
	switch t := req.CID().Type(); t {
	case emv.TC:
		return policy.ChipTC, nil
	case emv.AAC:
		return policy.ChipAAC, nil
	case emv.ARQC:
		return policy.ChipNone, nil
	default:
		return 0, fmt.Errorf("DE 55 tag 9F27 names a reserved cryptogram type %s", t)
	}
}

// BrandOf names the card brand of a masked PAN (DE 124) by its BIN, for the
// per-brand stand-in rules: visa, mastercard, jcb, amex, unionpay, house
// (BIN 999…) or other. Only the first six digits, which the masked form
// keeps, are read.
func BrandOf(masked string) string {
	n := 0
	for n < len(masked) && n < 6 && masked[n] >= '0' && masked[n] <= '9' {
		n++
	}
	if n == 0 {
		return "other"
	}
	prefix := func(k int) int {
		if n < k {
			return -1
		}
		v, _ := strconv.Atoi(masked[:k])
		return v
	}
	switch p1, p2, p3, p4 := prefix(1), prefix(2), prefix(3), prefix(4); {
	case p3 == 999:
		return "house"
	case p1 == 4:
		return "visa"
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return "mastercard"
	case p2 == 34, p2 == 37:
		return "amex"
	case p4 >= 3528 && p4 <= 3589:
		return "jcb"
	case p2 == 62:
		return "unionpay"
	}
	return "other"
}
