package device

import (
	"errors"
	"strings"
	"time"

	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// Sentinel errors. None carries card data.
var (
	// ErrConfig is wrapped by every configuration error.
	ErrConfig = errors.New("device: invalid config")
	// ErrUnknownDevice means no device has the given id.
	ErrUnknownDevice = errors.New("device: unknown device")
	// ErrNotTerminal means the device is not a payment terminal.
	ErrNotTerminal = errors.New("device: not a payment terminal")
	// ErrNotConnected means the device is not attached now; nothing was sent.
	ErrNotConnected = errors.New("device: not connected")
	// ErrBusy means a transaction is in progress on the device; nothing
	// was sent.
	ErrBusy = errors.New("device: a transaction is in progress")
	// ErrUnresolved means an earlier transaction's outcome on the device
	// is not yet known; nothing is sent until a last-transaction query has
	// resolved it.
	ErrUnresolved = errors.New("device: an earlier transaction's outcome is not known yet")
	// ErrOutcomeUnknown means the command reached, or may have reached,
	// the terminal and its outcome could not be learnt in time. The card
	// may have been charged; the outcome is reported to OnResult once known.
	ErrOutcomeUnknown = errors.New("device: transaction outcome unknown")
	// ErrInvalid means the transaction command breaks a rule of its kind;
	// nothing was sent.
	ErrInvalid = errors.New("device: invalid transaction command")
	// ErrStopped means the manager is not running.
	ErrStopped = errors.New("device: manager stopped")
)

// Outcome is what became of a transaction command, as far as the gateway
// knows.
type Outcome string

// Outcomes.
const (
	OutcomeApproved   Outcome = "approved"    // approved by the host or by stand-in
	OutcomeDeclined   Outcome = "declined"    // declined
	OutcomeCancelled  Outcome = "cancelled"   // cancelled by the cardholder, the clerk or a cancel command
	OutcomeFailed     Outcome = "failed"      // not completed: card error, timeout, host unreachable
	OutcomeNotStarted Outcome = "not_started" // the terminal never started it (learnt by a last-transaction query); safe to retry under a new ref
	OutcomeUnknown    Outcome = "unknown"     // the result was lost and is not resolved yet: the card may have been charged
)

// Final reports whether o is a settled outcome (everything but unknown).
func (o Outcome) Final() bool { return o != OutcomeUnknown && o != "" }

// Resolution says how a result was learnt.
type Resolution string

// Resolutions.
const (
	ResolvedByResult     Resolution = "result"         // the txn-result answered the command
	ResolvedByLateResult Resolution = "late_result"    // the txn-result came after the response timeout
	ResolvedByQuery      Resolution = "last_txn_query" // a last-transaction query after a lost result
)

// TxnResult is the outcome of one transaction command. It carries no card
// data: MaskedPAN is the DE 124 form (first six, last four) taken from the
// financial messages the terminal exchanged during the command.
type TxnResult struct {
	DeviceID     string
	Ref          string     // the command's ref (the POS transaction id)
	Command      tlink.Kind // KindSale … KindCapture
	Outcome      Outcome
	Amount       uint64 // minor units, as processed (zero when the terminal did not say)
	Currency     string // ISO 4217 numeric
	ActionCode   string // DE 39
	ApprovalCode string // DE 38
	STAN         string // DE 11
	RRN          string // DE 37
	Time         string // terminal local time, YYYYMMDDhhmmss
	MaskedPAN    string // DE 124 form only
	ResolvedBy   Resolution
	// StandIn is the gateway's stand-in decision that answered the
	// command's financial request, when the terminal's result carries its
	// action code; nil when the center answered (or nobody did).
	StandIn *StandIn
}

// StandIn is the gateway's own decision on a financial request it could
// not send to the center (gateway/standin): the terminal's answer came
// from the stand-in policy. It carries no card data.
type StandIn struct {
	// Approved is true for an approval made offline (stored, and
	// forwarded to the center as an advice).
	Approved bool
	// Reason is the policy's reason as a code: "approved", or why it
	// declined (floor_limit, blocked, no_negative_file, ...).
	Reason string
	// ActionCode is the DE 39 the terminal was answered.
	ActionCode string
	// DecidedAt is when the gateway decided (UTC).
	DecidedAt time.Time
	// TerminalID and MerchantID are the request's card acceptor (DE 41,
	// DE 42): the scope of the stand-in rules that applied.
	TerminalID, MerchantID string
}

func outcomeOf(o tlink.Outcome) Outcome {
	switch o {
	case tlink.OutcomeApproved:
		return OutcomeApproved
	case tlink.OutcomeDeclined:
		return OutcomeDeclined
	case tlink.OutcomeCancelled:
		return OutcomeCancelled
	case tlink.OutcomeFailed:
		return OutcomeFailed
	}
	return OutcomeUnknown
}

// Health is how a device stands now.
type Health string

// Health values; the posgate_device_health gauge shows them as 0, 1, 2.
const (
	HealthDown     Health = "down"     // not connected
	HealthDegraded Health = "degraded" // connected, but the last status poll failed or the device reports an error state
	HealthUp       Health = "up"       // connected and the last status poll answered idle, busy or updating
)

func (h Health) gauge() float64 {
	switch h {
	case HealthUp:
		return 2
	case HealthDegraded:
		return 1
	}
	return 0
}

// Snapshot is a device's state at one moment, for devicectl, metrics and
// the POS API. It is a copy; it holds no card data and no key material.
type Snapshot struct {
	ID         string
	Kind       transport.DeviceKind
	Medium     transport.Medium // empty for a hot-attached device
	Where      string           // path or address; the remote address of a hot-attached device
	Attached   bool             // hot-attached (identified by its status response), not configured
	Health     Health
	Connected  bool
	State      string // idle, busy, error, updating; empty when unknown
	Model      string
	Serial     string
	Firmware   string
	LastStatus time.Time // when the last status response arrived; zero if never
	LastError  string    // why the last open or poll failed; empty after success
	Reconnects uint64    // links opened after the first
	Busy       bool      // a transaction command is in progress
	Unresolved string    // ref of a transaction whose outcome is not known yet
}

func stateName(s tlink.DeviceState) string {
	switch s {
	case tlink.StateIdle:
		return "idle"
	case tlink.StateBusy:
		return "busy"
	case tlink.StateError:
		return "error"
	case tlink.StateUpdating:
		return "updating"
	}
	return ""
}

// maskPAN makes sure a DE 124 value shows at most the first six and last
// four digits, whatever a terminal or host put there.
func maskPAN(s string) string {
	if s == "" {
		return ""
	}
	b := []byte(s)
	for i := range b {
		if i >= 6 && i < len(b)-4 {
			b[i] = '*'
		}
	}
	if len(b) <= 10 {
		return strings.Repeat("*", len(b))
	}
	return string(b)
}
