package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CardInactive is the status of a card issued but not yet activated
// (migration 0003). Authorizations on it are declined 125; activation
// makes it active. CardStatus.Valid does not list it, because no status
// change may lead back to it: a card is inactive only from issuance.
const CardInactive CardStatus = "inactive"

// DefaultCountry is the ISO 3166-1 numeric country of merchants and card
// homes when none is given: Japan.
const DefaultCountry = "392"

// Controls are a card's cardholder controls (table card_controls). A card
// without a row has DefaultControls. Limits are minor units of the card's
// currency; zero means no limit.
type Controls struct {
	CardID int64
	// Locked is the cardholder's own lock, distinct from the issuer's
	// card status.
	Locked      bool
	PerTxnLimit int64
	DailyLimit  int64
	// BlockedMCCs are merchant category codes (4 digits) refused, sorted.
	BlockedMCCs      []string
	OverseasAllowed  bool
	ECommerceAllowed bool
	// HomeCountry is the card's ISO 3166-1 numeric home country.
	HomeCountry string
	UpdatedAt   time.Time
}

// DefaultControls are the controls of a card that has none stored:
// unlocked, no limits, nothing blocked, overseas and e-commerce allowed,
// home country DefaultCountry.
func DefaultControls(cardID int64) Controls {
	return Controls{CardID: cardID, OverseasAllowed: true, ECommerceAllowed: true, HomeCountry: DefaultCountry}
}

// CardControls returns the card's controls, or DefaultControls when none
// are stored (also for an unknown card id).
func (tx *Tx) CardControls(ctx context.Context, cardID int64) (Controls, error) {
	if k, ok := tx.pre.takeControls(cardID); ok {
		return k, nil
	}
	c := Controls{CardID: cardID}
	var mccs string
	var at int64
	err := tx.queryRow(ctx, `SELECT locked, per_txn_limit, daily_limit, blocked_mccs, overseas_allowed,
		ecommerce_allowed, home_country, updated_at FROM card_controls WHERE card_id = ?`, cardID).
		Scan(&c.Locked, &c.PerTxnLimit, &c.DailyLimit, &mccs, &c.OverseasAllowed, &c.ECommerceAllowed, &c.HomeCountry, &at)
	if errors.Is(err, ErrNotFound) {
		return DefaultControls(cardID), nil
	}
	if err != nil {
		return Controls{}, fmt.Errorf("read controls of card %d: %w", cardID, err)
	}
	if mccs != "" {
		c.BlockedMCCs = strings.Split(mccs, ",")
	}
	c.UpdatedAt = fromMicros(at)
	return c, nil
}

// PutCardControls stores c as the controls of card c.CardID, replacing
// any stored ones. It does not validate values (package controls does);
// an unknown card fails with ErrReference.
func (tx *Tx) PutCardControls(ctx context.Context, c Controls) error {
	for _, m := range c.BlockedMCCs {
		if strings.Contains(m, ",") {
			return fmt.Errorf("store controls of card %d: MCC contains a comma", c.CardID)
		}
	}
	_, err := tx.exec(ctx, `INSERT INTO card_controls (card_id, locked, per_txn_limit, daily_limit, blocked_mccs,
		overseas_allowed, ecommerce_allowed, home_country, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (card_id) DO UPDATE SET locked = excluded.locked, per_txn_limit = excluded.per_txn_limit,
		daily_limit = excluded.daily_limit, blocked_mccs = excluded.blocked_mccs,
		overseas_allowed = excluded.overseas_allowed, ecommerce_allowed = excluded.ecommerce_allowed,
		home_country = excluded.home_country, updated_at = excluded.updated_at`,
		c.CardID, c.Locked, c.PerTxnLimit, c.DailyLimit, strings.Join(c.BlockedMCCs, ","), c.OverseasAllowed,
		c.ECommerceAllowed, c.HomeCountry, micros(tx.now))
	if err != nil {
		return fmt.Errorf("store controls of card %d: %w", c.CardID, err)
	}
	return nil
}

// ApprovedTotal returns the sum of the amounts of the card's approved
// authorizations that still stand (status held or captured: an 1100 whose
// hold is open or was completed, a 1200, an offline advice; not declined,
// not reversed, and not the completion advice rows, whose original already
// counts) recorded at or after from and before to.
//
// It reads without locking: callers that must not let two transactions
// both pass a limit lock the card's account (LockAccount) first, so that
// on PostgreSQL (READ COMMITTED) this statement sees every authorization
// committed by a transaction that held the lock before.
func (tx *Tx) ApprovedTotal(ctx context.Context, cardID int64, from, to time.Time) (int64, error) {
	if sum, ok := tx.pre.takeTotal(cardID, from, to); ok {
		return sum, nil
	}
	var sum int64
	err := tx.queryRow(ctx, `SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM authorizations
		WHERE card_id = ? AND created_at >= ? AND created_at < ? AND status IN ('held', 'captured')`,
		cardID, micros(from), micros(to)).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum approved amounts of card %d: %w", cardID, err)
	}
	return sum, nil
}

// MerchantCountry returns the merchant's ISO 3166-1 numeric country, or
// ErrNotFound.
func (tx *Tx) MerchantCountry(ctx context.Context, merchantID string) (string, error) {
	if c, ok := tx.pre.takeCountry(merchantID); ok {
		return c, nil
	}
	var c string
	if err := tx.queryRow(ctx, "SELECT country FROM merchants WHERE id = ?", merchantID).Scan(&c); err != nil {
		return "", fmt.Errorf("read country of merchant %q: %w", merchantID, err)
	}
	return c, nil
}

// SetMerchantCountry sets the merchant's country; an unknown merchant
// fails with ErrNotFound.
func (tx *Tx) SetMerchantCountry(ctx context.Context, merchantID, country string) error {
	n, err := tx.exec(ctx, "UPDATE merchants SET country = ? WHERE id = ?", country, merchantID)
	if err != nil {
		return fmt.Errorf("set country of merchant %q: %w", merchantID, err)
	}
	if n == 0 {
		return fmt.Errorf("set country of merchant %q: %w", merchantID, ErrNotFound)
	}
	return nil
}

// Merchants returns the merchants, ordered by id: all of them when
// headOffice is "", else the merchant headOffice and those whose head
// office it is.
func (tx *Tx) Merchants(ctx context.Context, headOffice string) ([]Merchant, error) {
	rows, err := tx.query(ctx, `SELECT id, name, head_office_id, created_at FROM merchants
		WHERE CAST(? AS TEXT) = '' OR id = ? OR head_office_id = ? ORDER BY id`, headOffice, headOffice, headOffice)
	if err != nil {
		return nil, fmt.Errorf("list merchants: %w", err)
	}
	defer rows.Close()
	var out []Merchant
	for rows.Next() {
		var m Merchant
		var head sql.NullString
		var at int64
		if err := rows.Scan(&m.ID, &m.Name, &head, &at); err != nil {
			return nil, fmt.Errorf("list merchants: %w", classify(err))
		}
		m.HeadOfficeID, m.CreatedAt = head.String, fromMicros(at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list merchants: %w", classify(err))
	}
	return out, nil
}

// Terminals returns the merchant's terminals, ordered by id.
func (tx *Tx) Terminals(ctx context.Context, merchantID string) ([]Terminal, error) {
	rows, err := tx.query(ctx, `SELECT id, merchant_id, gateway_id, mcc, currency, created_at FROM terminals
		WHERE merchant_id = ? ORDER BY id`, merchantID)
	if err != nil {
		return nil, fmt.Errorf("list terminals of merchant %q: %w", merchantID, err)
	}
	defer rows.Close()
	var out []Terminal
	for rows.Next() {
		var t Terminal
		var at int64
		if err := rows.Scan(&t.ID, &t.MerchantID, &t.GatewayID, &t.MCC, &t.Currency, &at); err != nil {
			return nil, fmt.Errorf("list terminals of merchant %q: %w", merchantID, classify(err))
		}
		t.CreatedAt = fromMicros(at)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list terminals of merchant %q: %w", merchantID, classify(err))
	}
	return out, nil
}

// CardInfo is what migration 0003 adds to a card: whether it is virtual
// (no plastic; issued active) and which card it replaces (a reissue with a
// new PAN), zero for none.
type CardInfo struct {
	Virtual    bool
	ReplacesID int64
}

// CardInfo returns the card's virtual flag and the card it replaces, or
// ErrNotFound.
func (tx *Tx) CardInfo(ctx context.Context, cardID int64) (CardInfo, error) {
	var ci CardInfo
	var rep sql.NullInt64
	if err := tx.queryRow(ctx, "SELECT is_virtual, replaces_id FROM cards WHERE id = ?", cardID).Scan(&ci.Virtual, &rep); err != nil {
		return CardInfo{}, fmt.Errorf("read card %d: %w", cardID, err)
	}
	ci.ReplacesID = rep.Int64
	return ci, nil
}

// SetCardInfo stores the card's virtual flag and the card it replaces.
func (tx *Tx) SetCardInfo(ctx context.Context, cardID int64, ci CardInfo) error {
	n, err := tx.exec(ctx, "UPDATE cards SET is_virtual = ?, replaces_id = ? WHERE id = ?", ci.Virtual, nullInt(ci.ReplacesID), cardID)
	if err != nil {
		return fmt.Errorf("set card %d info: %w", cardID, err)
	}
	if n == 0 {
		return fmt.Errorf("set card %d info: %w", cardID, ErrNotFound)
	}
	return nil
}

// SetCardExpiry changes a card's expiry (YYMM); used by a same-PAN
// reissue.
func (tx *Tx) SetCardExpiry(ctx context.Context, cardID int64, expiry string) error {
	n, err := tx.exec(ctx, "UPDATE cards SET expiry = ? WHERE id = ?", expiry, cardID)
	if err != nil {
		return fmt.Errorf("set card %d expiry: %w", cardID, err)
	}
	if n == 0 {
		return fmt.Errorf("set card %d expiry: %w", cardID, ErrNotFound)
	}
	return nil
}

// ReplacementOf returns the newest card that replaces cardID, or
// ErrNotFound.
func (tx *Tx) ReplacementOf(ctx context.Context, cardID int64) (Card, error) {
	c, err := scanCard(tx.queryRow(ctx, "SELECT "+cardCols+" FROM cards WHERE replaces_id = ? ORDER BY id DESC LIMIT 1", cardID))
	if err != nil {
		return Card{}, fmt.Errorf("read replacement of card %d: %w", cardID, err)
	}
	return c, nil
}

// CardFilter selects cards for Cards: those of AccountID (zero: any), with
// ids above AfterID, at most Limit of them (1 to 1000).
type CardFilter struct {
	AccountID int64
	AfterID   int64
	Limit     int
}

// Cards returns the cards f selects, ordered by id.
func (tx *Tx) Cards(ctx context.Context, f CardFilter) ([]Card, error) {
	if f.Limit < 1 || f.Limit > 1000 {
		return nil, fmt.Errorf("list cards: limit %d outside 1 to 1000", f.Limit)
	}
	rows, err := tx.query(ctx, "SELECT "+cardCols+` FROM cards WHERE (? = 0 OR account_id = ?) AND id > ?
		ORDER BY id LIMIT ?`, f.AccountID, f.AccountID, f.AfterID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list cards: %w", err)
	}
	defer rows.Close()
	var out []Card
	for rows.Next() {
		c, err := scanCard(rows)
		if err != nil {
			return nil, fmt.Errorf("list cards: %w", classify(err))
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list cards: %w", classify(err))
	}
	return out, nil
}

// OpenHolds returns the account's open holds, oldest first.
func (tx *Tx) OpenHolds(ctx context.Context, accountID int64) ([]Hold, error) {
	rows, err := tx.query(ctx, "SELECT "+holdCols+" FROM holds WHERE account_id = ? AND status = 'open' ORDER BY id", accountID)
	if err != nil {
		return nil, fmt.Errorf("list open holds of account %d: %w", accountID, err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, fmt.Errorf("list open holds of account %d: %w", accountID, classify(err))
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list open holds of account %d: %w", accountID, classify(err))
	}
	return out, nil
}

// AuthFilter selects authorizations for Authorizations. Zero fields do not
// filter. Scope, when set, keeps only terminals of that merchant and of the
// merchants whose head office it is. From is inclusive, To exclusive
// (recording time). BeforeID pages backwards: only ids below it. Limit is 1
// to 1000.
type AuthFilter struct {
	TerminalID string
	Scope      string
	From, To   time.Time
	BeforeID   int64
	Limit      int
}

// Authorizations returns the authorizations f selects, newest first.
func (tx *Tx) Authorizations(ctx context.Context, f AuthFilter) ([]Authorization, error) {
	if f.Limit < 1 || f.Limit > 1000 {
		return nil, fmt.Errorf("list authorizations: limit %d outside 1 to 1000", f.Limit)
	}
	var from, to int64 = 0, 1<<63 - 1
	if !f.From.IsZero() {
		from = micros(f.From)
	}
	if !f.To.IsZero() {
		to = micros(f.To)
	}
	before := int64(1<<63 - 1)
	if f.BeforeID > 0 {
		before = f.BeforeID
	}
	rows, err := tx.query(ctx, "SELECT "+authCols+` FROM authorizations
		WHERE (CAST(? AS TEXT) = '' OR terminal_id = ?)
		  AND (CAST(? AS TEXT) = '' OR terminal_id IN (SELECT t.id FROM terminals t JOIN merchants m ON m.id = t.merchant_id
		                                       WHERE m.id = ? OR m.head_office_id = ?))
		  AND created_at >= ? AND created_at < ? AND id < ?
		ORDER BY id DESC LIMIT ?`,
		f.TerminalID, f.TerminalID, f.Scope, f.Scope, f.Scope, from, to, before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list authorizations: %w", err)
	}
	defer rows.Close()
	var out []Authorization
	for rows.Next() {
		a, err := scanAuth(rows)
		if err != nil {
			return nil, fmt.Errorf("list authorizations: %w", classify(err))
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list authorizations: %w", classify(err))
	}
	return out, nil
}

// NegativeAction says whether a negative-file entry puts a fingerprint on
// the file or takes it off.
type NegativeAction string

// Negative-file actions.
const (
	NegativeAdd    NegativeAction = "add"
	NegativeRemove NegativeAction = "remove"
)

// NegativeEntry is one change of the negative file: from Version on, the
// card with Fingerprint is blocked (Add, for Reason) or no longer blocked
// (Remove). ExpiresAt is when the entry may be dropped (the end of the
// card's expiry month). CardID is the center's card; it never leaves the
// center.
type NegativeEntry struct {
	Version     int64
	Fingerprint string
	Action      NegativeAction
	Reason      string
	CardID      int64
	ExpiresAt   time.Time
	CreatedAt   time.Time
}

// AddNegativeEntry appends e to the negative file and returns its version,
// one above the highest version committed before. The version counter row
// stays locked until the transaction ends, so versions are assigned in
// commit order: a reader that has seen version v and later asks for
// entries above v misses none.
func (tx *Tx) AddNegativeEntry(ctx context.Context, e NegativeEntry) (int64, error) {
	if e.Action != NegativeAdd && e.Action != NegativeRemove {
		return 0, fmt.Errorf("add negative-file entry: unknown action %q", e.Action)
	}
	var v int64
	if err := tx.queryRow(ctx, "UPDATE negative_file_version SET version = version + 1 WHERE id = 1 RETURNING version").Scan(&v); err != nil {
		return 0, fmt.Errorf("advance negative-file version: %w", err)
	}
	_, err := tx.exec(ctx, `INSERT INTO negative_file (version, fingerprint, action, reason, card_id, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, v, e.Fingerprint, string(e.Action), e.Reason, nullInt(e.CardID),
		micros(e.ExpiresAt), micros(orNow(e.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("add negative-file entry for card %d: %w", e.CardID, err)
	}
	return v, nil
}

// NegativeFileVersion returns the negative file's current version (0 when
// it has no entries).
func (tx *Tx) NegativeFileVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := tx.queryRow(ctx, "SELECT version FROM negative_file_version WHERE id = 1").Scan(&v); err != nil {
		return 0, fmt.Errorf("read negative-file version: %w", err)
	}
	return v, nil
}

// NegativeEntries returns up to limit entries with versions above since,
// in version order.
func (tx *Tx) NegativeEntries(ctx context.Context, since int64, limit int) ([]NegativeEntry, error) {
	rows, err := tx.query(ctx, `SELECT version, fingerprint, action, reason, card_id, expires_at, created_at
		FROM negative_file WHERE version > ? ORDER BY version LIMIT ?`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("list negative-file entries: %w", err)
	}
	defer rows.Close()
	var out []NegativeEntry
	for rows.Next() {
		var e NegativeEntry
		var action string
		var card sql.NullInt64
		var exp, at int64
		if err := rows.Scan(&e.Version, &e.Fingerprint, &action, &e.Reason, &card, &exp, &at); err != nil {
			return nil, fmt.Errorf("list negative-file entries: %w", classify(err))
		}
		e.Action, e.CardID, e.ExpiresAt, e.CreatedAt = NegativeAction(action), card.Int64, fromMicros(exp), fromMicros(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list negative-file entries: %w", classify(err))
	}
	return out, nil
}

// APIRole is what a REST API key may do.
type APIRole string

// API roles.
const (
	RoleAdmin      APIRole = "admin"       // everything
	RoleHeadOffice APIRole = "head_office" // its merchant and that merchant's branches
)

// APIKey is a stored REST API key. Only Hash (hex SHA-256 of the key) is
// kept; MerchantID is set for RoleHeadOffice only.
type APIKey struct {
	ID         int64
	Hash       string
	Role       APIRole
	MerchantID string
	CreatedAt  time.Time
}

// InsertAPIKey stores an API key and returns its id.
func (tx *Tx) InsertAPIKey(ctx context.Context, k APIKey) (int64, error) {
	id, err := tx.insertID(ctx, "INSERT INTO api_keys (hash, role, merchant_id, created_at) VALUES (?, ?, ?, ?)",
		k.Hash, string(k.Role), nullStr(k.MerchantID), micros(orNow(k.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("insert %s API key: %w", k.Role, err)
	}
	return id, nil
}

// APIKeyByHash returns the key with the given hash, or ErrNotFound.
func (tx *Tx) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	var k APIKey
	var role string
	var merchant sql.NullString
	var at int64
	err := tx.queryRow(ctx, "SELECT id, hash, role, merchant_id, created_at FROM api_keys WHERE hash = ?", hash).
		Scan(&k.ID, &k.Hash, &role, &merchant, &at)
	if err != nil {
		return APIKey{}, fmt.Errorf("read API key: %w", err)
	}
	k.Role, k.MerchantID, k.CreatedAt = APIRole(role), merchant.String, fromMicros(at)
	return k, nil
}
