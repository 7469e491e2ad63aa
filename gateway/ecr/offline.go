package ecr

import (
	"net/http"
	"time"

	"github.com/posgate/posgate/gateway/device"
)

// Offline is the gateway's offline store as the POS API shows it: what
// stand-in could still approve on a terminal before the card is read.
// (Whether a transaction's answer came from stand-in the POS API learns
// from the device.TxnResult itself.) Implementations must be safe for
// concurrent use; the gateway's is standin.Headroom.
type Offline interface {
	// Headroom tells what stand-in could approve on the terminal with
	// device id terminal now, for a card not yet read. acceptor is the
	// card acceptor (DE 41, DE 42) of the last stand-in decision a result
	// of that terminal carried, nil when none has been seen: the device id
	// then stands for DE 41 and no merchant rules apply.
	Headroom(terminal string, acceptor *CardAcceptor) (OfflineHeadroom, error)
}

// CardAcceptor names a terminal as the center knows it: DE 41 and DE 42.
type CardAcceptor struct {
	TerminalID, MerchantID string
}

// OfflineHeadroom is the answer of GET /pos/v1/terminals/{id}/offline. No
// per-card figure can be known before the card is read: CardCount and
// CardAmount are the per-card limits, not what a given card has left.
type OfflineHeadroom struct {
	// Terminal is the device id asked about.
	Terminal string `json:"terminal"`
	// TerminalID and MerchantID are the card-acceptor ids (DE 41, DE 42)
	// the policy scope was taken from; empty until the gateway has seen
	// a stand-in decision from this terminal, when the device id stands
	// for DE 41 and no merchant rules or exposure apply.
	TerminalID string `json:"terminal_id,omitempty"`
	MerchantID string `json:"merchant_id,omitempty"`
	// LinkDown is true when the gateway cannot reach the center now: a
	// sale would be decided in stand-in.
	LinkDown bool `json:"link_down"`
	// Available is false when stand-in would approve nothing now; Reason
	// says why ("approved" when available).
	Available bool   `json:"available"`
	Reason    string `json:"reason"`
	// MaxAmount is the largest amount stand-in could approve: the floor
	// limit and the merchant and gateway exposure remainders.
	MaxAmount int64 `json:"max_amount"`
	// Currency is the policy's ISO 4217 numeric currency; other
	// currencies are never approved offline.
	Currency string `json:"currency"`
	// FloorLimit is the largest single offline approval in this scope.
	FloorLimit int64 `json:"floor_limit"`
	// ExposureRemaining is the gateway's total exposure cap less the
	// amount approved offline and not yet answered by the center.
	ExposureRemaining int64 `json:"exposure_remaining"`
	// CardCount and CardAmount are the per-card limits within Window.
	CardCount  int    `json:"card_count"`
	CardAmount int64  `json:"card_amount"`
	Window     string `json:"window"`
	// NegativeFileVersion is the negative file in force (0 when not
	// loaded).
	NegativeFileVersion uint64 `json:"negative_file_version"`
}

// OfflineDecision is the `offline` block of a transaction the gateway
// answered in stand-in.
type OfflineDecision struct {
	// Approved is true for an approval made offline (stored, and
	// forwarded to the center as an advice).
	Approved bool `json:"approved"`
	// Reason is the policy's reason: "approved", or why it declined
	// (floor_limit, blocked, no_negative_file, card_declined, ...).
	Reason string `json:"reason"`
	// ActionCode is the DE 39 the terminal was answered.
	ActionCode string `json:"action_code"`
	// DecidedAt is when the gateway decided.
	DecidedAt time.Time `json:"decided_at"`
}

func (s *Server) terminalOffline(w http.ResponseWriter, r *http.Request, c *client) {
	id := r.PathValue("id")
	if !s.allowed(w, r, c, id) {
		return
	}
	if s.off == nil {
		writeError(w, http.StatusServiceUnavailable, "offline_unavailable", "the gateway has no offline store")
		return
	}
	h, err := s.off.Headroom(id, s.acceptor(id))
	if err != nil {
		s.log.Error("offline headroom unavailable", "terminal", id, "reason", err)
		writeError(w, http.StatusServiceUnavailable, "offline_unavailable", "the offline store cannot be read now")
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// learnAcceptor remembers the card acceptor of r's stand-in decision as
// its device's, for the headroom.
func (s *Server) learnAcceptor(r device.TxnResult) {
	if r.StandIn == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acceptors[r.DeviceID] = CardAcceptor{TerminalID: r.StandIn.TerminalID, MerchantID: r.StandIn.MerchantID}
}

// acceptor returns the card acceptor learnt for device id, nil when none.
func (s *Server) acceptor(id string) *CardAcceptor {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.acceptors[id]
	if !ok {
		return nil
	}
	return &a
}
