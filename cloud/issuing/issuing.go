// Package issuing runs the center's card issuing: card products, cardholders
// and their accounts, cards (issued from a product's BIN range or imported
// for test decks), card status changes and prepaid top-ups.
//
// Clear PANs exist only in memory between the caller and the Vault: the
// store keeps the PAN sealed under the token-vault key, its fingerprint and
// its masked form.
package issuing

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
)

// Vault seals PANs under the token-vault key and computes fingerprints in
// the token.
type Vault interface {
	Seal(pan card.PAN) ([]byte, error)
	Open(sealed []byte) (card.PAN, error)
	Fingerprint(pan card.PAN) (string, error)
}

var (
	// ErrInvalid is returned for a product, account or card request that
	// breaks a rule; the message names the rule.
	ErrInvalid = errors.New("issuing: invalid request")
	// ErrBINExhausted is returned when IssueCard found no unused PAN after
	// several tries.
	ErrBINExhausted = errors.New("issuing: no unused PAN found in the BIN range")
	// ErrTransition is returned for a card status change the lifecycle does
	// not allow (a closed card never reopens; a lost or stolen card only
	// closes).
	ErrTransition = errors.New("issuing: status change not allowed")
)

// Issuer issues and manages cards in a store. It is safe for concurrent use
// if its Vault is.
type Issuer struct {
	Store *store.Store
	Vault Vault
	// Rand is the randomness for PAN generation; nil means crypto/rand.
	Rand io.Reader
}

// CreateProduct validates and adds a card product and returns its id. Rules:
// a known kind and currency; BINLow and BINHigh digit strings of equal
// length 6 to 11 with BINLow <= BINHigh; PANLength 13 to 19 and longer than
// the BIN; a credit line only for credit and house products; an overdraft
// only for debit products; allowed merchants only for house products.
func (i *Issuer) CreateProduct(ctx context.Context, p store.Product) (int64, error) {
	if err := validProduct(p); err != nil {
		return 0, fmt.Errorf("create product %q: %w", p.Name, err)
	}
	var id int64
	err := i.Store.Update(ctx, func(tx *store.Tx) error {
		var err error
		id, err = tx.InsertProduct(ctx, p)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create product %q: %w", p.Name, err)
	}
	return id, nil
}

func validProduct(p store.Product) error {
	bad := func(rule string) error { return fmt.Errorf("%s: %w", rule, ErrInvalid) }
	switch {
	case p.Name == "":
		return bad("name is empty")
	case !p.Kind.Valid():
		return bad("kind must be credit, debit, prepaid or house")
	case !ledger.ValidCurrency(p.Currency):
		return bad("currency is not an accepted ISO 4217 numeric code")
	case len(p.BINLow) < 6 || len(p.BINLow) > 11 || len(p.BINHigh) != len(p.BINLow) ||
		!allDigits(p.BINLow) || !allDigits(p.BINHigh) || p.BINLow > p.BINHigh:
		return bad("BIN range must be two digit strings of equal length 6 to 11, low <= high")
	case p.PANLength < 13 || p.PANLength > 19 || p.PANLength <= len(p.BINLow)+1:
		return bad("PAN length must be 13 to 19 and longer than the BIN plus a check digit")
	case p.CreditLine < 0 || p.Overdraft < 0 || p.CreditLine > ledger.MaxAmount || p.Overdraft > ledger.MaxAmount:
		return bad("credit line and overdraft must be 0 to ledger.MaxAmount")
	case p.CreditLine != 0 && p.Kind != store.KindCredit && p.Kind != store.KindHouse:
		return bad("only credit and house products have a credit line")
	case p.Overdraft != 0 && p.Kind != store.KindDebit:
		return bad("only debit products have an overdraft")
	case len(p.AllowedMerchants) != 0 && p.Kind != store.KindHouse:
		return bad("only house products restrict merchants")
	case p.Kind == store.KindHouse && len(p.AllowedMerchants) == 0:
		return bad("a house product needs at least one allowed merchant")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// CreateCardholder adds a cardholder and returns its id.
func (i *Issuer) CreateCardholder(ctx context.Context, name string) (int64, error) {
	if name == "" {
		return 0, fmt.Errorf("create cardholder: name is empty: %w", ErrInvalid)
	}
	var id int64
	err := i.Store.Update(ctx, func(tx *store.Tx) error {
		var err error
		id, err = tx.InsertCardholder(ctx, store.Cardholder{Name: name})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create cardholder: %w", err)
	}
	return id, nil
}

// CreateAccount opens a cardholder account under a product (kind, currency
// and limits from the product) and returns its id.
func (i *Issuer) CreateAccount(ctx context.Context, productID, cardholderID int64) (int64, error) {
	var id int64
	err := i.Store.Update(ctx, func(tx *store.Tx) error {
		p, err := tx.Product(ctx, productID)
		if err != nil {
			return err
		}
		id, err = tx.InsertAccount(ctx, store.Account{Kind: store.AccountKind(p.Kind), Currency: p.Currency,
			CardholderID: cardholderID, ProductID: p.ID, CreditLine: p.CreditLine, Overdraft: p.Overdraft})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create account for product %d: %w", productID, err)
	}
	return id, nil
}

// Issued is a newly issued card. PAN is clear: hand it to card production
// and drop it; it is not stored.
type Issued struct {
	ID     int64
	PAN    card.PAN
	Expiry card.Expiry
}

// IssueCard generates a new, unused, Luhn-valid PAN in the product's BIN
// range and issues it, active, on the account with the given expiry. It is
// Issue with zero IssueOptions.
func (i *Issuer) IssueCard(ctx context.Context, productID, accountID int64, expiry card.Expiry) (Issued, error) {
	return i.Issue(ctx, productID, accountID, expiry, IssueOptions{})
}

func (i *Issuer) generatePAN(p store.Product) (card.PAN, error) {
	r := i.Rand
	if r == nil {
		r = rand.Reader
	}
	low, _ := new(big.Int).SetString(p.BINLow, 10)
	high, _ := new(big.Int).SetString(p.BINHigh, 10)
	span := new(big.Int).Sub(high, low)
	span.Add(span, big.NewInt(1))
	off, err := rand.Int(r, span)
	if err != nil {
		return card.PAN{}, fmt.Errorf("draw BIN: %w", err)
	}
	bin := off.Add(off, low).String()
	var b strings.Builder
	b.WriteString(strings.Repeat("0", len(p.BINLow)-len(bin)))
	b.WriteString(bin)
	for b.Len() < p.PANLength-1 {
		d, err := rand.Int(r, big.NewInt(10))
		if err != nil {
			return card.PAN{}, fmt.Errorf("draw PAN digit: %w", err)
		}
		b.WriteString(strconv.FormatInt(d.Int64(), 10))
	}
	check, err := card.LuhnCheckDigit(b.String())
	if err != nil {
		return card.PAN{}, fmt.Errorf("compute check digit: %w", err)
	}
	b.WriteByte(check)
	return card.ParsePAN(b.String())
}

// ImportCard records an existing PAN (a test deck, a migration) as an
// active card of the product on the account and returns its id. The PAN
// must fall in the product's BIN range and have its length; a PAN already
// known fails with store.ErrDuplicate.
func (i *Issuer) ImportCard(ctx context.Context, productID, accountID int64, pan card.PAN, expiry card.Expiry) (int64, error) {
	nc, err := i.prepare(pan, expiry)
	if err != nil {
		return 0, fmt.Errorf("import card %s: %w", pan.Masked(), err)
	}
	nc.productID, nc.accountID, nc.status = productID, accountID, store.CardActive
	var id int64
	err = i.Store.Update(ctx, func(tx *store.Tx) error {
		var err error
		id, err = insertCard(ctx, tx, nc)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("import card %s: %w", pan.Masked(), err)
	}
	return id, nil
}

// newCard is a card about to be inserted: the token work (fingerprint,
// seal) is done before the store transaction starts.
type newCard struct {
	productID, accountID int64
	pan                  card.PAN
	fingerprint          string
	sealed               []byte
	expiry               card.Expiry
	status               store.CardStatus
	info                 store.CardInfo
	controls             *store.Controls // nil: none stored (defaults)
}

// prepare fingerprints and seals pan outside any transaction.
func (i *Issuer) prepare(pan card.PAN, expiry card.Expiry) (newCard, error) {
	if pan.IsZero() || expiry.IsZero() {
		return newCard{}, fmt.Errorf("PAN and expiry are required: %w", ErrInvalid)
	}
	fp, err := i.Vault.Fingerprint(pan)
	if err != nil {
		return newCard{}, fmt.Errorf("fingerprint: %w", err)
	}
	sealed, err := i.Vault.Seal(pan)
	if err != nil {
		return newCard{}, fmt.Errorf("seal: %w", err)
	}
	return newCard{pan: pan, fingerprint: fp, sealed: sealed, expiry: expiry}, nil
}

// statusTx is what a card status change (changeStatus) needs of the
// caller's store transaction.
type statusTx interface {
	// Now dates the negative-file entry's expiry.
	Now() time.Time
	Card(ctx context.Context, id int64) (store.Card, error)
	CardInfo(ctx context.Context, cardID int64) (store.CardInfo, error)
	SetCardStatus(ctx context.Context, id int64, s store.CardStatus) error
	InsertAudit(ctx context.Context, r store.AuditRecord) (int64, error)
	AddNegativeEntry(ctx context.Context, e store.NegativeEntry) (int64, error)
}

// issueTx is what issuing a card (insertCard and the reissue that may
// close the old card) needs of the caller's store transaction.
type issueTx interface {
	statusTx
	Product(ctx context.Context, id int64) (store.Product, error)
	Account(ctx context.Context, id int64) (store.Account, error)
	CardControls(ctx context.Context, cardID int64) (store.Controls, error)
	InsertCard(ctx context.Context, c store.Card) (int64, error)
	SetCardInfo(ctx context.Context, cardID int64, ci store.CardInfo) error
	PutCardControls(ctx context.Context, c store.Controls) error
}

var _ issueTx = (*store.Tx)(nil)

// insertCard checks nc against its product and account and inserts it with
// its info and controls.
func insertCard(ctx context.Context, tx issueTx, nc newCard) (int64, error) {
	p, err := tx.Product(ctx, nc.productID)
	if err != nil {
		return 0, err
	}
	digits := nc.pan.Digits()
	if len(digits) != p.PANLength || digits[:len(p.BINLow)] < p.BINLow || digits[:len(p.BINHigh)] > p.BINHigh {
		return 0, fmt.Errorf("PAN is outside product %d's BIN range or length: %w", p.ID, ErrInvalid)
	}
	a, err := tx.Account(ctx, nc.accountID)
	if err != nil {
		return 0, err
	}
	if a.ProductID != p.ID {
		return 0, fmt.Errorf("account %d belongs to product %d, not %d: %w", a.ID, a.ProductID, p.ID, ErrInvalid)
	}
	id, err := tx.InsertCard(ctx, store.Card{ProductID: p.ID, AccountID: a.ID, Fingerprint: nc.fingerprint,
		PANSealed: nc.sealed, MaskedPAN: nc.pan.Masked(), Expiry: nc.expiry.String(), Status: nc.status})
	if err != nil {
		return 0, err
	}
	if nc.info != (store.CardInfo{}) {
		if err := tx.SetCardInfo(ctx, id, nc.info); err != nil {
			return 0, err
		}
	}
	if nc.controls != nil {
		k := *nc.controls
		k.CardID = id
		if err := tx.PutCardControls(ctx, k); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// allowed lists the status changes of the card lifecycle.
var allowed = map[store.CardStatus][]store.CardStatus{
	store.CardInactive:  {store.CardActive, store.CardLost, store.CardStolen, store.CardClosed},
	store.CardActive:    {store.CardSuspended, store.CardLost, store.CardStolen, store.CardClosed},
	store.CardSuspended: {store.CardActive, store.CardLost, store.CardStolen, store.CardClosed},
	store.CardLost:      {store.CardClosed},
	store.CardStolen:    {store.CardClosed},
}

// SetStatus changes a card's status (activate, suspend, resume, lost,
// stolen, close) and writes an audit record naming the actor, in one
// transaction with its negative-file entry (see docs/issuing.md): a change
// to suspended, lost, stolen or closed adds the card's fingerprint, a
// resume (suspended to active) removes it. Activating a card that replaces
// another closes the replaced card if it is still active or suspended.
// Setting the current status again changes nothing and succeeds; a change
// the lifecycle does not allow fails with ErrTransition.
func (i *Issuer) SetStatus(ctx context.Context, cardID int64, to store.CardStatus, actor string) error {
	if !to.Valid() {
		return fmt.Errorf("set card %d status: unknown status %q: %w", cardID, to, ErrInvalid)
	}
	err := i.Store.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.Card(ctx, cardID)
		if err != nil {
			return err
		}
		return changeStatus(ctx, tx, c, to, actor)
	})
	if err != nil {
		return fmt.Errorf("set card %d status: %w", cardID, err)
	}
	return nil
}

// changeStatus moves c to status to inside tx with its negative-file entry,
// audit record and, on activation, the closing of the card it replaces.
func changeStatus(ctx context.Context, tx statusTx, c store.Card, to store.CardStatus, actor string) error {
	if c.Status == to {
		return nil
	}
	ok := false
	for _, s := range allowed[c.Status] {
		ok = ok || s == to
	}
	if !ok {
		return fmt.Errorf("%s to %s: %w", c.Status, to, ErrTransition)
	}
	if err := tx.SetCardStatus(ctx, c.ID, to); err != nil {
		return err
	}
	if _, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: "card_status", Actor: actor,
		Detail: fmt.Sprintf("card %d %s: %s -> %s", c.ID, c.MaskedPAN, c.Status, to)}); err != nil {
		return err
	}
	if err := negativeEntry(ctx, tx, c, c.Status, to); err != nil {
		return err
	}
	if c.Status == store.CardInactive && to == store.CardActive {
		info, err := tx.CardInfo(ctx, c.ID)
		if err != nil {
			return err
		}
		if info.ReplacesID != 0 {
			old, err := tx.Card(ctx, info.ReplacesID)
			if err != nil {
				return err
			}
			if old.Status == store.CardActive || old.Status == store.CardSuspended {
				return changeStatus(ctx, tx, old, store.CardClosed, actor)
			}
		}
	}
	return nil
}

// negativeEntry records the negative-file change of a status change from
// -> to, if it has one.
func negativeEntry(ctx context.Context, tx statusTx, c store.Card, from, to store.CardStatus) error {
	e := store.NegativeEntry{Fingerprint: c.Fingerprint, CardID: c.ID, ExpiresAt: entryExpiry(c.Expiry, tx.Now())}
	switch {
	case to == store.CardSuspended || to == store.CardLost || to == store.CardStolen || to == store.CardClosed:
		e.Action, e.Reason = store.NegativeAdd, string(to)
	case from == store.CardSuspended && to == store.CardActive:
		e.Action, e.Reason = store.NegativeRemove, "resumed"
	default:
		return nil
	}
	_, err := tx.AddNegativeEntry(ctx, e)
	return err
}

// entryExpiry is when a negative-file entry for a card expiring YYMM may be
// dropped: the first instant (UTC) after the expiry month. An unreadable
// expiry keeps the entry ten years from now.
func entryExpiry(yymm string, now time.Time) time.Time {
	exp, err := card.ParseExpiry(yymm)
	if err != nil {
		return now.AddDate(10, 0, 0)
	}
	return time.Date(exp.Year(), exp.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// TopUp credits amount to a prepaid or debit account from the issuer's
// funding account in the account's currency and returns the transfer id.
func (i *Issuer) TopUp(ctx context.Context, accountID, amount int64, actor string) (int64, error) {
	if amount <= 0 || amount > ledger.MaxAmount {
		return 0, fmt.Errorf("top up account %d: amount %d: %w", accountID, amount, ErrInvalid)
	}
	var id int64
	err := i.Store.Update(ctx, func(tx *store.Tx) error {
		a, err := tx.Account(ctx, accountID)
		if err != nil {
			return err
		}
		if a.Kind != store.AccountPrepaid && a.Kind != store.AccountDebit {
			return fmt.Errorf("account is %s, not prepaid or debit: %w", a.Kind, ErrInvalid)
		}
		funding, err := ledger.IssuerFunding(ctx, tx, a.Currency)
		if err != nil {
			return err
		}
		id, err = ledger.Post(ctx, tx, ledger.KindTopUp,
			store.Posting{AccountID: funding, Amount: -amount, Currency: a.Currency},
			store.Posting{AccountID: a.ID, Amount: amount, Currency: a.Currency})
		if err != nil {
			return err
		}
		_, err = tx.InsertAudit(ctx, store.AuditRecord{Kind: "topup", Actor: actor,
			Detail: fmt.Sprintf("account %d +%d %s transfer %d", a.ID, amount, a.Currency, id)})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("top up account %d: %w", accountID, err)
	}
	return id, nil
}
