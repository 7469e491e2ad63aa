package center

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

// Authorizer decides financial requests. *authz.Switch satisfies it.
type Authorizer interface {
	Authorize(ctx context.Context, r authz.Request) (authz.Response, error)
}

// LinkHandler answers the ISO 8583:1993 requests gateways send on the QUIC
// link. The gateway's identity is the authenticated one from its client
// certificate (link.Peer), never DE 126. LinkHandler is safe for concurrent
// use.
type LinkHandler struct {
	Switch  Authorizer
	Logger  *slog.Logger
	Metrics *Metrics
	// NegFile answers 1304 negative-file inquiries; nil answers them 902.
	NegFile *NegFileServer
	// Signatures answers 1304 SIGCAP signature chunks (signature.go); nil
	// answers them 902.
	Signatures *SignatureServer
}

// ServeLink implements link.Handler. A message that cannot be unpacked far
// enough to answer is refused with an error (the link closes that stream and
// logs the reason); anything else gets a response with a 1993 action code.
func (h *LinkHandler) ServeLink(ctx context.Context, p link.Peer, req []byte) ([]byte, error) {
	start := time.Now()
	mti, msg, err := iso93.Unpack(req)
	if err != nil {
		h.Metrics.observe("unknown", "closed", time.Since(start))
		return nil, fmt.Errorf("gateway %s: unreadable message: %w", p.GatewayID, err)
	}
	resp, action, err := h.answer(ctx, p, mti, msg)
	if err != nil {
		h.Metrics.observe(mti, "closed", time.Since(start))
		return nil, err
	}
	h.Metrics.observe(mti, string(action), time.Since(start))
	return resp, nil
}

func (h *LinkHandler) answer(ctx context.Context, p link.Peer, mti string, msg *iso8583.Message) ([]byte, iso93.ActionCode, error) {
	if err := iso93.Validate(msg); err != nil {
		h.Logger.Warn("request refused", "gateway", p.GatewayID, "mti", mti, "reason", err)
		return reply(msg, iso93.ActionFormatError, authz.Response{})
	}
	if mti == iso93.MTIFileAction {
		if isSigCap(msg) { // DE 101 SIGCAP: signature.go; else the negative file
			return h.signature(ctx, p, msg)
		}
		return h.fileAction(ctx, p, msg)
	}
	var r authz.Request
	switch mti {
	case iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest, iso93.MTIAdvice, iso93.MTIAdviceRepeat:
		var m iso93.FinancialRequest
		if err := msg.Unmarshal(&m); err != nil {
			h.Logger.Warn("request refused", "gateway", p.GatewayID, "mti", mti, "reason", err)
			return reply(msg, iso93.ActionFormatError, authz.Response{})
		}
		r = requestFrom(mti, p.GatewayID, m.Trace, m.Payment, m.Card)
		// A completion advice names its pre-authorization in DE 56; an
		// offline approval's advice carries none.
		if mti == iso93.MTIAdvice || mti == iso93.MTIAdviceRepeat {
			if de56, err := msg.GetString(iso93.FieldOriginalData); err == nil && de56 != "" {
				od, err := iso93.ParseOriginalData(de56)
				if err != nil {
					h.Logger.Warn("advice refused", "gateway", p.GatewayID, "reason", err)
					return reply(msg, iso93.ActionFormatError, authz.Response{})
				}
				r.Original = &authz.OriginalData{MTI: od.MTI, STAN: od.STAN, LocalTime: od.LocalTime}
			}
		}
	case iso93.MTIReversal, iso93.MTIReversalRepeat:
		var m iso93.Reversal
		if err := msg.Unmarshal(&m); err != nil {
			h.Logger.Warn("request refused", "gateway", p.GatewayID, "mti", mti, "reason", err)
			return reply(msg, iso93.ActionFormatError, authz.Response{})
		}
		r = requestFrom(mti, p.GatewayID, m.Trace, m.Payment, iso93.Card{})
		if m.OriginalData != "" {
			od, err := iso93.ParseOriginalData(m.OriginalData)
			if err != nil {
				h.Logger.Warn("reversal refused", "gateway", p.GatewayID, "reason", err)
				return reply(msg, iso93.ActionFormatError, authz.Response{})
			}
			r.Original = &authz.OriginalData{MTI: od.MTI, STAN: od.STAN, LocalTime: od.LocalTime}
		}
	default:
		h.Logger.Warn("request refused: message class not served on the link", "gateway", p.GatewayID, "mti", mti)
		return reply(msg, iso93.ActionInvalidTransaction, authz.Response{})
	}
	res, err := h.Switch.Authorize(ctx, r)
	if err != nil {
		// The switch answers every business decline itself; an error here
		// is a fault (store or token unavailable).
		h.Logger.Error("authorization failed", "gateway", p.GatewayID, "mti", mti, "terminal", r.TerminalID, "stan", r.STAN, "reason", err)
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, "", err
		}
		return reply(msg, iso93.ActionSystemMalfunction, authz.Response{})
	}
	return reply(msg, res.ActionCode, res)
}

func requestFrom(mti, gatewayID string, t iso93.Trace, p iso93.Payment, c iso93.Card) authz.Request {
	return authz.Request{
		MTI:            mti,
		GatewayID:      gatewayID,
		TerminalID:     t.TerminalID,
		STAN:           t.STAN,
		ProcessingCode: p.ProcessingCode,
		Amount:         p.Amount,
		Currency:       p.Currency,
		LocalTime:      t.LocalTime,
		IdempotencyKey: t.IdempotencyKey,
		FunctionCode:   t.FunctionCode,
		POSDataCode:    p.POSDataCode,
		KSN:            c.KSN,
		CardBlock:      c.CardData,
		Fingerprint:    c.Fingerprint,
		ICCData:        c.ICCData,
		PINBlock:       c.PINBlock,
	}
}

// reply packs the response to msg with the action code and, when approved,
// the approval code and retrieval reference number; and the response DE 55
// (ARPC) when the switch gave one.
func reply(msg *iso8583.Message, action iso93.ActionCode, res authz.Response) ([]byte, iso93.ActionCode, error) {
	resp, err := iso93.NewResponse(msg, action)
	if err != nil {
		return nil, "", fmt.Errorf("build response: %w", err)
	}
	if res.ApprovalCode != "" {
		if err := resp.Field(iso93.FieldApprovalCode, res.ApprovalCode); err != nil {
			return nil, "", fmt.Errorf("set approval code: %w", err)
		}
	}
	if res.RRN != "" {
		if err := resp.Field(iso93.FieldRRN, res.RRN); err != nil {
			return nil, "", fmt.Errorf("set RRN: %w", err)
		}
	}
	if len(res.ICCData) > 0 {
		// Issuer authentication data (ARPC) for the chip card.
		if err := resp.BinaryField(iso93.FieldICCData, res.ICCData); err != nil {
			return nil, "", fmt.Errorf("set DE 55: %w", err)
		}
	}
	raw, err := iso93.PackMessage(resp)
	if err != nil {
		return nil, "", fmt.Errorf("pack response: %w", err)
	}
	return raw, action, nil
}
