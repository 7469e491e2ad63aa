package store

import (
	"context"
	"errors"
	"fmt"
)

// CVV2Policy is how a product's authorizations treat CVV2 (migration 0004).
type CVV2Policy string

// CVV2 policies.
const (
	// CVV2Off never checks CVV2 (the default: the demo deck's printed
	// codes are not made under the center's CVK).
	CVV2Off CVV2Policy = "off"
	// CVV2IfPresent checks CVV2 when the card block carries one.
	CVV2IfPresent CVV2Policy = "if_present"
	// CVV2Required declines a request without CVV2 and checks the one
	// given.
	CVV2Required CVV2Policy = "required"
)

// Valid reports whether p is one of the policies.
func (p CVV2Policy) Valid() bool {
	switch p {
	case CVV2Off, CVV2IfPresent, CVV2Required:
		return true
	}
	return false
}

// CardSecurity is a product's chip and card-verification settings
// (columns of card_products, migration 0004). Empty labels mean the
// center's configured defaults.
type CardSecurity struct {
	ProductID int64
	// IMKLabel is the token label of the product's issuer master key for
	// application cryptograms; "" means the default.
	IMKLabel string
	// CVKLabel is the token label of the product's card verification key
	// pair; "" means the default.
	CVKLabel string
	// AllowFallback lets a chip card of the product be read by magnetic
	// stripe at a chip terminal (default true).
	AllowFallback bool
	// CVV2 is how CVV2 is checked (default CVV2Off).
	CVV2 CVV2Policy
}

// ProductCardSecurity returns the product's chip and card-verification
// settings, or ErrNotFound for an unknown product.
func (tx *Tx) ProductCardSecurity(ctx context.Context, productID int64) (CardSecurity, error) {
	p := CardSecurity{ProductID: productID}
	var cvv2 string
	err := tx.queryRow(ctx, `SELECT imk_label, cvk_label, allow_fallback, cvv2_policy FROM card_products WHERE id = ?`,
		productID).Scan(&p.IMKLabel, &p.CVKLabel, &p.AllowFallback, &cvv2)
	if err != nil {
		return CardSecurity{}, fmt.Errorf("read card security of product %d: %w", productID, err)
	}
	p.CVV2 = CVV2Policy(cvv2)
	return p, nil
}

// CardSecurityByFingerprint returns the card with the fingerprint and its
// product's chip and card-verification settings in one statement, or
// ErrNotFound.
func (tx *Tx) CardSecurityByFingerprint(ctx context.Context, fingerprint string) (Card, CardSecurity, error) {
	var p CardSecurity
	var cvv2 string
	c, err := scanCard(withExtra{tx.queryRow(ctx, "SELECT "+prefixed("c.", cardCols)+`,
		p.imk_label, p.cvk_label, p.allow_fallback, p.cvv2_policy
		FROM cards c JOIN card_products p ON p.id = c.product_id WHERE c.fingerprint = ?`, fingerprint),
		[]any{&p.IMKLabel, &p.CVKLabel, &p.AllowFallback, &cvv2}})
	if err != nil {
		return Card{}, CardSecurity{}, fmt.Errorf("read card security by fingerprint: %w", err)
	}
	p.ProductID, p.CVV2 = c.ProductID, CVV2Policy(cvv2)
	return c, p, nil
}

// SetProductCardSecurity stores p for product p.ProductID. It refuses an
// invalid CVV2 policy and returns ErrNotFound for an unknown product.
func (tx *Tx) SetProductCardSecurity(ctx context.Context, p CardSecurity) error {
	if !p.CVV2.Valid() {
		return fmt.Errorf("set card security of product %d: CVV2 policy %q: want off, if_present or required", p.ProductID, p.CVV2)
	}
	n, err := tx.exec(ctx, `UPDATE card_products SET imk_label = ?, cvk_label = ?, allow_fallback = ?, cvv2_policy = ? WHERE id = ?`,
		p.IMKLabel, p.CVKLabel, p.AllowFallback, string(p.CVV2), p.ProductID)
	if err != nil {
		return fmt.Errorf("set card security of product %d: %w", p.ProductID, err)
	}
	if n == 0 {
		return fmt.Errorf("set card security of product %d: %w", p.ProductID, ErrNotFound)
	}
	return nil
}

// AdvanceATC records atc as the highest application transaction counter
// accepted for the card application cardKey (an opaque key such as
// "fingerprint:psn", never a PAN) when it is above the one recorded, and
// reports whether it was. It takes effect with the transaction, so the
// counter moves exactly when the authorization it belongs to commits; a
// concurrent transaction with the same card waits for the row.
func (tx *Tx) AdvanceATC(ctx context.Context, cardKey string, atc uint16) (bool, error) {
	n, err := tx.exec(ctx, `INSERT INTO emv_atc (card_key, atc, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (card_key) DO UPDATE SET atc = excluded.atc, updated_at = excluded.updated_at
		WHERE emv_atc.atc < excluded.atc`, cardKey, int64(atc), micros(tx.now))
	if err != nil {
		return false, fmt.Errorf("advance ATC of card application: %w", err)
	}
	return n == 1, nil
}

// ATC returns the highest application transaction counter accepted for
// cardKey, or ErrNotFound when none was.
func (tx *Tx) ATC(ctx context.Context, cardKey string) (uint16, error) {
	var v int64
	err := tx.queryRow(ctx, "SELECT atc FROM emv_atc WHERE card_key = ?", cardKey).Scan(&v)
	if errors.Is(err, ErrNotFound) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("read ATC of card application: %w", err)
	}
	return uint16(v), nil
}

// UseATC records atc as used by an accepted application cryptogram of the
// card application cardKey (the key of AdvanceATC) and reports whether it
// was unused. Each ATC is used once per card application, whatever the
// order its cryptograms arrive in (migration 0007). Like AdvanceATC it
// takes effect with the transaction; a concurrent transaction using the
// same ATC waits for the row and then sees it used. Callers that also
// call AdvanceATC call it first, so that transactions on one card
// application lock its emv_atc row before any emv_atc_used row.
func (tx *Tx) UseATC(ctx context.Context, cardKey string, atc uint16) (bool, error) {
	n, err := tx.exec(ctx, `INSERT INTO emv_atc_used (card_key, atc, used_at) VALUES (?, ?, ?)
		ON CONFLICT (card_key, atc) DO NOTHING`, cardKey, int64(atc), micros(tx.now))
	if err != nil {
		return false, fmt.Errorf("use ATC of card application: %w", err)
	}
	return n == 1, nil
}
