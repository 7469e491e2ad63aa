package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
)

// StandIn decides a sale the center cannot be asked about and, when it
// approves, makes the approval durable before it returns.
// *offline.Store satisfies it.
type StandIn interface {
	Approve(sale offline.Sale) (offline.Decision, error)
}

// errNotStandIn marks a request stand-in does not decide (not a 1100/1200).
var errNotStandIn = errors.New("gateway: message class is not decided in stand-in")

// saleFrom reads the stand-in view of a 1100 or 1200: no clear card data,
// only the fingerprint (DE 122), the masked PAN (DE 124) and the raw
// request, whose card data is the encrypted block.
func saleFrom(raw []byte) (offline.Sale, error) {
	if len(raw) < 4 {
		return offline.Sale{}, errNotStandIn
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
		return offline.Sale{}, errNotStandIn
	}
	chip, err := chipDecision(c.ICCData)
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

// chipDecision reads the card's own offline decision from a request's DE 55
// (ICC data): the cryptogram type in the Cryptogram Information Data (9F27).
// A TC (the card approved offline) is standin.ChipTC, an AAC (the card
// declined) standin.ChipAAC, an ARQC (the card asks to go online) and a
// request without DE 55 (magstripe, or no chip data) standin.ChipNone, so
// the policy alone decides. A DE 55 that de55.ParseRequest refuses, or a
// 9F27 of the reserved type, is an error: the center would refuse the
// request as malformed (904), so stand-in does too.
func chipDecision(iccData []byte) (standin.Chip, error) {
	if len(iccData) == 0 {
		return standin.ChipNone, nil
	}
	req, err := de55.ParseRequest(iccData)
	if err != nil {
		return 0, fmt.Errorf("read DE 55: %w", err)
	}
	switch t := req.CID().Type(); t {
	case emv.TC:
		return standin.ChipTC, nil
	case emv.AAC:
		return standin.ChipAAC, nil
	case emv.ARQC:
		return standin.ChipNone, nil
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

// standIn decides a request the center could not be sent under the offline
// policy and builds the terminal's answer. The answer is built only after
// Approve returned, so an approval is durable (fsync) before the terminal
// hears of it. Any failure to decide answers 907.
func (f *Forwarder) standIn(raw []byte, h iso93.Header, start time.Time) ([]byte, error) {
	sale, err := saleFrom(raw)
	switch {
	case errors.Is(err, errNotStandIn):
		return f.reply(raw, h, iso93.ActionIssuerInoperative, start)
	case err != nil:
		// The center would refuse it with 904 as well.
		f.Logger.Warn("stand-in refused a malformed request", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return f.reply(raw, h, iso93.ActionFormatError, start)
	}
	dec, err := f.Offline.Approve(sale)
	if err != nil {
		f.Logger.Error("stand-in failed: sale declined", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		f.StandInMetrics.decided("error")
		return f.reply(raw, h, iso93.ActionIssuerInoperative, start)
	}
	f.StandInMetrics.decided(dec.Reason.String())
	f.Logger.Info("stand-in decision", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN,
		"approved", dec.Approved, "reason", dec.Reason.String(), "action", dec.ActionCode, "record", dec.RecordID, "duplicate", dec.Duplicate)
	resp, err := standInReply(raw, dec)
	if err != nil {
		// The approval is stored and will be advised; the terminal, not told,
		// treats the sale as failed, and the center takes the advice anyway
		// (the same rule as a sale in flight at a crash).
		f.Logger.Error("cannot build the stand-in answer", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return f.reply(raw, h, iso93.ActionSystemMalfunction, start)
	}
	f.Metrics.observe(h.MTI, dec.ActionCode, time.Since(start))
	return resp, nil
}

// standInReply builds the 1110/1210 of a stand-in decision: the response
// echoing the request with DE 39 the decision's action code and, on an
// approval, DE 38 its approval code. DE 25 is not set: docs/message-spec.md
// does not use it in responses (a terminal learns of stand-in from the
// gateway's logs and the advice, not the answer).
func standInReply(raw []byte, dec offline.Decision) ([]byte, error) {
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		return nil, err
	}
	resp, err := iso93.NewResponse(msg, iso93.ActionCode(dec.ActionCode))
	if err != nil {
		return nil, err
	}
	if dec.Approved {
		if err := resp.Field(iso93.FieldApprovalCode, dec.ApprovalCode); err != nil {
			return nil, fmt.Errorf("set approval code: %w", err)
		}
	}
	return iso93.PackMessage(resp)
}
