// Package standin is the gateway's stand-in policy: whether a sale the
// center cannot be asked about may be approved offline, under rules set
// per brand, merchant, merchant and brand, and terminal. It decides on
// numbers the caller supplies (negative-file state, the card's velocity
// and the exposure so far); the offline package keeps those numbers in
// bbolt and calls Decide inside the transaction that stores the approval.
//
// The package does no I/O. A Policy is a plain value: it must not be
// modified while Decide or Headroom run on it; they are safe for
// concurrent use on an unmodified Policy.
package standin

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Defaults applied to zero fields (see Policy and Rules).
const (
	DefaultCurrency         = "392" // JPY
	DefaultFloorLimit       = 10_000
	DefaultCardCount        = 3
	DefaultCardAmount       = 30_000
	DefaultWindow           = 24 * time.Hour
	DefaultMerchantExposure = 500_000
	DefaultTotalExposure    = 2_000_000
	DefaultMaxAge           = 72 * time.Hour
	DefaultMaxStaleness     = 24 * time.Hour
)

// Rules are the limits for one scope. A zero field inherits the value of
// the next less specific scope (terminal → merchant and brand → merchant →
// brand → Policy.Default → the Default* constants).
type Rules struct {
	// Disabled refuses stand-in in this scope and every more specific one.
	Disabled bool `yaml:"disabled"`
	// FloorLimit is the largest amount of one offline approval, in minor
	// units of Policy.Currency.
	FloorLimit int64 `yaml:"floor_limit"`
	// CardCount is the most offline approvals one card (fingerprint) may
	// have within Window.
	CardCount int `yaml:"card_count"`
	// CardAmount is the most one card may spend offline within Window.
	CardAmount int64 `yaml:"card_amount"`
	// Window is the sliding window of CardCount and CardAmount.
	Window time.Duration `yaml:"window"`
	// MerchantExposure caps the merchant's offline approvals not yet
	// answered by the center.
	MerchantExposure int64 `yaml:"merchant_exposure"`
}

// Policy is the whole stand-in configuration of a gateway. The zero value
// is valid and means every default.
type Policy struct {
	// Currency is the ISO 4217 numeric currency of every limit; sales in
	// another currency are never approved offline. Default "392".
	Currency string `yaml:"currency"`
	// TotalExposure caps the gateway's offline approvals not yet answered
	// by the center, all merchants together. Default 2,000,000.
	TotalExposure int64 `yaml:"total_exposure"`
	// MaxAge is how long a stored approval may wait to be forwarded;
	// older ones are flagged expired instead of sent. Default 72h.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxStaleness is how old the negative file may be (since it was last
	// synced or confirmed current) before stand-in is refused. Default 24h.
	MaxStaleness time.Duration `yaml:"max_staleness"`
	// Default are the rules of every scope not overridden.
	Default Rules `yaml:"default"`
	// Brands, Merchants, MerchantBrands (key "merchant/brand") and
	// Terminals override Default field by field, in that order of
	// increasing precedence.
	Brands         map[string]Rules `yaml:"brands"`
	Merchants      map[string]Rules `yaml:"merchants"`
	MerchantBrands map[string]Rules `yaml:"merchant_brands"`
	Terminals      map[string]Rules `yaml:"terminals"`
}

// Validate reports every negative limit or malformed currency, naming the
// key and value.
func (p *Policy) Validate() error {
	var bad []string
	if p.Currency != "" && !digits(p.Currency, 3) {
		bad = append(bad, fmt.Sprintf("currency %q: must be 3 digits (ISO 4217 numeric)", p.Currency))
	}
	if p.TotalExposure < 0 {
		bad = append(bad, fmt.Sprintf("total_exposure %d: must be >= 0", p.TotalExposure))
	}
	if p.MaxAge < 0 {
		bad = append(bad, fmt.Sprintf("max_age %s: must be >= 0", p.MaxAge))
	}
	if p.MaxStaleness < 0 {
		bad = append(bad, fmt.Sprintf("max_staleness %s: must be >= 0", p.MaxStaleness))
	}
	check := func(scope string, r Rules) {
		if r.FloorLimit < 0 {
			bad = append(bad, fmt.Sprintf("%s.floor_limit %d: must be >= 0", scope, r.FloorLimit))
		}
		if r.CardCount < 0 {
			bad = append(bad, fmt.Sprintf("%s.card_count %d: must be >= 0", scope, r.CardCount))
		}
		if r.CardAmount < 0 {
			bad = append(bad, fmt.Sprintf("%s.card_amount %d: must be >= 0", scope, r.CardAmount))
		}
		if r.Window < 0 {
			bad = append(bad, fmt.Sprintf("%s.window %s: must be >= 0", scope, r.Window))
		}
		if r.MerchantExposure < 0 {
			bad = append(bad, fmt.Sprintf("%s.merchant_exposure %d: must be >= 0", scope, r.MerchantExposure))
		}
	}
	check("default", p.Default)
	for _, m := range []struct {
		name string
		m    map[string]Rules
	}{{"brands", p.Brands}, {"merchants", p.Merchants}, {"merchant_brands", p.MerchantBrands}, {"terminals", p.Terminals}} {
		for _, k := range slices.Sorted(maps.Keys(m.m)) {
			check(m.name+"."+k, m.m[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.MerchantBrands)) {
		if strings.Count(k, "/") != 1 {
			bad = append(bad, fmt.Sprintf("merchant_brands key %q: must be merchant/brand", k))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("stand-in policy: %s", strings.Join(bad, "; "))
	}
	return nil
}

// CurrencyCode returns the policy's currency with the default applied.
func (p *Policy) CurrencyCode() string { return or(p.Currency, DefaultCurrency) }

// MaxAgeOrDefault returns MaxAge with the default applied.
func (p *Policy) MaxAgeOrDefault() time.Duration { return or(p.MaxAge, DefaultMaxAge) }

// MaxStalenessOrDefault returns MaxStaleness with the default applied.
func (p *Policy) MaxStalenessOrDefault() time.Duration {
	return or(p.MaxStaleness, DefaultMaxStaleness)
}

// TotalExposureOrDefault returns TotalExposure with the default applied.
func (p *Policy) TotalExposureOrDefault() int64 { return or(p.TotalExposure, DefaultTotalExposure) }

// MaxWindow returns the longest velocity window of any scope: how long a
// store must keep a card's offline approvals for velocity.
func (p *Policy) MaxWindow() time.Duration {
	w := or(p.Default.Window, DefaultWindow)
	for _, m := range []map[string]Rules{p.Brands, p.Merchants, p.MerchantBrands, p.Terminals} {
		for _, r := range m {
			w = max(w, r.Window)
		}
	}
	return w
}

// Scope names where a sale happens.
type Scope struct {
	TerminalID string
	MerchantID string
	Brand      string
}

// Rules returns the effective rules of scope s with every default applied.
func (p *Policy) Rules(s Scope) Rules {
	r := Rules{
		FloorLimit: DefaultFloorLimit, CardCount: DefaultCardCount, CardAmount: DefaultCardAmount,
		Window: DefaultWindow, MerchantExposure: DefaultMerchantExposure,
	}
	r = merge(r, p.Default)
	if o, ok := p.Brands[s.Brand]; ok {
		r = merge(r, o)
	}
	if o, ok := p.Merchants[s.MerchantID]; ok {
		r = merge(r, o)
	}
	if o, ok := p.MerchantBrands[s.MerchantID+"/"+s.Brand]; ok {
		r = merge(r, o)
	}
	if o, ok := p.Terminals[s.TerminalID]; ok {
		r = merge(r, o)
	}
	return r
}

func merge(base, o Rules) Rules {
	base.Disabled = base.Disabled || o.Disabled
	base.FloorLimit = or(o.FloorLimit, base.FloorLimit)
	base.CardCount = or(o.CardCount, base.CardCount)
	base.CardAmount = or(o.CardAmount, base.CardAmount)
	base.Window = or(o.Window, base.Window)
	base.MerchantExposure = or(o.MerchantExposure, base.MerchantExposure)
	return base
}

// Chip is the card's own offline decision, from the terminal.
type Chip uint8

// Chip decisions.
const (
	ChipNone Chip = iota // no chip decision (magstripe, or the card asked to go online)
	ChipTC               // the card approved offline (TC)
	ChipAAC              // the card declined (AAC)
)

// Request is a sale the center could not be asked about.
type Request struct {
	Scope
	Fingerprint string // DE 122
	Amount      int64  // minor units
	Currency    string // ISO 4217 numeric
	Refund      bool
	Chip        Chip
}

// State is what the store knows at the moment of deciding.
type State struct {
	// NegativeLoaded is false when no negative file has ever been applied.
	NegativeLoaded bool
	// NegativeAge is how long ago the negative file was last synced or
	// confirmed current.
	NegativeAge time.Duration
	// Blocked is true when the card's fingerprint is on the negative file.
	Blocked bool
	// CardCount and CardAmount are the card's offline approvals within
	// the scope's window, before this request.
	CardCount  int
	CardAmount int64
	// MerchantExposure and TotalExposure are the offline amounts approved
	// and not yet answered by the center, before this request.
	MerchantExposure int64
	TotalExposure    int64
}

// Reason says why a decision went the way it did.
type Reason uint8

// Reasons, in the order Decide checks them.
const (
	ReasonApproved         Reason = iota // approved offline
	ReasonBlocked                        // the card is on the negative file
	ReasonNoNegativeFile                 // no negative file has been loaded
	ReasonNegativeStale                  // the negative file is older than MaxStaleness
	ReasonCardDeclined                   // the chip declined (AAC)
	ReasonRefund                         // refunds are never approved offline
	ReasonCurrency                       // not the policy's currency
	ReasonDisabled                       // stand-in is disabled for the scope
	ReasonInvalidAmount                  // amount <= 0
	ReasonFloorLimit                     // over the floor limit
	ReasonCardCount                      // the card's offline count in the window is used up
	ReasonCardAmount                     // the card's offline amount in the window would be exceeded
	ReasonMerchantExposure               // the merchant's exposure cap would be exceeded
	ReasonTotalExposure                  // the gateway's exposure cap would be exceeded
)

var reasonNames = [...]string{
	"approved", "blocked", "no negative file", "negative file stale", "card declined",
	"refund", "currency", "disabled", "invalid amount", "floor limit", "card count",
	"card amount", "merchant exposure", "total exposure",
}

// String names the reason.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// ActionCode returns the ISO 8583 action code (DE 39) the terminal gets.
func (r Reason) ActionCode() string {
	switch r {
	case ReasonApproved:
		return "000"
	case ReasonBlocked:
		return "200" // do not honour, pick up
	case ReasonCardDeclined:
		return "100"
	case ReasonInvalidAmount:
		return "110"
	case ReasonCardCount:
		return "123"
	case ReasonCardAmount:
		return "121"
	}
	return "907" // the center cannot be reached and the gateway may not stand in
}

// Decision is the outcome of Decide.
type Decision struct {
	Approved bool
	Reason   Reason
}

// Decide applies p to r in state s. The negative file is checked first: a
// blocked card is declined whatever else holds; then stand-in is refused
// without a loaded, fresh negative file; a chip AAC is declined; refunds
// and other currencies are refused; then the scope's limits apply. A chip
// TC skips the floor limit (the terminal applied it in its own risk
// management) but not velocity or exposure.
func (p *Policy) Decide(r Request, s State) Decision {
	no := func(why Reason) Decision { return Decision{Reason: why} }
	switch {
	case s.NegativeLoaded && s.Blocked:
		return no(ReasonBlocked)
	case !s.NegativeLoaded:
		return no(ReasonNoNegativeFile)
	case s.NegativeAge > p.MaxStalenessOrDefault():
		return no(ReasonNegativeStale)
	case r.Chip == ChipAAC:
		return no(ReasonCardDeclined)
	case r.Refund:
		return no(ReasonRefund)
	case r.Currency != p.CurrencyCode():
		return no(ReasonCurrency)
	}
	rules := p.Rules(r.Scope)
	switch {
	case rules.Disabled:
		return no(ReasonDisabled)
	case r.Amount <= 0:
		return no(ReasonInvalidAmount)
	case r.Chip != ChipTC && r.Amount > rules.FloorLimit:
		return no(ReasonFloorLimit)
	case s.CardCount >= rules.CardCount:
		return no(ReasonCardCount)
	case s.CardAmount+r.Amount > rules.CardAmount:
		return no(ReasonCardAmount)
	case s.MerchantExposure+r.Amount > rules.MerchantExposure:
		return no(ReasonMerchantExposure)
	case s.TotalExposure+r.Amount > p.TotalExposureOrDefault():
		return no(ReasonTotalExposure)
	}
	return Decision{Approved: true, Reason: ReasonApproved}
}

// Headroom is what a POS can be told before the card is read.
type Headroom struct {
	// Available is false when no sale at all can be approved offline now.
	Available bool
	// Reason says why not (ReasonApproved when Available).
	Reason Reason
	// MaxAmount is the largest amount a card not yet seen could be
	// approved for: the floor limit and both exposure caps' remainders.
	// Per-card velocity is not known before the card is read.
	MaxAmount int64
}

// Headroom tells what stand-in can still approve in scope sc in state s
// (whose card fields are ignored).
func (p *Policy) Headroom(sc Scope, s State) Headroom {
	switch {
	case !s.NegativeLoaded:
		return Headroom{Reason: ReasonNoNegativeFile}
	case s.NegativeAge > p.MaxStalenessOrDefault():
		return Headroom{Reason: ReasonNegativeStale}
	}
	rules := p.Rules(sc)
	if rules.Disabled {
		return Headroom{Reason: ReasonDisabled}
	}
	m := rules.MerchantExposure - s.MerchantExposure
	t := p.TotalExposureOrDefault() - s.TotalExposure
	h := Headroom{MaxAmount: max(0, min(rules.FloorLimit, m, t))}
	switch {
	case t <= 0:
		h.Reason = ReasonTotalExposure
	case m <= 0:
		h.Reason = ReasonMerchantExposure
	default:
		h.Available = true
	}
	return h
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
