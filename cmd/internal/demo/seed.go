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

// Seed registers the demo gateway, merchant and terminals first..first+n-1
// behind it, and issues every deck card marked Issued. Every step is
// idempotent: what exists already (a gateway, the merchant, a terminal, a
// card with the same PAN fingerprint) is left as it is, so Seed can run again
// and can add a second gateway with terminals of its own.
func Seed(ctx context.Context, st *store.Store, vault issuing.Vault, gatewayID string, first, n int, out io.Writer) error {
	acq := &acquiring.Acquirer{Store: st}
	exists := func(err error) bool { return errors.Is(err, store.ErrDuplicate) }
	if err := acq.RegisterGateway(ctx, gatewayID); err != nil && !exists(err) {
		return fmt.Errorf("register gateway: %w", err)
	}
	if err := acq.CreateMerchant(ctx, MerchantID, "Demo Store Shibuya", ""); err != nil && !exists(err) {
		return fmt.Errorf("create merchant: %w", err)
	}
	for i := first; i < first+n; i++ {
		if err := acq.RegisterTerminal(ctx, TerminalID(i), MerchantID, gatewayID, MCC, Currency); err != nil && !exists(err) {
			return fmt.Errorf("register terminal: %w", err)
		}
	}
	iss := &issuing.Issuer{Store: st, Vault: vault}
	issued := 0
	for _, c := range deck.Cards() {
		if !c.Issued {
			continue
		}
		known, err := cardKnown(ctx, st, vault, c)
		if err != nil {
			return fmt.Errorf("look up deck card %s: %w", c.Name, err)
		}
		if known {
			continue
		}
		if err := issueDeckCard(ctx, iss, c); err != nil {
			return fmt.Errorf("issue deck card %s: %w", c.Name, err)
		}
		issued++
	}
	fmt.Fprintf(out, "seeded gateway %s, merchant %s, terminals %s..%s, %d new deck cards\n",
		gatewayID, MerchantID, TerminalID(first), TerminalID(first+n-1), issued)
	return nil
}

// cardKnown reports whether the center already has the deck card.
func cardKnown(ctx context.Context, st *store.Store, vault issuing.Vault, c deck.Card) (bool, error) {
	pan, err := c.ParsedPAN()
	if err != nil {
		return false, err
	}
	fp, err := vault.Fingerprint(pan)
	if err != nil {
		return false, err
	}
	err = st.View(ctx, func(tx *store.Tx) error {
		_, err := tx.CardByFingerprint(ctx, fp)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
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
