package standin

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/offline"
	policy "github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
)

// Sentinel errors of Decide. Each tells the caller which action code to
// answer the terminal with instead of a decision.
var (
	// ErrNotSale marks a request stand-in does not decide (not a
	// 1100/1200): answer 907.
	ErrNotSale = errors.New("standin: message class is not decided in stand-in")
	// ErrMalformed marks a 1100/1200 the center would refuse as malformed
	// (904) as well: answer 904.
	ErrMalformed = errors.New("standin: malformed request")
	// ErrUndecided means the store could not decide (it failed): the sale
	// is declined, answer 907.
	ErrUndecided = errors.New("standin: store failed, sale not decided")
	// ErrNoAnswer means the decision is made (an approval is stored and
	// will be advised) but its answer cannot be built: answer 909.
	ErrNoAnswer = errors.New("standin: decision made, answer not buildable")
)

// Store decides a sale the center cannot be asked about and, when it
// approves, makes the approval durable before it returns.
// *offline.Store satisfies it.
type Store interface {
	Approve(sale offline.Sale) (offline.Decision, error)
}

// Decider decides the 1100/1200 requests the center could not be sent.
// It is safe for concurrent use.
type Decider struct {
	Store Store
	// Metrics counts the decisions; nil records nothing.
	Metrics *Metrics
	// Logger receives each decision and failure, without card data; nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock of DecidedAt; nil means time.Now.
	Now func() time.Time
}

// Decide decides raw (whose header is h) under the stand-in policy and
// returns the terminal's answer with the decision. The answer is built
// only after the Store returned, so an approval is durable (fsync) before
// the terminal hears of it. When it returns an error the terminal is
// answered with the code its sentinel names (ErrNotSale, ErrMalformed,
// ErrUndecided, ErrNoAnswer).
func (d *Decider) Decide(raw []byte, h iso93.Header) (device.Answer, error) {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sale, err := SaleFrom(raw)
	switch {
	case errors.Is(err, ErrNotSale):
		return device.Answer{}, err
	case err != nil:
		log.Warn("stand-in refused a malformed request", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return device.Answer{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	dec, err := d.Store.Approve(sale)
	if err != nil {
		log.Error("stand-in failed: sale declined", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		d.Metrics.decided("error")
		return device.Answer{}, fmt.Errorf("%w: %w", ErrUndecided, err)
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	at := now().UTC()
	d.Metrics.decided(dec.Reason.String())
	log.Info("stand-in decision", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN,
		"approved", dec.Approved, "reason", dec.Reason.String(), "action", dec.ActionCode, "record", dec.RecordID, "duplicate", dec.Duplicate)
	resp, err := Reply(raw, dec)
	if err != nil {
		// The approval is stored and will be advised; the terminal, not
		// told, treats the sale as failed, and the center takes the advice
		// anyway (the same rule as a sale in flight at a crash).
		log.Error("cannot build the stand-in answer", "mti", h.MTI, "terminal", h.TerminalID, "stan", h.STAN, "reason", err)
		return device.Answer{}, fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	return device.Answer{Message: resp, StandIn: &device.StandIn{
		Approved: dec.Approved, Reason: ReasonCode(dec.Reason), ActionCode: dec.ActionCode, DecidedAt: at,
		TerminalID: sale.TerminalID, MerchantID: sale.MerchantID,
	}}, nil
}

// Reply builds the 1110/1210 of a stand-in decision: the response
// echoing the request with DE 39 the decision's action code and, on an
// approval, DE 38 its approval code. DE 25 is not set: docs/message-spec.md
// does not use it in responses (a terminal learns of stand-in from the
// gateway's logs and the advice, not the answer).
func Reply(raw []byte, dec offline.Decision) ([]byte, error) {
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

// ReasonCode is r's name as a POS API code: "floor limit" → "floor_limit".
func ReasonCode(r policy.Reason) string { return strings.ReplaceAll(r.String(), " ", "_") }

// Metrics counts stand-in decisions by reason. A nil *Metrics records
// nothing; it is safe for concurrent use.
type Metrics struct {
	decisions *prometheus.CounterVec
}

// NewMetrics creates the stand-in counter on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posgate_standin_decisions_total",
		Help: "Requests decided in stand-in, by reason (approved, blocked, floor_limit, ...; error when the store failed).",
	}, []string{"reason"})}
	if err := reg.Register(m.decisions); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) decided(reason string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(reason).Inc()
}
