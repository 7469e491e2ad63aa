package authz

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/protocol/iso93"
)

// Issuer PIN verification (Visa PVV; docs/keys.md, "Issuer PIN
// verification").
//
// A request carries the terminal's ISO 9564 format 4 PIN block in DE 125,
// enciphered under the AES-128 DUKPT PIN key of the same KSN as its DE 120
// card-data block. When the card's product names a PVK (card_products.
// pvk_label) and the card has a PVV (card_pins), the switch verifies the
// PIN in the token before the store transaction (no lock or transaction is
// held across the token call), then, inside the authorization's
// transaction: a right PIN resets the card's wrong-PIN count; a wrong one
// adds to it and declines 117, or 106 once the count reaches
// PINConfig.MaxTries; a card already at MaxTries is declined 106 without a
// token call until the issuer resets the count (store.Tx.ResetPINTries or
// a new PVV). Requests without DE 125, and cards whose product or card has
// no PIN data, are not PIN-checked here.

// PINVerifier is the token side of issuer PIN verification. *hsm.Token
// satisfies it. Implementations are safe for concurrent use.
type PINVerifier interface {
	// VerifyPVVFromDUKPTPINBlock returns nil when the PIN in pinBlock
	// matches pvv, an error wrapping hsm.ErrPIN when it does not, one
	// wrapping hsm.ErrDecrypt when the block does not decipher to a
	// format 4 PIN field, and any other error for a fault.
	VerifyPVVFromDUKPTPINBlock(bdkLabel string, ksn dukpt.AESKSN, pinBlock []byte, pan, pvkLabel string, pvki int, pvv string) error
}

// DefaultPINBDKLabel is the AES BDK label of PIN blocks when
// PINConfig.BDKLabel is empty (the same default as the card-data vault's).
const DefaultPINBDKLabel = "bdk"

// DefaultMaxPINTries is the number of consecutive wrong PINs after which a
// card's PIN is blocked, when PINConfig.MaxTries is zero.
const DefaultMaxPINTries = 3

// PINConfig configures issuer PIN verification of a Switch.
type PINConfig struct {
	// Verifier computes in the token. Nil makes a PIN request for a card
	// whose product names a PVK a fault (909): PINs are never skipped.
	Verifier PINVerifier
	// BDKLabel is the AES BDK the terminals' PIN keys derive from; ""
	// means DefaultPINBDKLabel.
	BDKLabel string
	// MaxTries is the number of consecutive wrong PINs that blocks the
	// PIN; zero means DefaultMaxPINTries.
	MaxTries int
}

func (c PINConfig) maxTries() int {
	if c.MaxTries > 0 {
		return c.MaxTries
	}
	return DefaultMaxPINTries
}

// pinOutcome is the result of the PIN check before the transaction.
type pinOutcome int

const (
	pinValid pinOutcome = iota + 1
	pinWrong
	pinBlocked   // tries already at the maximum: not verified
	pinMalformed // block does not decipher to a PIN field, or not AES DUKPT
)

// pinVerdict is what verifyPIN found for one request's card.
type pinVerdict struct {
	cardID  int64
	outcome pinOutcome
}

// verifyPIN runs the token PIN check of a request before its transaction.
// It returns nil when there is nothing to check. Errors are faults.
func (s *Switch) verifyPIN(ctx context.Context, r Request, o opened) (*pinVerdict, error) {
	if len(r.PINBlock) == 0 || o.code != "" {
		return nil, nil
	}
	var (
		c     store.Card
		label string
		pin   store.CardPIN
	)
	err := s.Store.Read(ctx, func(tx *store.Tx) error {
		var err error
		if c, err = tx.CardByFingerprint(ctx, o.fp); err != nil {
			return err
		}
		if label, err = tx.ProductPVKLabel(ctx, c.ProductID); err != nil || label == "" {
			return err
		}
		pin, err = tx.CardPIN(ctx, c.ID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && label == "") {
		// No card (the transaction declines it), no PVK for the product
		// or no PVV for the card: nothing to verify here.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read PIN data of the card: %w", err)
	}
	chk := &pinVerdict{cardID: c.ID}
	if pin.Tries >= s.PIN.maxTries() {
		chk.outcome = pinBlocked
		return chk, nil
	}
	ksn, ok := pinKSN(o)
	if !ok {
		chk.outcome = pinMalformed
		return chk, nil
	}
	if s.PIN.Verifier == nil {
		return nil, fmt.Errorf("PIN check for card %d: no PIN verifier configured", c.ID)
	}
	bdk := s.PIN.BDKLabel
	if bdk == "" {
		bdk = DefaultPINBDKLabel
	}
	err = s.PIN.Verifier.VerifyPVVFromDUKPTPINBlock(bdk, ksn, r.PINBlock, o.card.PAN.Digits(), label, pin.PVKI, pin.PVV)
	switch {
	case err == nil:
		chk.outcome = pinValid
	case errors.Is(err, hsm.ErrPIN):
		chk.outcome = pinWrong
	case errors.Is(err, hsm.ErrDecrypt):
		chk.outcome = pinMalformed
	default:
		return nil, fmt.Errorf("PIN check for card %d: %w", c.ID, err)
	}
	return chk, nil
}

// pinKSN rebuilds the AES KSN the card-data block was decrypted under (the
// PIN block shares it) from the device id (Initial Key ID in hex) and the
// counter; ok is false for a TDES DUKPT device, whose PIN blocks are not
// served.
func pinKSN(o opened) (dukpt.AESKSN, bool) {
	id, err := hex.DecodeString(o.device)
	if err != nil || len(id) != 8 || o.counter > 0xFFFFFFFF {
		return dukpt.AESKSN{}, false
	}
	return dukpt.NewAESKSN([8]byte(id), uint32(o.counter)), true
}

// pinVerifyCheck verifies the PIN block in the token before the
// transaction (verifyPIN); pinCheck applies the verdict inside it.
var pinVerifyCheck = check{name: "pin verify", phase: beforeTx,
	run: func(ctx context.Context, st *auth) (decision, error) {
		chk, err := st.s.verifyPIN(ctx, st.r, st.o)
		st.pin = chk
		return pass, err
	}}

// pinCheck applies the PIN outcome to the card inside the authorization's
// transaction: it moves the wrong-PIN count and declines 117 wrong PIN
// (pin_incorrect), 106 tries exceeded (pin_tries_exceeded) or 904 PIN
// block that does not decipher (pin_block_invalid); a right PIN resets
// the count.
var pinCheck = check{name: "pin", phase: inTx,
	codes: []iso93.ActionCode{iso93.ActionFormatError, iso93.ActionPINTriesExceeded, iso93.ActionIncorrectPIN},
	run: func(ctx context.Context, st *auth) (decision, error) {
		return st.s.checkPIN(ctx, st.tx, st.card, st.pin)
	}}

// checkPIN is pinCheck's decision for card c and the outcome chk.
func (s *Switch) checkPIN(ctx context.Context, tx *store.Tx, c store.Card, chk *pinVerdict) (decision, error) {
	if chk == nil {
		return pass, nil
	}
	if chk.cardID != c.ID {
		return pass, fmt.Errorf("card %d changed during the authorization", c.ID)
	}
	no := func(code iso93.ActionCode, kind, reason string) (decision, error) {
		return declineOf(code, kind, "card "+strconv.FormatInt(c.ID, 10)+": "+reason), nil
	}
	maxTries := s.PIN.maxTries()
	switch chk.outcome {
	case pinMalformed:
		return no(iso93.ActionFormatError, "pin_block_invalid", "PIN block does not decipher to a format 4 PIN field under the AES DUKPT PIN key")
	case pinBlocked:
		return no(iso93.ActionPINTriesExceeded, "pin_tries_exceeded", "PIN blocked after "+strconv.Itoa(maxTries)+" wrong PINs")
	case pinWrong:
		tries, err := tx.AddPINTry(ctx, c.ID)
		if err != nil {
			return pass, err
		}
		if tries >= maxTries {
			return no(iso93.ActionPINTriesExceeded, "pin_tries_exceeded", "wrong PIN "+strconv.Itoa(tries)+" of "+strconv.Itoa(maxTries)+": PIN blocked")
		}
		return no(iso93.ActionIncorrectPIN, "pin_incorrect", "wrong PIN "+strconv.Itoa(tries)+" of "+strconv.Itoa(maxTries))
	case pinValid:
		// Another request may have used the last try since the check.
		p, err := tx.CardPIN(ctx, c.ID)
		if err != nil {
			return pass, err
		}
		if p.Tries >= maxTries {
			return no(iso93.ActionPINTriesExceeded, "pin_tries_exceeded", "PIN blocked after "+strconv.Itoa(maxTries)+" wrong PINs")
		}
		return pass, tx.ResetPINTries(ctx, c.ID)
	}
	return pass, fmt.Errorf("card %d: unknown PIN outcome %d", c.ID, chk.outcome)
}
