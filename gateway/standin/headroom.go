package standin

import (
	"fmt"

	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/offline"
	policy "github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/link"
)

// Headroom is the offline store as the POS API sees it (ecr.Offline): what
// stand-in could still approve on a terminal for a card not yet read. It is
// safe for concurrent use.
type Headroom struct {
	Store *offline.Store
	// Link reports the link; nil means the gateway has none (not
	// enrolled): the link counts as down.
	Link link.Watcher
}

// Headroom implements ecr.Offline: the policy's rules in the scope of the
// terminal's card acceptor (the device id as DE 41 while none is known),
// the exposure left, the negative file in force and the link state.
func (p *Headroom) Headroom(terminal string, acceptor *ecr.CardAcceptor) (ecr.OfflineHeadroom, error) {
	sc := policy.Scope{TerminalID: terminal}
	if acceptor != nil {
		sc = policy.Scope{TerminalID: acceptor.TerminalID, MerchantID: acceptor.MerchantID}
	}
	h, err := p.Store.Headroom(sc)
	if err != nil {
		return ecr.OfflineHeadroom{}, err
	}
	st, err := p.Store.Queue().Stats()
	if err != nil {
		return ecr.OfflineHeadroom{}, fmt.Errorf("offline headroom: %w", err)
	}
	neg, err := p.Store.Negative()
	if err != nil {
		return ecr.OfflineHeadroom{}, fmt.Errorf("offline headroom: %w", err)
	}
	pol := p.Store.Policy()
	rules := pol.Rules(sc)
	out := ecr.OfflineHeadroom{
		Terminal: terminal, LinkDown: true, Available: h.Available, Reason: ReasonCode(h.Reason), MaxAmount: h.MaxAmount,
		Currency: pol.CurrencyCode(), FloorLimit: rules.FloorLimit,
		ExposureRemaining: max(0, pol.TotalExposureOrDefault()-st.Exposure),
		CardCount:         rules.CardCount, CardAmount: rules.CardAmount, Window: rules.Window.String(),
	}
	if acceptor != nil {
		out.TerminalID, out.MerchantID = sc.TerminalID, sc.MerchantID
	}
	if neg.Loaded {
		out.NegativeFileVersion = neg.Version
	}
	if p.Link != nil {
		s, _ := p.Link.Watch()
		out.LinkDown = s != link.Up
	}
	return out, nil
}
