package issuing

import (
	"context"
	"errors"
	"fmt"

	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
)

// IssueOptions shape a new card.
type IssueOptions struct {
	// Virtual issues a card without plastic: it is active at once.
	Virtual bool
	// Inactive issues a physical card inactive: it must be activated
	// (Activate) before it can be used. Not allowed with Virtual.
	Inactive bool
	// Controls, when not nil, are stored as the card's cardholder controls
	// (CardID is ignored); they must pass controls.Validate.
	Controls *store.Controls
}

// Issue generates a new, unused, Luhn-valid PAN in the product's BIN range
// and issues it on the account with the given expiry: inactive when
// o.Inactive, else active; flagged virtual when o.Virtual. The returned
// PAN is clear: hand it to card production and drop it.
func (i *Issuer) Issue(ctx context.Context, productID, accountID int64, expiry card.Expiry, o IssueOptions) (Issued, error) {
	if o.Virtual && o.Inactive {
		return Issued{}, fmt.Errorf("issue card: a virtual card is active at once, not inactive: %w", ErrInvalid)
	}
	if o.Controls != nil {
		if err := controls.Validate(*o.Controls); err != nil {
			return Issued{}, fmt.Errorf("issue card: %w: %w", ErrInvalid, err)
		}
	}
	status := store.CardActive
	if o.Inactive {
		status = store.CardInactive
	}
	iss, err := i.issueNew(ctx, productID, func(ctx context.Context, tx issueTx, nc newCard) (int64, error) {
		nc.productID, nc.accountID, nc.status = productID, accountID, status
		nc.info, nc.controls = store.CardInfo{Virtual: o.Virtual}, o.Controls
		return insertCard(ctx, tx, nc)
	}, expiry)
	if err != nil {
		return Issued{}, fmt.Errorf("issue card: %w", err)
	}
	return iss, nil
}

// issueNew draws PANs in the product's range until insert (run in one
// transaction per draw) does not fail with store.ErrDuplicate.
func (i *Issuer) issueNew(ctx context.Context, productID int64, insert func(context.Context, issueTx, newCard) (int64, error), expiry card.Expiry) (Issued, error) {
	var p store.Product
	if err := i.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		p, err = tx.Product(ctx, productID)
		return err
	}); err != nil {
		return Issued{}, err
	}
	for range 16 {
		pan, err := i.generatePAN(p)
		if err != nil {
			return Issued{}, fmt.Errorf("product %d: %w", productID, err)
		}
		nc, err := i.prepare(pan, expiry)
		if err != nil {
			return Issued{}, fmt.Errorf("card %s: %w", pan.Masked(), err)
		}
		var id int64
		err = i.Store.Update(ctx, func(tx *store.Tx) error {
			var err error
			id, err = insert(ctx, tx, nc)
			return err
		})
		if errors.Is(err, store.ErrDuplicate) {
			continue // the PAN exists already: draw another
		}
		if err != nil {
			return Issued{}, fmt.Errorf("card %s: %w", pan.Masked(), err)
		}
		return Issued{ID: id, PAN: pan, Expiry: expiry}, nil
	}
	return Issued{}, fmt.Errorf("product %d: %w", productID, ErrBINExhausted)
}

// Activate makes an inactive card active (SetStatus to active). If the card
// replaces another that is still active or suspended, that card is closed
// in the same transaction.
func (i *Issuer) Activate(ctx context.Context, cardID int64, actor string) error {
	return i.SetStatus(ctx, cardID, store.CardActive, actor)
}

// ReissueOptions shape a reissue.
type ReissueOptions struct {
	// NewPAN issues a new card with a new PAN (after loss, theft or
	// compromise); otherwise the same card gets a new expiry (renewal).
	NewPAN bool
	// Expiry is the new card's expiry; it must be later than the old one's.
	Expiry card.Expiry
	// CloseOld closes the old card at once (NewPAN only). Otherwise an
	// active or suspended old card stays usable until the new card is
	// activated, and is closed then.
	CloseOld bool
}

// Reissue replaces a card and returns the card now in force.
//
// With o.NewPAN it issues a new PAN in the old card's product on the same
// account, with the old card's controls and a link to the old card; the
// new card is inactive (active at once if the old card is virtual, which
// then closes the old card at once, as does o.CloseOld). Any status but
// closed may be reissued so. The returned PAN is clear, for card
// production.
//
// Without o.NewPAN the card keeps its PAN and gets o.Expiry; its status is
// unchanged, and the old plastic keeps working until its own printed
// expiry. Only inactive, active and suspended cards may be renewed so (a
// lost or stolen PAN must be replaced); the returned Issued has the same
// ID and a zero PAN (the center does not unseal it here).
func (i *Issuer) Reissue(ctx context.Context, cardID int64, o ReissueOptions, actor string) (Issued, error) {
	if o.Expiry.IsZero() {
		return Issued{}, fmt.Errorf("reissue card %d: expiry is required: %w", cardID, ErrInvalid)
	}
	if o.CloseOld && !o.NewPAN {
		return Issued{}, fmt.Errorf("reissue card %d: close_old needs a new PAN: %w", cardID, ErrInvalid)
	}
	var old store.Card
	if err := i.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		old, err = tx.Card(ctx, cardID)
		return err
	}); err != nil {
		return Issued{}, fmt.Errorf("reissue card %d: %w", cardID, err)
	}
	if !o.NewPAN {
		return i.renew(ctx, cardID, o.Expiry, actor)
	}
	iss, err := i.issueNew(ctx, old.ProductID, func(ctx context.Context, tx issueTx, nc newCard) (int64, error) {
		old, err := tx.Card(ctx, cardID) // re-read inside the transaction
		if err != nil {
			return 0, err
		}
		if old.Status == store.CardClosed {
			return 0, fmt.Errorf("closed card cannot be reissued: %w", ErrTransition)
		}
		if err := laterExpiry(old.Expiry, o.Expiry); err != nil {
			return 0, err
		}
		info, err := tx.CardInfo(ctx, old.ID)
		if err != nil {
			return 0, err
		}
		k, err := tx.CardControls(ctx, old.ID)
		if err != nil {
			return 0, err
		}
		nc.productID, nc.accountID, nc.controls = old.ProductID, old.AccountID, &k
		nc.info = store.CardInfo{Virtual: info.Virtual, ReplacesID: old.ID}
		nc.status = store.CardInactive
		if info.Virtual {
			nc.status = store.CardActive
		}
		id, err := insertCard(ctx, tx, nc)
		if err != nil {
			return 0, err
		}
		if _, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: "card_reissue", Actor: actor,
			Detail: fmt.Sprintf("card %d %s reissued as card %d %s", old.ID, old.MaskedPAN, id, nc.pan.Masked())}); err != nil {
			return 0, err
		}
		if (o.CloseOld || info.Virtual) && old.Status != store.CardLost && old.Status != store.CardStolen {
			if err := changeStatus(ctx, tx, old, store.CardClosed, actor); err != nil {
				return 0, err
			}
		}
		return id, nil
	}, o.Expiry)
	if err != nil {
		return Issued{}, fmt.Errorf("reissue card %d: %w", cardID, err)
	}
	return iss, nil
}

// renew gives a card a later expiry, keeping its PAN.
func (i *Issuer) renew(ctx context.Context, cardID int64, expiry card.Expiry, actor string) (Issued, error) {
	err := i.Store.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.Card(ctx, cardID)
		if err != nil {
			return err
		}
		switch c.Status {
		case store.CardInactive, store.CardActive, store.CardSuspended:
		default:
			return fmt.Errorf("a %s card keeps its PAN only if inactive, active or suspended: %w", c.Status, ErrTransition)
		}
		if err := laterExpiry(c.Expiry, expiry); err != nil {
			return err
		}
		if err := tx.SetCardExpiry(ctx, c.ID, expiry.String()); err != nil {
			return err
		}
		_, err = tx.InsertAudit(ctx, store.AuditRecord{Kind: "card_reissue", Actor: actor,
			Detail: fmt.Sprintf("card %d %s renewed: expiry %s -> %s", c.ID, c.MaskedPAN, c.Expiry, expiry)})
		return err
	})
	if err != nil {
		return Issued{}, fmt.Errorf("reissue card %d: %w", cardID, err)
	}
	return Issued{ID: cardID, Expiry: expiry}, nil
}

// laterExpiry refuses a new expiry that is not after the old one.
func laterExpiry(old string, next card.Expiry) error {
	o, err := card.ParseExpiry(old)
	if err != nil {
		return nil // an unreadable stored expiry is replaced by any valid one
	}
	if next.Year()*12+int(next.Month()) <= o.Year()*12+int(o.Month()) {
		return fmt.Errorf("new expiry %s is not after %s: %w", next, old, ErrInvalid)
	}
	return nil
}

// SetControls validates k and stores it as the controls of card k.CardID,
// with an audit record naming the actor. An unknown card is
// store.ErrNotFound.
func (i *Issuer) SetControls(ctx context.Context, k store.Controls, actor string) error {
	if err := controls.Validate(k); err != nil {
		return fmt.Errorf("set controls of card %d: %w: %w", k.CardID, ErrInvalid, err)
	}
	err := i.Store.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.Card(ctx, k.CardID)
		if err != nil {
			return err
		}
		if err := tx.PutCardControls(ctx, k); err != nil {
			return err
		}
		_, err = tx.InsertAudit(ctx, store.AuditRecord{Kind: "card_controls", Actor: actor,
			Detail: fmt.Sprintf("card %d %s: locked=%t per_txn=%d daily=%d mccs=%d overseas=%t ecommerce=%t home=%s",
				c.ID, c.MaskedPAN, k.Locked, k.PerTxnLimit, k.DailyLimit, len(k.BlockedMCCs), k.OverseasAllowed,
				k.ECommerceAllowed, k.HomeCountry)})
		return err
	})
	if err != nil {
		return fmt.Errorf("set controls of card %d: %w", k.CardID, err)
	}
	return nil
}
