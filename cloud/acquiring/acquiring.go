// Package acquiring registers the acceptance side of the center: gateways,
// merchants (with their head office) and the terminals behind each gateway.
package acquiring

import (
	"context"
	"errors"
	"fmt"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
)

// ErrInvalid is returned for an identifier or code that breaks its format
// rule; the message names the field and the rule.
var ErrInvalid = errors.New("acquiring: invalid value")

// Acquirer registers gateways, merchants and terminals in a store. It is
// safe for concurrent use.
type Acquirer struct {
	Store *store.Store
}

// RegisterGateway adds a gateway (ans, 1 to 32 characters).
func (a *Acquirer) RegisterGateway(ctx context.Context, id string) error {
	if !printable(id, 1, 32) {
		return fmt.Errorf("register gateway: id must be 1 to 32 printable ASCII characters: %w", ErrInvalid)
	}
	if err := a.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.InsertGateway(ctx, store.Gateway{ID: id})
	}); err != nil {
		return fmt.Errorf("register gateway: %w", err)
	}
	return nil
}

// CreateMerchant adds a merchant (id as in DE 42: ans, 1 to 15 characters).
// headOfficeID is "" or an existing merchant's id.
func (a *Acquirer) CreateMerchant(ctx context.Context, id, name, headOfficeID string) error {
	if !printable(id, 1, 15) {
		return fmt.Errorf("create merchant: id must be 1 to 15 printable ASCII characters: %w", ErrInvalid)
	}
	if name == "" {
		return fmt.Errorf("create merchant %q: name is empty: %w", id, ErrInvalid)
	}
	if err := a.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.InsertMerchant(ctx, store.Merchant{ID: id, Name: name, HeadOfficeID: headOfficeID})
	}); err != nil {
		return fmt.Errorf("create merchant: %w", err)
	}
	return nil
}

// RegisterTerminal adds a terminal (DE 41: exactly 8 printable characters)
// of an existing merchant, reachable only through the given gateway, with
// its merchant category code (4 digits) and ISO 4217 numeric currency.
func (a *Acquirer) RegisterTerminal(ctx context.Context, terminalID, merchantID, gatewayID, mcc, currency string) error {
	switch {
	case !printable(terminalID, 8, 8):
		return fmt.Errorf("register terminal: id must be exactly 8 printable ASCII characters: %w", ErrInvalid)
	case !digits(mcc, 4):
		return fmt.Errorf("register terminal %q: mcc %q must be 4 digits: %w", terminalID, mcc, ErrInvalid)
	case !ledger.ValidCurrency(currency):
		return fmt.Errorf("register terminal %q: currency %q is not an accepted ISO 4217 numeric code: %w", terminalID, currency, ErrInvalid)
	}
	if err := a.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.InsertTerminal(ctx, store.Terminal{ID: terminalID, MerchantID: merchantID, GatewayID: gatewayID,
			MCC: mcc, Currency: currency})
	}); err != nil {
		return fmt.Errorf("register terminal: %w", err)
	}
	return nil
}

func printable(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
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
