// Package controls applies a card's cardholder controls to a transaction:
// the cardholder's own lock, a per-transaction limit, a daily limit,
// blocked merchant category codes, an overseas switch and an e-commerce
// switch (see docs/issuing.md).
//
// Check is the decision the authorization switch calls for on-us cards,
// after its card look-up, status and expiry checks and before the balance
// check, inside the transaction that records the answer. Validate checks
// controls before they are stored.
package controls

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/iso93"
)

var (
	// ErrInvalid is returned by Validate for controls that break a rule
	// and by Check for a transaction it cannot judge (amount out of range);
	// the message names the rule.
	ErrInvalid = errors.New("controls: invalid")
)

// MaxBlockedMCCs bounds the blocked merchant category codes of one card.
const MaxBlockedMCCs = 64

// Txn is what Check needs to know about a transaction.
type Txn struct {
	// Amount in minor units of Currency, 1 to ledger.MaxAmount.
	Amount int64
	// Currency is the ISO 4217 numeric code; it picks the day of the daily
	// limit (DayStart).
	Currency string
	// MCC is the terminal's merchant category code (4 digits).
	MCC string
	// MerchantID is the acceptor; when Country is "" Check reads the
	// merchant's country from the store.
	MerchantID string
	// Country is the merchant's ISO 3166-1 numeric country ("392").
	Country string
	// ECommerce marks a card-not-present or electronic-commerce
	// transaction; ECommerce(DE 22) derives it from the POS data code.
	ECommerce bool
}

// Reasons Check returns with its action code (stable strings for audit
// records and tests).
const (
	ReasonInactive    = "card not activated"
	ReasonNotActive   = "card status is not active"
	ReasonLocked      = "card locked by the cardholder"
	ReasonMCCBlocked  = "merchant category blocked by the cardholder"
	ReasonECommerce   = "e-commerce disabled by the cardholder"
	ReasonOverseas    = "overseas use disabled by the cardholder"
	ReasonPerTxnLimit = "amount above the card's per-transaction limit"
	ReasonDailyLimit  = "amount would exceed the card's daily limit"
)

// Reader is what Check reads in the caller's transaction: the card's
// controls, the merchant's country, the day's approved total and the
// transaction's clock. *store.Tx implements it.
type Reader interface {
	// Now is the transaction's time; it picks the day of the daily limit.
	Now() time.Time
	CardControls(ctx context.Context, cardID int64) (store.Controls, error)
	MerchantCountry(ctx context.Context, merchantID string) (string, error)
	ApprovedTotal(ctx context.Context, cardID int64, from, to time.Time) (int64, error)
}

var _ Reader = (*store.Tx)(nil)

// Check applies the controls of card c to t and returns "" when they allow
// it, else the action code and a reason for the audit record (never card
// data):
//
//	125 card not active: inactive (never activated) — defence in depth; the
//	    switch's own status check comes first and maps lost 208, stolen 209,
//	    suspended 104, closed 125
//	119 locked by the cardholder, MCC blocked, e-commerce disabled, or
//	    overseas use disabled
//	121 amount above the per-transaction limit
//	123 approved amount today plus t.Amount above the daily limit
//
// in that order. The daily total is read with tx (Reader.ApprovedTotal)
// over the current day (DayStart of tx.Now() in t.Currency's zone); it
// counts authorizations already recorded, not t itself.
//
// Locking contract: tx is the caller's store transaction, which must have
// locked the card's account row (store.Tx.LockAccount) before Check, and must
// record its answer (the authorization row, status held or captured when
// approved) in the same tx. Then two concurrent authorizations on one card
// cannot both pass the daily limit: on PostgreSQL the second waits for the
// lock, and its READ COMMITTED sum sees the first's committed row; on
// SQLite the single writer serialises them anyway.
//
// The error is non-nil only for a store fault or a t out of range
// (ErrInvalid); the caller then records nothing.
func Check(ctx context.Context, tx Reader, c store.Card, t Txn) (iso93.ActionCode, string, error) {
	if t.Amount <= 0 || t.Amount > ledger.MaxAmount {
		return "", "", fmt.Errorf("check controls of card %d: amount %d: %w", c.ID, t.Amount, ErrInvalid)
	}
	switch c.Status {
	case store.CardActive:
	case store.CardInactive:
		return iso93.ActionCardNotEffective, ReasonInactive, nil
	default:
		return iso93.ActionCardNotEffective, ReasonNotActive, nil
	}
	k, err := tx.CardControls(ctx, c.ID)
	if err != nil {
		return "", "", fmt.Errorf("check controls of card %d: %w", c.ID, err)
	}
	if k.Locked {
		return iso93.ActionNotPermittedToCardholder, ReasonLocked, nil
	}
	if t.MCC != "" && slices.Contains(k.BlockedMCCs, t.MCC) {
		return iso93.ActionNotPermittedToCardholder, ReasonMCCBlocked + " (" + t.MCC + ")", nil
	}
	if t.ECommerce && !k.ECommerceAllowed {
		return iso93.ActionNotPermittedToCardholder, ReasonECommerce, nil
	}
	if !k.OverseasAllowed {
		country := t.Country
		if country == "" && t.MerchantID != "" {
			if country, err = tx.MerchantCountry(ctx, t.MerchantID); err != nil {
				return "", "", fmt.Errorf("check controls of card %d: %w", c.ID, err)
			}
		}
		if country == "" {
			country = store.DefaultCountry
		}
		if country != k.HomeCountry {
			return iso93.ActionNotPermittedToCardholder, ReasonOverseas + " (merchant country " + country + ")", nil
		}
	}
	if k.PerTxnLimit > 0 && t.Amount > k.PerTxnLimit {
		return iso93.ActionExceedsAmountLimit, ReasonPerTxnLimit, nil
	}
	if k.DailyLimit > 0 {
		from := DayStart(t.Currency, tx.Now())
		total, err := tx.ApprovedTotal(ctx, c.ID, from, from.AddDate(0, 0, 1))
		if err != nil {
			return "", "", fmt.Errorf("check controls of card %d: %w", c.ID, err)
		}
		if total+t.Amount > k.DailyLimit {
			return iso93.ActionExceedsFrequencyLimit, ReasonDailyLimit + " (approved today " + strconv.FormatInt(total, 10) + ")", nil
		}
	}
	return "", "", nil
}

// jst is Japan Standard Time, UTC+9 without daylight saving, fixed so that
// no time-zone database is needed.
var jst = time.FixedZone("JST", 9*60*60)

// Zone returns the time zone whose calendar day the daily limit uses for a
// currency: JST (UTC+9) for the yen ("392"), UTC for every other currency.
func Zone(currency string) *time.Location {
	if currency == "392" {
		return jst
	}
	return time.UTC
}

// DayStart returns the start of the calendar day containing t in
// Zone(currency), as a UTC time.
func DayStart(currency string, t time.Time) time.Time {
	l := t.In(Zone(currency))
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, l.Location()).UTC()
}

// ECommerce reports whether an ISO 8583:1993 POS data code (DE 22, 12
// characters) describes a card-not-present or electronic-commerce
// transaction: position 5 (cardholder presence) is '5' (electronic order),
// or position 6 (card presence) is '0' (card not present). Any other
// value, or a code that is not 12 characters, is card-present.
func ECommerce(posDataCode string) bool {
	if len(posDataCode) != 12 {
		return false
	}
	return posDataCode[4] == '5' || posDataCode[5] == '0'
}

// Validate checks controls before they are stored: limits 0 (none) to
// ledger.MaxAmount, a daily limit not below a non-zero per-transaction
// limit, at most MaxBlockedMCCs distinct 4-digit MCCs, and a 3-digit home
// country. It reports every broken rule.
func Validate(k store.Controls) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format+": %w", append(args, ErrInvalid)...))
	}
	if k.PerTxnLimit < 0 || k.PerTxnLimit > ledger.MaxAmount {
		bad("per_txn_limit %d must be 0 to %d", k.PerTxnLimit, ledger.MaxAmount)
	}
	if k.DailyLimit < 0 || k.DailyLimit > ledger.MaxAmount {
		bad("daily_limit %d must be 0 to %d", k.DailyLimit, ledger.MaxAmount)
	}
	if k.DailyLimit > 0 && k.PerTxnLimit > k.DailyLimit {
		bad("per_txn_limit %d must not exceed daily_limit %d", k.PerTxnLimit, k.DailyLimit)
	}
	if len(k.BlockedMCCs) > MaxBlockedMCCs {
		bad("blocked_mccs has %d codes, at most %d allowed", len(k.BlockedMCCs), MaxBlockedMCCs)
	}
	seen := map[string]bool{}
	for _, m := range k.BlockedMCCs {
		if !digits(m, 4) {
			bad("blocked_mccs entry %q must be 4 digits", m)
		} else if seen[m] {
			bad("blocked_mccs lists %q twice", m)
		}
		seen[m] = true
	}
	if !digits(k.HomeCountry, 3) {
		bad("home_country %q must be an ISO 3166-1 numeric code (3 digits)", k.HomeCountry)
	}
	return errors.Join(errs...)
}

// ValidCountry reports whether s has the form of an ISO 3166-1 numeric
// country code (3 digits).
func ValidCountry(s string) bool { return digits(s, 3) }

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
