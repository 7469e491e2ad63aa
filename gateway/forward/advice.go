package forward

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/offline"
	policy "github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/match"
)

// AdviceStore keeps terminals' offline approval advices durably until the
// advice.Forwarder delivers them. *offline.Store satisfies it.
type AdviceStore interface {
	Enqueue(a offline.Advice) (offline.Queued, error)
}

// errNotOfflineAdvice marks a 1220 with function code 201 that is not an
// offline approval (a completion advice, which names its
// pre-authorization in DE 56): it is relayed like any request.
var errNotOfflineAdvice = errors.New("gateway: advice is a completion, not an offline approval")

func isAdviceMTI(mti string) bool { return mti == iso93.MTIAdvice || mti == iso93.MTIAdviceRepeat }

// terminalAdviceFrom reads a terminal's offline approval advice: a
// 1220/1221 with function code 201 and no DE 56. It must pass the
// message rules (iso93.Validate: DE 38, DE 123, card data, ...), carry the
// card data only as the encrypted block (DE 120, never a clear DE 2), and
// its DE 55, when present, must pass de55.ParseRequest (no card-data
// tags) with a cryptogram that is not an AAC: the gateway keeps nothing
// the center would refuse as malformed, and no clear card data.
func terminalAdviceFrom(raw []byte) (offline.Advice, error) {
	_, msg, err := iso93.Unpack(raw)
	if err != nil {
		return offline.Advice{}, fmt.Errorf("unpack advice: %w", err)
	}
	if msg.GetField(iso93.FieldOriginalData) != nil {
		return offline.Advice{}, errNotOfflineAdvice
	}
	if err := iso93.Validate(msg); err != nil {
		return offline.Advice{}, fmt.Errorf("advice: %w", err)
	}
	var m iso93.Advice
	if err := msg.Unmarshal(&m); err != nil {
		return offline.Advice{}, fmt.Errorf("read advice: %w", iso93.ErrMalformed)
	}
	if len(m.CardData) == 0 || m.PAN != "" {
		return offline.Advice{}, errors.New("advice: card data must be the encrypted block (DE 120), never DE 2")
	}
	chip, err := standin.Chip(m.ICCData)
	if err != nil {
		return offline.Advice{}, fmt.Errorf("advice: %w", err)
	}
	if chip == policy.ChipAAC {
		return offline.Advice{}, errors.New("advice: DE 55 names an AAC, the card declined the sale")
	}
	return offline.Advice{
		IdempotencyKey: m.IdempotencyKey,
		TerminalID:     m.TerminalID,
		MerchantID:     m.MerchantID,
		Brand:          standin.BrandOf(m.MaskedPAN),
		Fingerprint:    m.Fingerprint,
		MaskedPAN:      m.MaskedPAN,
		Amount:         m.Amount,
		Currency:       m.Currency,
		ApprovalCode:   m.ApprovalCode,
		Chip:           chip,
		Message:        raw,
	}, nil
}

// terminalAdvice delivers a terminal's offline approval advice: it is sent
// to the center first, and the center's final answer (accepted, or
// declined) is relayed. Without one — link down, not enrolled, outcome
// unknown, a "try later" code (906, 907, 909, 911, 923) or an answer that
// does not match — the advice is stored in f.Advices (fsync) and only then
// answered 1230 with 000, "accepted for forwarding"; the advice.Forwarder
// sends it (as a 1221 when it may have reached the center already). If it
// cannot be stored the terminal is answered 909. *uplink receives the
// round-trip time.
func (f *Forwarder) terminalAdvice(ctx context.Context, raw []byte, h iso93.Header, adv offline.Advice, start time.Time, uplink *time.Duration) (device.Answer, error) {
	sent := time.Now()
	resp, err := f.Uplink.RoundTrip(ctx, raw)
	*uplink = time.Since(sent)
	var why string
	switch {
	case err == nil:
		rh, perr := iso93.Peek(resp)
		switch {
		case perr != nil || match.KeyOf(rh) != match.KeyOf(h):
			why = "center answer does not match the advice"
		case offline.Classify(rh.ActionCode) == offline.OutcomeRetry:
			why = "center answered " + rh.ActionCode
		default:
			if offline.Classify(rh.ActionCode) == offline.OutcomeRejected {
				f.Logger.Warn("center declined a terminal's offline approval", "terminal", h.TerminalID, "stan", h.STAN,
					"masked_pan", adv.MaskedPAN, "amount", adv.Amount, "action", rh.ActionCode)
			}
			f.Metrics.observe(h.MTI, rh.ActionCode, time.Since(start))
			return device.Answer{Message: resp}, nil
		}
		adv.Sent = true
	case errors.Is(err, link.ErrOutcomeUnknown):
		why, adv.Sent = err.Error(), true
	default:
		why = err.Error()
	}
	q, err := f.Advices.Enqueue(adv)
	if err != nil {
		f.Logger.Error("terminal advice neither delivered nor stored", "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return f.reply(raw, h, iso93.ActionSystemMalfunction, start)
	}
	f.Logger.Info("terminal advice stored for forwarding", "terminal", h.TerminalID, "stan", h.STAN, "record", q.RecordID,
		"duplicate", q.Duplicate, "reason", why)
	return f.reply(raw, h, iso93.ActionApproved, start)
}
