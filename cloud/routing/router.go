package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/brandspec"
	"github.com/posgate/posgate/protocol/iso93"
)

// Defaults of Router's zero fields.
const (
	DefaultAcquirerID    = "99999"
	DefaultRetryInterval = 10 * time.Second
	DefaultMaxAttempts   = 10
	DefaultPollInterval  = time.Second
	// DefaultPOSDataCode is DE 22 sent to a host when the originator gave
	// none: unknown input capability and mode (all zeros).
	DefaultPOSDataCode = "000000000000"
)

// Sealer seals PANs under the token-vault key for the outbox and opens
// them again at delivery. *tokenvault.Vault satisfies it.
type Sealer interface {
	Seal(pan card.PAN) ([]byte, error)
	Open(sealed []byte) (card.PAN, error)
}

// Router decides where a card's requests go and talks to the brand hosts.
// Its fields are set before first use and not changed after; it is then
// safe for concurrent use. Run delivers the host outbox; whoever starts it
// stops it by cancelling its context and waits for it to return.
type Router struct {
	Store *store.Store
	// Hosts are the brand hosts by name.
	Hosts map[string]*Client
	// Sealer seals the PAN of advices kept in the outbox.
	Sealer Sealer
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AcquirerID is DE 32 on messages to hosts; zero means
	// DefaultAcquirerID.
	AcquirerID string
	// RetryInterval is the pause between attempts of one outbox message;
	// zero means DefaultRetryInterval.
	RetryInterval time.Duration
	// MaxAttempts bounds the attempts of one outbox message before it is
	// marked failed (and audited); zero means DefaultMaxAttempts.
	MaxAttempts int
	// PollInterval is how often Run looks for due messages when not woken
	// by Kick; zero means DefaultPollInterval.
	PollInterval time.Duration

	wakeOnce sync.Once
	wakeCh   chan struct{}
}

// Decision is where a PAN is routed. Destination is store.OnUs, a brand
// host name, or "" when no route matches. Route is the matching BIN route
// (zero for on-us products and for no route).
type Decision struct {
	Destination string
	Route       store.BINRoute
}

// OnUs reports whether the center issues the card itself.
func (d Decision) OnUs() bool { return d.Destination == store.OnUs }

// Routed reports whether the card goes to a brand host.
func (d Decision) Routed() bool { return d.Destination != "" && !d.OnUs() }

// maxBIN is the longest BIN prefix a route may have.
const maxBIN = 11

// Route decides where pan goes: on-us when a card product of the center
// covers its BIN (whatever the routes say), else the most specific BIN
// route, else nowhere. Only the first 11 digits and the length go to the
// database.
func (r *Router) Route(ctx context.Context, pan card.PAN) (Decision, error) {
	var d Decision
	// Independent lookups of master data: no snapshot needed, and on
	// PostgreSQL Read spends no BEGIN/ROLLBACK round trip on them.
	err := r.Store.Read(ctx, func(tx *store.Tx) error {
		var err error
		d, err = RouteIn(ctx, tx, pan)
		return err
	})
	return d, err
}

// Prefix returns what of pan the routing lookups send to the database (at
// most the first 11 digits), for store.AuthReads.BINPrefix.
func Prefix(pan card.PAN) string {
	digits := pan.Digits()
	return digits[:min(maxBIN, len(digits))]
}

// Routes is what RouteIn reads in the caller's transaction: whether a
// card product of the center covers a BIN, and the most specific BIN route.
// *store.Tx implements it.
type Routes interface {
	ProductCoversBIN(ctx context.Context, prefix string, panLength int) (bool, error)
	RouteFor(ctx context.Context, prefix string, panLength int) (store.BINRoute, error)
}

var _ Routes = (*store.Tx)(nil)

// RouteIn is Route with the lookups in tx (whose Prefetch may have read
// the on-us test already: store.AuthReads.BINPrefix).
func RouteIn(ctx context.Context, tx Routes, pan card.PAN) (Decision, error) {
	prefix, n := Prefix(pan), len(pan.Digits())
	var d Decision
	onUs, err := tx.ProductCoversBIN(ctx, prefix, n)
	if err != nil {
		return Decision{}, fmt.Errorf("route BIN %s: %w", pan.BIN(), err)
	}
	if onUs {
		d.Destination = store.OnUs
		return d, nil
	}
	rt, err := tx.RouteFor(ctx, prefix, n)
	if errors.Is(err, store.ErrNotFound) {
		return d, nil
	}
	if err != nil {
		return Decision{}, fmt.Errorf("route BIN %s: %w", pan.BIN(), err)
	}
	return Decision{Destination: rt.Destination, Route: rt}, nil
}

// Client returns the named host's client, or an error wrapping
// ErrUnknownHost.
func (r *Router) Client(host string) (*Client, error) {
	c, ok := r.Hosts[host]
	if !ok {
		return nil, fmt.Errorf("host %q: %w", host, ErrUnknownHost)
	}
	return c, nil
}

// Forward sends msg to the host and returns its answer; see Client.Send
// for the errors.
func (r *Router) Forward(ctx context.Context, host string, msg *iso8583.Message) (*iso8583.Message, error) {
	c, err := r.Client(host)
	if err != nil {
		return nil, err
	}
	return c.Send(ctx, msg)
}

func (r *Router) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Router) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Txn is what the center sends a brand host about one card transaction.
type Txn struct {
	MTI            string // 1100 or 1200
	PAN            card.PAN
	Expiry         card.Expiry // zero: DE 14 left out
	ProcessingCode string
	Amount         int64
	Currency       string
	STAN           string
	LocalTime      string // YYMMDDhhmmss
	POSDataCode    string // zero means DefaultPOSDataCode
	TerminalID     string
	MerchantID     string
	RRN            string
}

func (r *Router) acquirer() string {
	if r.AcquirerID != "" {
		return r.AcquirerID
	}
	return DefaultAcquirerID
}

// merchantField pads a merchant id to DE 42's 15 characters.
func merchantField(id string) string {
	if len(id) >= 15 {
		return id[:15]
	}
	return fmt.Sprintf("%-15s", id)
}

func functionOf(mti string) string {
	if mti == iso93.MTIAuthorizationRequest {
		return iso93.FunctionOriginalAuthorization
	}
	return iso93.FunctionOriginalFinancial
}

// common sets the fields every message about t carries.
func (r *Router) common(m *iso8583.Message, t Txn, now time.Time) error {
	pos := t.POSDataCode
	if pos == "" {
		pos = DefaultPOSDataCode
	}
	set := []struct {
		id int
		v  string
	}{
		{iso93.FieldProcessingCode, t.ProcessingCode},
		{iso93.FieldTransmissionTime, iso93.TransmissionTime(now)},
		{iso93.FieldSTAN, t.STAN},
		{iso93.FieldLocalTime, t.LocalTime},
		{iso93.FieldPOSDataCode, pos},
		{iso93.FieldAcquirerID, r.acquirer()},
		{iso93.FieldRRN, t.RRN},
		{iso93.FieldTerminalID, t.TerminalID},
		{iso93.FieldMerchantID, merchantField(t.MerchantID)},
		{iso93.FieldCurrency, t.Currency},
	}
	for _, f := range set {
		if f.v == "" {
			continue
		}
		if err := m.Field(f.id, f.v); err != nil {
			return fmt.Errorf("set DE %d: %w", f.id, err)
		}
	}
	if err := m.Field(iso93.FieldAmount, strconv.FormatInt(t.Amount, 10)); err != nil {
		return fmt.Errorf("set DE 4: %w", err)
	}
	if !t.Expiry.IsZero() {
		if err := m.Field(brandspec.FieldExpiry, t.Expiry.String()); err != nil {
			return fmt.Errorf("set DE 14: %w", err)
		}
	}
	return nil
}

// Request builds the 1100/1200 for t with DE 2, ready for Forward.
func (r *Router) Request(t Txn, now time.Time) (*iso8583.Message, error) {
	m := brandspec.NewMessage(t.MTI)
	if err := r.common(m, t, now); err != nil {
		return nil, fmt.Errorf("build %s for host: %w", t.MTI, err)
	}
	if err := m.Field(iso93.FieldFunctionCode, functionOf(t.MTI)); err != nil {
		return nil, fmt.Errorf("build %s for host: %w", t.MTI, err)
	}
	if err := m.Field(iso93.FieldPAN, t.PAN.Digits()); err != nil {
		return nil, fmt.Errorf("build %s for host: set DE 2: %w", t.MTI, err)
	}
	return m, nil
}

// Reversal builds the packed 1420 that reverses t at the host (reason is
// iso93.ReasonTimeoutReversal or ReasonCustomerCancel; key is DE 123). It
// carries no PAN: DE 56 with DE 41 and DE 32 name the original.
func (r *Router) Reversal(t Txn, reason, key string, now time.Time) ([]byte, error) {
	m := brandspec.NewMessage(iso93.MTIReversal)
	if err := r.common(m, t, now); err != nil {
		return nil, fmt.Errorf("build 1420 for host: %w", err)
	}
	od, err := iso93.OriginalData{MTI: t.MTI, STAN: t.STAN, LocalTime: t.LocalTime, AcquirerID: r.acquirer()}.Encode()
	if err != nil {
		return nil, fmt.Errorf("build 1420 for host: %w", err)
	}
	for _, f := range []struct {
		id int
		v  string
	}{{iso93.FieldFunctionCode, iso93.FunctionFullReversal}, {iso93.FieldReasonCode, reason},
		{iso93.FieldOriginalData, od}, {iso93.FieldIdempotencyKey, key}} {
		if err := m.Field(f.id, f.v); err != nil {
			return nil, fmt.Errorf("build 1420 for host: set DE %d: %w", f.id, err)
		}
	}
	m.UnsetField(brandspec.FieldExpiry)
	raw, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack 1420 for host: %w", err)
	}
	return raw, nil
}

// Advice builds the packed 1220 reporting the center's stand-in approval of
// t (approval is DE 38, key DE 123), without DE 2: the outbox keeps the PAN
// sealed and adds it at each send.
func (r *Router) Advice(t Txn, approval, key string, now time.Time) ([]byte, error) {
	m := brandspec.NewMessage(iso93.MTIAdvice)
	if err := r.common(m, t, now); err != nil {
		return nil, fmt.Errorf("build 1220 for host: %w", err)
	}
	for _, f := range []struct {
		id int
		v  string
	}{{iso93.FieldFunctionCode, iso93.FunctionPreviousApproval}, {iso93.FieldReasonCode, iso93.ReasonStandIn},
		{iso93.FieldApprovalCode, approval}, {iso93.FieldIdempotencyKey, key}} {
		if err := m.Field(f.id, f.v); err != nil {
			return nil, fmt.Errorf("build 1220 for host: set DE %d: %w", f.id, err)
		}
	}
	raw, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack 1220 for host: %w", err)
	}
	return raw, nil
}
