package store

import (
	"context"
	"errors"
	"fmt"
)

// CardPIN is a card's issuer PIN verification data (table card_pins,
// migration 0006): the Visa PIN verification value, the PIN verification
// key index it was made with, and the count of consecutive wrong PINs. PVV
// is card security data: never log it.
type CardPIN struct {
	CardID int64
	PVKI   int
	PVV    string
	Tries  int
}

// ProductPVKLabel returns the token label of the product's PIN
// verification key ("" when its PINs are not verified), or ErrNotFound for
// an unknown product.
func (tx *Tx) ProductPVKLabel(ctx context.Context, productID int64) (string, error) {
	var label string
	err := tx.queryRow(ctx, `SELECT pvk_label FROM card_products WHERE id = ?`, productID).Scan(&label)
	if err != nil {
		return "", fmt.Errorf("read PVK label of product %d: %w", productID, err)
	}
	return label, nil
}

// SetProductPVKLabel sets the token label of the product's PIN
// verification key ("" turns PIN verification off), or returns ErrNotFound
// for an unknown product.
func (tx *Tx) SetProductPVKLabel(ctx context.Context, productID int64, label string) error {
	n, err := tx.exec(ctx, `UPDATE card_products SET pvk_label = ? WHERE id = ?`, label, productID)
	if err != nil {
		return fmt.Errorf("set PVK label of product %d: %w", productID, err)
	}
	if n == 0 {
		return fmt.Errorf("set PVK label of product %d: %w", productID, ErrNotFound)
	}
	return nil
}

// CardPIN returns the card's PIN verification data, or ErrNotFound when
// the card has none.
func (tx *Tx) CardPIN(ctx context.Context, cardID int64) (CardPIN, error) {
	p := CardPIN{CardID: cardID}
	var pvki, tries int64
	err := tx.queryRow(ctx, `SELECT pvki, pvv, tries FROM card_pins WHERE card_id = ?`, cardID).Scan(&pvki, &p.PVV, &tries)
	if errors.Is(err, ErrNotFound) {
		return CardPIN{}, err
	}
	if err != nil {
		return CardPIN{}, fmt.Errorf("read PIN data of card %d: %w", cardID, err)
	}
	p.PVKI, p.Tries = int(pvki), int(tries)
	return p, nil
}

// SetCardPVV stores the card's PVV (4 digits) and PVKI (0 to 9), replacing
// any earlier ones, and resets its wrong-PIN count: a PIN change or
// reissue. It refuses malformed values; the error never carries the PVV.
func (tx *Tx) SetCardPVV(ctx context.Context, cardID int64, pvki int, pvv string) error {
	if pvki < 0 || pvki > 9 {
		return fmt.Errorf("set PVV of card %d: PVKI %d: want 0 to 9", cardID, pvki)
	}
	if len(pvv) != 4 || !isPVVDigits(pvv) {
		return fmt.Errorf("set PVV of card %d: PVV must be 4 digits", cardID)
	}
	_, err := tx.exec(ctx, `INSERT INTO card_pins (card_id, pvki, pvv, tries, updated_at) VALUES (?, ?, ?, 0, ?)
		ON CONFLICT (card_id) DO UPDATE SET pvki = excluded.pvki, pvv = excluded.pvv, tries = 0, updated_at = excluded.updated_at`,
		cardID, int64(pvki), pvv, micros(tx.now))
	if err != nil {
		return fmt.Errorf("set PVV of card %d: %w", cardID, err)
	}
	return nil
}

// AddPINTry counts one more wrong PIN for the card and returns the new
// count, or ErrNotFound when the card has no PIN data. It takes effect
// with the transaction; a concurrent transaction on the same card waits
// for the row, so no wrong PIN goes uncounted.
func (tx *Tx) AddPINTry(ctx context.Context, cardID int64) (int, error) {
	n, err := tx.exec(ctx, `UPDATE card_pins SET tries = tries + 1, updated_at = ? WHERE card_id = ?`, micros(tx.now), cardID)
	if err != nil {
		return 0, fmt.Errorf("count wrong PIN of card %d: %w", cardID, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("count wrong PIN of card %d: %w", cardID, ErrNotFound)
	}
	p, err := tx.CardPIN(ctx, cardID)
	if err != nil {
		return 0, fmt.Errorf("count wrong PIN of card %d: %w", cardID, err)
	}
	return p.Tries, nil
}

// ResetPINTries sets the card's wrong-PIN count to zero (a right PIN, or
// an issuer unblocking the PIN). A card without PIN data is left as is.
func (tx *Tx) ResetPINTries(ctx context.Context, cardID int64) error {
	if _, err := tx.exec(ctx, `UPDATE card_pins SET tries = 0, updated_at = ? WHERE card_id = ? AND tries <> 0`, micros(tx.now), cardID); err != nil {
		return fmt.Errorf("reset wrong PIN count of card %d: %w", cardID, err)
	}
	return nil
}

func isPVVDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
