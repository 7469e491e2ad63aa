// Package demo seeds a center with the demo master data the simulator's deck
// expects: one merchant behind one gateway, its terminals, and every deck card
// marked Issued. It is used by `cardcenter seed-demo`, `make demo` and the
// end-to-end tests.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/posgate/posgate/cloud/acquiring"
	"github.com/posgate/posgate/cloud/issuing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/p2pe/card"
)

// Demo master data: one merchant behind one gateway, its terminals, and the
// simulator's deck issued as cards in JPY.
const (
	MerchantID = "MERCHANT0000001"
	MCC        = "5411"
	Currency   = "392" // JPY
)

// TerminalID returns the i-th demo terminal ID (1-based): T0000001, ...
func TerminalID(i int) string { return fmt.Sprintf("T%07d", i) }

// Seed registers the demo gateway, merchant and terminals and issues every
// deck card marked Issued. A center that already knows the gateway is left
// as it is.
func Seed(ctx context.Context, st *store.Store, vault issuing.Vault, gatewayID string, terminals int, out io.Writer) error {
	acq := &acquiring.Acquirer{Store: st}
	if err := acq.RegisterGateway(ctx, gatewayID); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			fmt.Fprintf(out, "gateway %s already registered: demo data left as it is\n", gatewayID)
			return nil
		}
		return fmt.Errorf("register gateway: %w", err)
	}
	if err := acq.CreateMerchant(ctx, MerchantID, "Demo Store Shibuya", ""); err != nil {
		return fmt.Errorf("create merchant: %w", err)
	}
	for i := 1; i <= terminals; i++ {
		if err := acq.RegisterTerminal(ctx, TerminalID(i), MerchantID, gatewayID, MCC, Currency); err != nil {
			return fmt.Errorf("register terminal: %w", err)
		}
	}
	iss := &issuing.Issuer{Store: st, Vault: vault}
	for _, c := range deck.Cards() {
		if !c.Issued {
			continue
		}
		if err := issueDeckCard(ctx, iss, c); err != nil {
			return fmt.Errorf("issue deck card %s: %w", c.Name, err)
		}
	}
	fmt.Fprintf(out, "seeded gateway %s, merchant %s, %d terminals, deck cards\n", gatewayID, MerchantID, terminals)
	return nil
}

func issueDeckCard(ctx context.Context, iss *issuing.Issuer, c deck.Card) error {
	pan, err := card.ParsePAN(c.PAN)
	if err != nil {
		return err
	}
	exp, err := card.ParseExpiry(c.Expiry)
	if err != nil {
		return err
	}
	p := store.Product{
		Name:      "demo " + c.Name,
		Kind:      store.ProductKind(c.Product),
		Currency:  Currency,
		BINLow:    pan.BIN(),
		BINHigh:   pan.BIN(),
		PANLength: pan.Len(),
	}
	switch c.Product {
	case deck.ProductCredit:
		p.CreditLine = c.Funds
	case deck.ProductHouse:
		p.CreditLine = c.Funds
		p.AllowedMerchants = []string{MerchantID}
	}
	productID, err := iss.CreateProduct(ctx, p)
	if err != nil {
		return err
	}
	holder, err := iss.CreateCardholder(ctx, "Demo "+c.Name)
	if err != nil {
		return err
	}
	account, err := iss.CreateAccount(ctx, productID, holder)
	if err != nil {
		return err
	}
	if c.Product == deck.ProductDebit || c.Product == deck.ProductPrepaid {
		if _, err := iss.TopUp(ctx, account, c.Funds, "demo-seed"); err != nil {
			return err
		}
	}
	cardID, err := iss.ImportCard(ctx, productID, account, pan, exp)
	if err != nil {
		return err
	}
	if c.Status != "" && c.Status != string(store.CardActive) {
		if err := iss.SetStatus(ctx, cardID, store.CardStatus(c.Status), "demo-seed"); err != nil {
			return err
		}
	}
	return nil
}
