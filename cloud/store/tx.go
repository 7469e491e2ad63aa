package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tx is one database transaction, valid only inside the function given to
// Update or View. It is not safe for concurrent use. Methods wrap database
// errors with what they were doing and map them to ErrNotFound and
// ErrDuplicate.
type Tx struct {
	q   querier
	pg  *pgQuerier // q on PostgreSQL, else nil
	s   *Store
	now time.Time
	// autocommit marks a Tx of Store.Read: no transaction, no writes.
	autocommit bool
	// pre holds what Prefetch read ahead (prefetch.go); nil without one.
	pre *prefetched
	// locked holds the account rows this transaction has locked, as they
	// stand in it: no other transaction can change a locked row, and this
	// one changes accounts only through SetAccountAmounts, so a second
	// LockAccount is answered here without a round trip.
	locked map[int64]Account
}

func (tx *Tx) remember(a Account) {
	if tx.locked == nil {
		tx.locked = make(map[int64]Account, 2)
	}
	tx.locked[a.ID] = a
}

// Now returns the store clock's time (UTC), read once when the transaction
// began, so that every row it writes carries the same time.
func (tx *Tx) Now() time.Time { return tx.now }

// Dialect reports which database the transaction runs on.
func (tx *Tx) Dialect() Dialect { return tx.s.dialect }

var rebound sync.Map // query string -> PostgreSQL form

// bind rewrites '?' placeholders to PostgreSQL's $n form. Queries in this
// package never contain '?' inside literals.
func (tx *Tx) bind(q string) string {
	if tx.s.dialect != Postgres {
		return q
	}
	if v, ok := rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	rebound.Store(q, b.String())
	return b.String()
}

// errReadOnly is what a write through a Tx of Store.Read fails with.
var errReadOnly = errors.New("write outside a transaction (Store.Read is for reads)")

func (tx *Tx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	if tx.autocommit {
		return 0, errReadOnly
	}
	n, err := tx.q.exec(ctx, tx.bind(q), args...)
	return n, classify(err)
}

func (tx *Tx) query(ctx context.Context, q string, args ...any) (rowIter, error) {
	rows, err := tx.q.query(ctx, tx.bind(q), args...)
	return rows, classify(err)
}

func (tx *Tx) insertID(ctx context.Context, q string, args ...any) (int64, error) {
	if tx.autocommit {
		return 0, errReadOnly
	}
	var id int64
	err := tx.q.queryRow(ctx, tx.bind(q+" RETURNING id"), args...).Scan(&id)
	return id, classify(err)
}

// deferExec runs a write whose result the caller does not need at once.
// On PostgreSQL it is queued and sent with the transaction's next
// statement or with its COMMIT, saving a round trip; its failure then fails
// that statement or the Update. On SQLite it runs now. what names it in
// errors.
//
// rows >= 0 is the number of rows an UPDATE or DELETE q must affect, else
// the transaction fails with ErrNotFound; -1 for an INSERT, which either
// writes its rows or fails. On PostgreSQL the count is checked by the
// server (a division by zero when it differs), because the COMMIT sent in
// the same batch would otherwise run before the client could look.
func (tx *Tx) deferExec(ctx context.Context, what string, rows int64, q string, args ...any) error {
	if tx.autocommit {
		return errReadOnly
	}
	if tx.pg != nil {
		if rows >= 0 {
			q = "WITH w AS (" + q + " RETURNING 1) SELECT 1 / (CASE WHEN COUNT(*) = " + strconv.FormatInt(rows, 10) +
				" THEN 1 ELSE 0 END) FROM w"
		}
		tx.pg.deferExec(tx.bind(q), rows, what, args...)
		return nil
	}
	n, err := tx.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if rows >= 0 && n != rows {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

type rowScanner struct {
	row scanner
}

func (r rowScanner) Scan(dst ...any) error { return classify(r.row.Scan(dst...)) }

func (tx *Tx) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	return rowScanner{tx.q.queryRow(ctx, tx.bind(q), args...)}
}

// forUpdate is the row-lock suffix: FOR UPDATE on PostgreSQL; nothing on
// SQLite, where the single writer already holds the database lock.
func (tx *Tx) forUpdate() string {
	if tx.s.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t.UTC()
}

// nullInt maps zero to SQL NULL.
func nullInt(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: v != 0} }

// nullStr maps "" to SQL NULL.
func nullStr(v string) sql.NullString { return sql.NullString{String: v, Valid: v != ""} }

// InsertGateway adds a gateway.
func (tx *Tx) InsertGateway(ctx context.Context, g Gateway) error {
	if _, err := tx.exec(ctx, "INSERT INTO gateways (id, created_at) VALUES (?, ?)",
		g.ID, micros(orNow(g.CreatedAt, tx.now))); err != nil {
		return fmt.Errorf("insert gateway %q: %w", g.ID, err)
	}
	return nil
}

// InsertMerchant adds a merchant.
func (tx *Tx) InsertMerchant(ctx context.Context, m Merchant) error {
	if _, err := tx.exec(ctx, "INSERT INTO merchants (id, name, head_office_id, created_at) VALUES (?, ?, ?, ?)",
		m.ID, m.Name, nullStr(m.HeadOfficeID), micros(orNow(m.CreatedAt, tx.now))); err != nil {
		return fmt.Errorf("insert merchant %q: %w", m.ID, err)
	}
	return nil
}

// Merchant returns the merchant with the given id, or ErrNotFound.
func (tx *Tx) Merchant(ctx context.Context, id string) (Merchant, error) {
	var m Merchant
	var head sql.NullString
	var at int64
	err := tx.queryRow(ctx, "SELECT id, name, head_office_id, created_at FROM merchants WHERE id = ?", id).
		Scan(&m.ID, &m.Name, &head, &at)
	if err != nil {
		return Merchant{}, fmt.Errorf("read merchant %q: %w", id, err)
	}
	m.HeadOfficeID, m.CreatedAt = head.String, fromMicros(at)
	return m, nil
}

// InsertTerminal adds a terminal.
func (tx *Tx) InsertTerminal(ctx context.Context, t Terminal) error {
	if _, err := tx.exec(ctx, "INSERT INTO terminals (id, merchant_id, gateway_id, mcc, currency, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		t.ID, t.MerchantID, t.GatewayID, t.MCC, t.Currency, micros(orNow(t.CreatedAt, tx.now))); err != nil {
		return fmt.Errorf("insert terminal %q: %w", t.ID, err)
	}
	return nil
}

// Terminal returns the terminal with the given id, or ErrNotFound.
func (tx *Tx) Terminal(ctx context.Context, id string) (Terminal, error) {
	t, err, ok := tx.pre.takeTerminal(id)
	if !ok {
		t, err = scanTerminal(tx.queryRow(ctx, terminalSQL, id))
	}
	if err != nil {
		return Terminal{}, fmt.Errorf("read terminal %q: %w", id, err)
	}
	return t, nil
}

const terminalSQL = "SELECT id, merchant_id, gateway_id, mcc, currency, created_at FROM terminals WHERE id = ?"

func scanTerminal(sc interface{ Scan(...any) error }) (Terminal, error) {
	var t Terminal
	var at int64
	if err := sc.Scan(&t.ID, &t.MerchantID, &t.GatewayID, &t.MCC, &t.Currency, &at); err != nil {
		return Terminal{}, err
	}
	t.CreatedAt = fromMicros(at)
	return t, nil
}

// InsertProduct adds a card product with its allowed merchants and returns
// its id.
func (tx *Tx) InsertProduct(ctx context.Context, p Product) (int64, error) {
	id, err := tx.insertID(ctx, `INSERT INTO card_products
		(name, kind, currency, bin_low, bin_high, pan_length, credit_line, overdraft, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Name, string(p.Kind), p.Currency, p.BINLow, p.BINHigh, p.PANLength, p.CreditLine, p.Overdraft,
		micros(orNow(p.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("insert product %q: %w", p.Name, err)
	}
	for _, m := range p.AllowedMerchants {
		if _, err := tx.exec(ctx, "INSERT INTO product_merchants (product_id, merchant_id) VALUES (?, ?)", id, m); err != nil {
			return 0, fmt.Errorf("allow merchant %q for product %d: %w", m, id, err)
		}
	}
	return id, nil
}

// Product returns the product with the given id, or ErrNotFound.
func (tx *Tx) Product(ctx context.Context, id int64) (Product, error) {
	var p Product
	var kind string
	var at int64
	err := tx.queryRow(ctx, `SELECT id, name, kind, currency, bin_low, bin_high, pan_length, credit_line, overdraft, created_at
		FROM card_products WHERE id = ?`, id).
		Scan(&p.ID, &p.Name, &kind, &p.Currency, &p.BINLow, &p.BINHigh, &p.PANLength, &p.CreditLine, &p.Overdraft, &at)
	if err != nil {
		return Product{}, fmt.Errorf("read product %d: %w", id, err)
	}
	p.Kind, p.CreatedAt = ProductKind(kind), fromMicros(at)
	rows, err := tx.query(ctx, "SELECT merchant_id FROM product_merchants WHERE product_id = ? ORDER BY merchant_id", id)
	if err != nil {
		return Product{}, fmt.Errorf("read merchants of product %d: %w", id, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return Product{}, fmt.Errorf("read merchants of product %d: %w", id, classify(err))
		}
		p.AllowedMerchants = append(p.AllowedMerchants, m)
	}
	if err := rows.Err(); err != nil {
		return Product{}, fmt.Errorf("read merchants of product %d: %w", id, classify(err))
	}
	return p, nil
}

// ProductAllowsMerchant reports whether the product lists the merchant among
// its allowed merchants.
func (tx *Tx) ProductAllowsMerchant(ctx context.Context, productID int64, merchantID string) (bool, error) {
	if ok, found := tx.pre.takeAllows(productID, merchantID); found {
		return ok, nil
	}
	var n int
	err := tx.queryRow(ctx, "SELECT COUNT(*) FROM product_merchants WHERE product_id = ? AND merchant_id = ?",
		productID, merchantID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check merchant %q for product %d: %w", merchantID, productID, err)
	}
	return n > 0, nil
}

// InsertCardholder adds a cardholder and returns its id.
func (tx *Tx) InsertCardholder(ctx context.Context, c Cardholder) (int64, error) {
	id, err := tx.insertID(ctx, "INSERT INTO cardholders (name, created_at) VALUES (?, ?)",
		c.Name, micros(orNow(c.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("insert cardholder: %w", err)
	}
	return id, nil
}

// InsertAccount adds a ledger account and returns its id. Balance and Held
// must be zero: money only arrives through postings.
func (tx *Tx) InsertAccount(ctx context.Context, a Account) (int64, error) {
	if a.Balance != 0 || a.Held != 0 {
		return 0, errors.New("insert account: balance and held must start at zero")
	}
	id, err := tx.insertID(ctx, `INSERT INTO accounts
		(kind, currency, ref, cardholder_id, product_id, merchant_id, credit_line, overdraft, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		string(a.Kind), a.Currency, nullStr(a.Ref), nullInt(a.CardholderID), nullInt(a.ProductID), nullStr(a.MerchantID),
		a.CreditLine, a.Overdraft, micros(orNow(a.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("insert %s account: %w", a.Kind, err)
	}
	return id, nil
}

const accountCols = "id, kind, currency, ref, cardholder_id, product_id, merchant_id, balance, held, credit_line, overdraft, created_at"

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var a Account
	var kind string
	var ref, merchant sql.NullString
	var holder, product sql.NullInt64
	var at int64
	if err := sc.Scan(&a.ID, &kind, &a.Currency, &ref, &holder, &product, &merchant, &a.Balance, &a.Held,
		&a.CreditLine, &a.Overdraft, &at); err != nil {
		return Account{}, err
	}
	a.Kind, a.Ref, a.CardholderID, a.ProductID, a.MerchantID, a.CreatedAt =
		AccountKind(kind), ref.String, holder.Int64, product.Int64, merchant.String, fromMicros(at)
	return a, nil
}

// Account returns the account with the given id without locking it, or
// ErrNotFound.
func (tx *Tx) Account(ctx context.Context, id int64) (Account, error) {
	a, err := scanAccount(tx.queryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE id = ?", id))
	if err != nil {
		return Account{}, fmt.Errorf("read account %d: %w", id, err)
	}
	return a, nil
}

// LockAccount returns the account with the given id and locks its row until
// the transaction ends, so that no other transaction can change its balance
// or holds meanwhile. Callers locking several accounts lock them in
// ascending id order to avoid deadlocks. Locking an account this
// transaction already holds returns it as it stands in the transaction
// without asking the database again.
func (tx *Tx) LockAccount(ctx context.Context, id int64) (Account, error) {
	if a, ok := tx.locked[id]; ok {
		return a, nil
	}
	a, err := scanAccount(tx.queryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE id = ?"+tx.forUpdate(), id))
	if err != nil {
		return Account{}, fmt.Errorf("lock account %d: %w", id, err)
	}
	tx.remember(a)
	return a, nil
}

// AccountByRef returns the account with the given ref, or ErrNotFound.
func (tx *Tx) AccountByRef(ctx context.Context, ref string) (Account, error) {
	a, err := scanAccount(tx.queryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE ref = ?", ref))
	if err != nil {
		return Account{}, fmt.Errorf("read account %q: %w", ref, err)
	}
	return a, nil
}

// EnsureAccountByRef returns the id of the account with a.Ref, creating it
// from a if it does not exist. Concurrent callers get the same account.
func (tx *Tx) EnsureAccountByRef(ctx context.Context, a Account) (int64, error) {
	if a.Ref == "" {
		return 0, errors.New("ensure account: empty ref")
	}
	var id int64
	err := tx.queryRow(ctx, "SELECT id FROM accounts WHERE ref = ?", a.Ref).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("read account %q: %w", a.Ref, err)
	}
	_, err = tx.exec(ctx, `INSERT INTO accounts (kind, currency, ref, merchant_id, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (ref) DO NOTHING`,
		string(a.Kind), a.Currency, a.Ref, nullStr(a.MerchantID), micros(orNow(a.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("ensure account %q: %w", a.Ref, err)
	}
	if err := tx.queryRow(ctx, "SELECT id FROM accounts WHERE ref = ?", a.Ref).Scan(&id); err != nil {
		return 0, fmt.Errorf("read account %q: %w", a.Ref, err)
	}
	return id, nil
}

// EnsureAccountsByRef creates every account of as (each with a Ref) that
// does not exist yet, in one statement; existing ones are left as they are.
// On PostgreSQL a concurrent transaction creating the same refs waits for
// this one to end, so callers create a set of refs in one fixed order.
func (tx *Tx) EnsureAccountsByRef(ctx context.Context, as []Account) error {
	if len(as) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("INSERT INTO accounts (kind, currency, ref, merchant_id, created_at) VALUES ")
	args := make([]any, 0, 5*len(as))
	for i, a := range as {
		if a.Ref == "" {
			return errors.New("ensure accounts: empty ref")
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?)")
		args = append(args, string(a.Kind), a.Currency, a.Ref, nullStr(a.MerchantID), micros(orNow(a.CreatedAt, tx.now)))
	}
	b.WriteString(" ON CONFLICT (ref) DO NOTHING")
	if _, err := tx.exec(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("ensure %d accounts from %q: %w", len(as), as[0].Ref, err)
	}
	return nil
}

// refList returns "?, ?, ..." for n placeholders and refs as arguments.
func refList(refs []string) (string, []any) {
	args := make([]any, len(refs))
	for i, r := range refs {
		args[i] = r
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(refs)), ", "), args
}

// LockFreeAccountByRef locks and returns the id of the lowest-id account
// among refs whose row no other transaction holds locked, skipping locked
// ones instead of waiting (PostgreSQL: FOR UPDATE SKIP LOCKED). On SQLite,
// where the single writer excludes every other, it is the lowest-id
// existing one. It returns ErrNotFound when none of refs exists or every
// one is locked. It is for interchangeable accounts (the shards of one
// merchant clearing account), never for an account whose balance decides
// anything.
func (tx *Tx) LockFreeAccountByRef(ctx context.Context, refs []string) (int64, error) {
	if len(refs) == 0 {
		return 0, fmt.Errorf("lock free account: %w", ErrNotFound)
	}
	if id, err, ok := tx.pre.takeClearing(refs); ok {
		if err != nil {
			return 0, fmt.Errorf("lock free account among %q…: %w", refs[0], err)
		}
		return id, nil
	}
	list, args := refList(refs)
	q := "SELECT " + accountCols + " FROM accounts WHERE ref IN (" + list + ") ORDER BY id LIMIT 1"
	if tx.s.dialect == Postgres {
		q += " FOR UPDATE SKIP LOCKED"
	}
	a, err := scanAccount(tx.queryRow(ctx, q, args...))
	if err != nil {
		return 0, fmt.Errorf("lock free account among %q…: %w", refs[0], err)
	}
	tx.remember(a)
	return a.ID, nil
}

// AccountsByRef returns the existing accounts among refs, ordered by id,
// without locking them.
func (tx *Tx) AccountsByRef(ctx context.Context, refs []string) ([]Account, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	list, args := refList(refs)
	rows, err := tx.query(ctx, "SELECT "+accountCols+" FROM accounts WHERE ref IN ("+list+") ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("list accounts from %q: %w", refs[0], err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts from %q: %w", refs[0], classify(err))
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts from %q: %w", refs[0], classify(err))
	}
	return out, nil
}

// SetAccountAmounts stores an account's balance and held amount. The caller
// holds the row lock (LockAccount) and keeps both equal to what postings and
// open holds prove; package ledger is the only intended caller.
func (tx *Tx) SetAccountAmounts(ctx context.Context, id, balance, held int64) error {
	return tx.SetAccountsAmounts(ctx, AccountAmounts{ID: id, Balance: balance, Held: held})
}

// AccountAmounts is the new balance and held amount of one account.
type AccountAmounts struct {
	ID, Balance, Held int64
}

// SetAccountsAmounts is SetAccountAmounts for several accounts in one
// statement; each must exist (else ErrNotFound and the caller rolls back).
// It is a deferred write (deferExec): on PostgreSQL its failure is reported
// by the transaction's next statement or its commit.
func (tx *Tx) SetAccountsAmounts(ctx context.Context, as ...AccountAmounts) error {
	var err error
	what := fmt.Sprintf("update account %d", as[0].ID)
	switch len(as) {
	case 0:
		return nil
	case 1:
		err = tx.deferExec(ctx, what, 1, "UPDATE accounts SET balance = ?, held = ? WHERE id = ?", as[0].Balance, as[0].Held, as[0].ID)
	default:
		// SQLite names VALUES columns column1..3 and takes no alias list.
		cols, alias := "v.column2, held = v.column3", ") AS v WHERE accounts.id = v.column1"
		if tx.s.dialect == Postgres {
			cols, alias = "v.b, held = v.h", ") AS v(id, b, h) WHERE accounts.id = v.id"
		}
		var b strings.Builder
		b.WriteString("UPDATE accounts SET balance = " + cols + " FROM (VALUES ")
		args := make([]any, 0, 3*len(as))
		for i, a := range as {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))")
			args = append(args, a.ID, a.Balance, a.Held)
		}
		b.WriteString(alias)
		err = tx.deferExec(ctx, what, int64(len(as)), b.String(), args...)
	}
	if err != nil {
		return err
	}
	for _, a := range as {
		if c, ok := tx.locked[a.ID]; ok {
			c.Balance, c.Held = a.Balance, a.Held
			tx.locked[a.ID] = c
		}
	}
	return nil
}

// Accounts returns every account, ordered by id.
func (tx *Tx) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := tx.query(ctx, "SELECT "+accountCols+" FROM accounts ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", classify(err))
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", classify(err))
	}
	return out, nil
}

// InsertCard adds a card and returns its id; a card whose fingerprint is
// already known fails with ErrDuplicate.
func (tx *Tx) InsertCard(ctx context.Context, c Card) (int64, error) {
	id, err := tx.insertID(ctx, `INSERT INTO cards
		(product_id, account_id, fingerprint, pan_sealed, masked_pan, expiry, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ProductID, c.AccountID, c.Fingerprint, c.PANSealed, c.MaskedPAN, c.Expiry, string(c.Status),
		micros(orNow(c.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("insert card %s: %w", c.MaskedPAN, err)
	}
	return id, nil
}

const cardCols = "id, product_id, account_id, fingerprint, pan_sealed, masked_pan, expiry, status, created_at"

func scanCard(sc interface{ Scan(...any) error }) (Card, error) {
	var c Card
	var status string
	var at int64
	if err := sc.Scan(&c.ID, &c.ProductID, &c.AccountID, &c.Fingerprint, &c.PANSealed, &c.MaskedPAN, &c.Expiry,
		&status, &at); err != nil {
		return Card{}, err
	}
	c.Status, c.CreatedAt = CardStatus(status), fromMicros(at)
	return c, nil
}

// Card returns the card with the given id, or ErrNotFound.
func (tx *Tx) Card(ctx context.Context, id int64) (Card, error) {
	c, err := scanCard(tx.queryRow(ctx, "SELECT "+cardCols+" FROM cards WHERE id = ?", id))
	if err != nil {
		return Card{}, fmt.Errorf("read card %d: %w", id, err)
	}
	return c, nil
}

// CardByFingerprint returns the card with the given PAN fingerprint, or
// ErrNotFound.
func (tx *Tx) CardByFingerprint(ctx context.Context, fingerprint string) (Card, error) {
	if c, err, ok := tx.pre.takeCard(fingerprint); ok {
		if err != nil {
			return Card{}, fmt.Errorf("read card by fingerprint: %w", err)
		}
		return c, nil
	}
	c, err := scanCard(tx.queryRow(ctx, "SELECT "+cardCols+" FROM cards WHERE fingerprint = ?", fingerprint))
	if err != nil {
		return Card{}, fmt.Errorf("read card by fingerprint: %w", err)
	}
	return c, nil
}

// SetCardStatus changes a card's status.
func (tx *Tx) SetCardStatus(ctx context.Context, id int64, s CardStatus) error {
	n, err := tx.exec(ctx, "UPDATE cards SET status = ? WHERE id = ?", string(s), id)
	if err != nil {
		return fmt.Errorf("set card %d status %s: %w", id, s, err)
	}
	if n == 0 {
		return fmt.Errorf("set card %d status: %w", id, ErrNotFound)
	}
	return nil
}

// InsertTransfer adds a transfer and its postings and returns the transfer
// id. It does not check that the postings balance or touch account rows;
// package ledger does both.
func (tx *Tx) InsertTransfer(ctx context.Context, t Transfer) (int64, error) {
	at := micros(orNow(t.CreatedAt, tx.now))
	if len(t.Postings) == 0 {
		id, err := tx.insertID(ctx, "INSERT INTO transfers (kind, created_at) VALUES (?, ?)", t.Kind, at)
		if err != nil {
			return 0, fmt.Errorf("insert %s transfer: %w", t.Kind, err)
		}
		return id, nil
	}
	var values strings.Builder
	args := make([]any, 0, 2+3*len(t.Postings))
	for i, p := range t.Postings {
		if i > 0 {
			values.WriteString(", ")
		}
		values.WriteString("(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), " + strconv.Itoa(i) + ")")
		args = append(args, p.AccountID, p.Amount, p.Currency)
	}
	if id := tx.pre.takeID("transfers"); id != 0 {
		// Deferred: the transfer (with the id Prefetch drew) and its
		// postings in one statement sent with the next one or the commit.
		err := tx.deferExec(ctx, fmt.Sprintf("insert %s transfer with %d postings", t.Kind, len(t.Postings)), -1,
			`WITH t AS (INSERT INTO transfers (id, kind, created_at) OVERRIDING SYSTEM VALUE VALUES (?, ?, ?) RETURNING id),
			p AS (INSERT INTO postings (transfer_id, account_id, amount, currency)
			      SELECT t.id, v.a, v.m, v.c FROM t, (VALUES `+values.String()+`) AS v(a, m, c, n) ORDER BY v.n)
			SELECT id FROM t`, append([]any{id, t.Kind, at}, args...)...)
		return id, err
	}
	if tx.s.dialect == Postgres {
		// One round trip: the transfer and its postings in one statement.
		var id int64
		err := tx.queryRow(ctx, `WITH t AS (INSERT INTO transfers (kind, created_at) VALUES (?, ?) RETURNING id),
			p AS (INSERT INTO postings (transfer_id, account_id, amount, currency)
			      SELECT t.id, v.a, v.m, v.c FROM t, (VALUES `+values.String()+`) AS v(a, m, c, n) ORDER BY v.n)
			SELECT id FROM t`, append([]any{t.Kind, at}, args...)...).Scan(&id)
		if err != nil {
			return 0, fmt.Errorf("insert %s transfer with %d postings: %w", t.Kind, len(t.Postings), err)
		}
		return id, nil
	}
	id, err := tx.insertID(ctx, "INSERT INTO transfers (kind, created_at) VALUES (?, ?)", t.Kind, at)
	if err != nil {
		return 0, fmt.Errorf("insert %s transfer: %w", t.Kind, err)
	}
	if _, err := tx.exec(ctx, `INSERT INTO postings (transfer_id, account_id, amount, currency)
		SELECT CAST(? AS BIGINT), v.column1, v.column2, v.column3 FROM (VALUES `+values.String()+`) AS v ORDER BY v.column4`,
		append([]any{id}, args...)...); err != nil {
		return 0, fmt.Errorf("insert postings of transfer %d: %w", id, err)
	}
	return id, nil
}

// Transfer returns a transfer with its postings, or ErrNotFound.
func (tx *Tx) Transfer(ctx context.Context, id int64) (Transfer, error) {
	t := Transfer{ID: id}
	var at int64
	if err := tx.queryRow(ctx, "SELECT kind, created_at FROM transfers WHERE id = ?", id).Scan(&t.Kind, &at); err != nil {
		return Transfer{}, fmt.Errorf("read transfer %d: %w", id, err)
	}
	t.CreatedAt = fromMicros(at)
	rows, err := tx.query(ctx, "SELECT account_id, amount, currency FROM postings WHERE transfer_id = ? ORDER BY id", id)
	if err != nil {
		return Transfer{}, fmt.Errorf("read postings of transfer %d: %w", id, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		p := Posting{TransferID: id}
		if err := rows.Scan(&p.AccountID, &p.Amount, &p.Currency); err != nil {
			return Transfer{}, fmt.Errorf("read postings of transfer %d: %w", id, classify(err))
		}
		t.Postings = append(t.Postings, p)
	}
	if err := rows.Err(); err != nil {
		return Transfer{}, fmt.Errorf("read postings of transfer %d: %w", id, classify(err))
	}
	return t, nil
}

// InsertHold adds a hold and returns its id. It does not touch the account
// row; package ledger does. With an id reserved by Prefetch it is a
// deferred write (deferExec).
func (tx *Tx) InsertHold(ctx context.Context, h Hold) (int64, error) {
	at := micros(orNow(h.CreatedAt, tx.now))
	if id := tx.pre.takeID("holds"); id != 0 {
		err := tx.deferExec(ctx, fmt.Sprintf("insert hold on account %d", h.AccountID), -1,
			`INSERT INTO holds (id, account_id, amount, currency, expires_at, status, created_at, updated_at)
			OVERRIDING SYSTEM VALUE VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, h.AccountID, h.Amount, h.Currency, micros(h.ExpiresAt), string(h.Status), at, at)
		return id, err
	}
	id, err := tx.insertID(ctx, `INSERT INTO holds (account_id, amount, currency, expires_at, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		h.AccountID, h.Amount, h.Currency, micros(h.ExpiresAt), string(h.Status), at, at)
	if err != nil {
		return 0, fmt.Errorf("insert hold on account %d: %w", h.AccountID, err)
	}
	return id, nil
}

const holdCols = "id, account_id, amount, currency, expires_at, status, created_at, updated_at"

func scanHold(sc interface{ Scan(...any) error }) (Hold, error) {
	var h Hold
	var status string
	var exp, at, up int64
	if err := sc.Scan(&h.ID, &h.AccountID, &h.Amount, &h.Currency, &exp, &status, &at, &up); err != nil {
		return Hold{}, err
	}
	h.Status, h.ExpiresAt, h.CreatedAt, h.UpdatedAt = HoldStatus(status), fromMicros(exp), fromMicros(at), fromMicros(up)
	return h, nil
}

// Hold returns the hold with the given id, or ErrNotFound.
func (tx *Tx) Hold(ctx context.Context, id int64) (Hold, error) {
	h, err := scanHold(tx.queryRow(ctx, "SELECT "+holdCols+" FROM holds WHERE id = ?", id))
	if err != nil {
		return Hold{}, fmt.Errorf("read hold %d: %w", id, err)
	}
	return h, nil
}

// SetHoldStatus changes a hold's status.
func (tx *Tx) SetHoldStatus(ctx context.Context, id int64, s HoldStatus) error {
	n, err := tx.exec(ctx, "UPDATE holds SET status = ?, updated_at = ? WHERE id = ?", string(s), micros(tx.now), id)
	if err != nil {
		return fmt.Errorf("set hold %d status %s: %w", id, s, err)
	}
	if n == 0 {
		return fmt.Errorf("set hold %d status: %w", id, ErrNotFound)
	}
	return nil
}

// ExpiredHolds returns up to limit open holds that expired before t, oldest
// first.
func (tx *Tx) ExpiredHolds(ctx context.Context, t time.Time, limit int) ([]Hold, error) {
	rows, err := tx.query(ctx, "SELECT "+holdCols+" FROM holds WHERE status = 'open' AND expires_at < ? ORDER BY expires_at, id LIMIT ?",
		micros(t), limit)
	if err != nil {
		return nil, fmt.Errorf("list expired holds: %w", classify(err))
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, fmt.Errorf("list expired holds: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list expired holds: %w", classify(err))
	}
	return out, nil
}

// InsertAuthorization adds an authorization row and returns its id and
// RRN. The RRN is a.RRN, or when that is empty RRN(id). A repeated
// IdempotencyKey fails with ErrDuplicate (and, on PostgreSQL, aborts the
// transaction). With an id reserved by Prefetch it is a deferred write
// (deferExec): the duplicate is then reported by the transaction's next
// statement or its commit.
func (tx *Tx) InsertAuthorization(ctx context.Context, a Authorization) (id int64, rrn string, err error) {
	at := micros(orNow(a.CreatedAt, tx.now))
	args := func(id int64, rrn string) []any {
		return []any{id, a.IdempotencyKey, a.GatewayID, a.TerminalID, a.STAN, a.MTI, a.ProcessingCode, a.FunctionCode,
			a.LocalTime, a.Amount, a.Currency, nullInt(a.CardID), nullInt(a.AccountID), a.ActionCode, a.ApprovalCode, rrn,
			nullInt(a.HoldID), nullInt(a.TransferID), nullInt(a.OriginalID), string(a.Status), at, at}
	}
	const cols = `idempotency_key, gateway_id, terminal_id, stan, mti, processing_code, function_code, local_time,
		 amount, currency, card_id, account_id, action_code, approval_code, rrn, hold_id, transfer_id,
		 original_id, status, created_at, updated_at`
	const marks = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
	if id := tx.pre.takeID("authorizations"); id != 0 {
		rrn := a.RRN
		if rrn == "" {
			rrn = RRN(id)
		}
		err := tx.deferExec(ctx, "insert authorization", -1,
			"INSERT INTO authorizations (id, "+cols+") OVERRIDING SYSTEM VALUE VALUES (?, "+marks+")", args(id, rrn)...)
		return id, rrn, err
	}
	id, err = tx.insertID(ctx, "INSERT INTO authorizations ("+cols+") VALUES ("+marks+")", args(0, a.RRN)[1:]...)
	if err != nil {
		return 0, "", fmt.Errorf("insert authorization: %w", err)
	}
	if rrn = a.RRN; rrn == "" {
		rrn = RRN(id)
		if err := tx.deferExec(ctx, fmt.Sprintf("set RRN of authorization %d", id), 1,
			"UPDATE authorizations SET rrn = ? WHERE id = ?", rrn, id); err != nil {
			return 0, "", err
		}
	}
	return id, rrn, nil
}

// RRN is the retrieval reference number (DE 37, 12 digits) of the
// authorization row with the given id: the id's last 12 decimal digits.
func RRN(id int64) string { return fmt.Sprintf("%012d", id%1_000_000_000_000) }

// UpdateAuthorization stores a's RRN, status, hold and transfer (the fields
// that change after insert).
func (tx *Tx) UpdateAuthorization(ctx context.Context, a Authorization) error {
	n, err := tx.exec(ctx, `UPDATE authorizations SET rrn = ?, status = ?, hold_id = ?, transfer_id = ?, updated_at = ?
		WHERE id = ?`, a.RRN, string(a.Status), nullInt(a.HoldID), nullInt(a.TransferID), micros(tx.now), a.ID)
	if err != nil {
		return fmt.Errorf("update authorization %d: %w", a.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update authorization %d: %w", a.ID, ErrNotFound)
	}
	return nil
}

const authCols = `id, idempotency_key, gateway_id, terminal_id, stan, mti, processing_code, function_code, local_time,
	amount, currency, card_id, account_id, action_code, approval_code, rrn, hold_id, transfer_id, original_id,
	status, created_at, updated_at`

func scanAuth(sc interface{ Scan(...any) error }) (Authorization, error) {
	var a Authorization
	var card, acct, hold, transfer, orig sql.NullInt64
	var status string
	var at, up int64
	if err := sc.Scan(&a.ID, &a.IdempotencyKey, &a.GatewayID, &a.TerminalID, &a.STAN, &a.MTI, &a.ProcessingCode,
		&a.FunctionCode, &a.LocalTime, &a.Amount, &a.Currency, &card, &acct, &a.ActionCode, &a.ApprovalCode, &a.RRN,
		&hold, &transfer, &orig, &status, &at, &up); err != nil {
		return Authorization{}, err
	}
	a.CardID, a.AccountID, a.HoldID, a.TransferID, a.OriginalID = card.Int64, acct.Int64, hold.Int64, transfer.Int64, orig.Int64
	a.Status, a.CreatedAt, a.UpdatedAt = AuthStatus(status), fromMicros(at), fromMicros(up)
	return a, nil
}

// Authorization returns the authorization with the given id, or ErrNotFound.
func (tx *Tx) Authorization(ctx context.Context, id int64) (Authorization, error) {
	a, err := scanAuth(tx.queryRow(ctx, "SELECT "+authCols+" FROM authorizations WHERE id = ?", id))
	if err != nil {
		return Authorization{}, fmt.Errorf("read authorization %d: %w", id, err)
	}
	return a, nil
}

// AuthorizationByKey returns the authorization with the given idempotency
// key, or ErrNotFound.
func (tx *Tx) AuthorizationByKey(ctx context.Context, key string) (Authorization, error) {
	if a, err, ok := tx.pre.takeAuth(key); ok {
		if err != nil {
			return Authorization{}, fmt.Errorf("read authorization by idempotency key: %w", err)
		}
		return a, nil
	}
	a, err := scanAuth(tx.queryRow(ctx, "SELECT "+authCols+" FROM authorizations WHERE idempotency_key = ?", key))
	if err != nil {
		return Authorization{}, fmt.Errorf("read authorization by idempotency key: %w", err)
	}
	return a, nil
}

// AuthorizationByOriginal returns the latest authorization a terminal sent
// with the given MTI, STAN and local date-time (the original data elements
// of a reversal or advice), or ErrNotFound.
func (tx *Tx) AuthorizationByOriginal(ctx context.Context, terminalID, mti, stan, localTime string) (Authorization, error) {
	a, err := scanAuth(tx.queryRow(ctx, "SELECT "+authCols+` FROM authorizations
		WHERE terminal_id = ? AND stan = ? AND local_time = ? AND mti = ? ORDER BY id DESC LIMIT 1`,
		terminalID, stan, localTime, mti))
	if err != nil {
		return Authorization{}, fmt.Errorf("read authorization by original data: %w", err)
	}
	return a, nil
}

// AdvanceDeviceCounter records counter as the highest DUKPT transaction
// counter accepted from the device, if it is above the one stored. It
// reports false, changing nothing, when counter is not above the stored one
// (a replay). The row stays locked until the transaction ends.
func (tx *Tx) AdvanceDeviceCounter(ctx context.Context, deviceID string, counter uint64) (bool, error) {
	if counter > math.MaxInt64 {
		return false, fmt.Errorf("advance counter of device %q: counter out of range", deviceID)
	}
	if fresh, ok := tx.pre.takeCounter(deviceID, counter); ok {
		return fresh, nil
	}
	n, err := tx.exec(ctx, advanceCounterSQL, deviceID, int64(counter), micros(tx.now))
	if err != nil {
		return false, fmt.Errorf("advance counter of device %q: %w", deviceID, err)
	}
	return n == 1, nil
}

const advanceCounterSQL = `INSERT INTO ksn_device (device_id, counter, updated_at) VALUES (?, ?, ?)
	ON CONFLICT (device_id) DO UPDATE SET counter = excluded.counter, updated_at = excluded.updated_at
	WHERE ksn_device.counter < excluded.counter`

// DeviceCounter returns the highest counter accepted from the device, or
// ErrNotFound if none was.
func (tx *Tx) DeviceCounter(ctx context.Context, deviceID string) (uint64, error) {
	var c int64
	if err := tx.queryRow(ctx, "SELECT counter FROM ksn_device WHERE device_id = ?", deviceID).Scan(&c); err != nil {
		return 0, fmt.Errorf("read counter of device %q: %w", deviceID, err)
	}
	return uint64(c), nil
}

// InsertAudit appends an audit record and returns its id. Callers never put
// card data or key material in Detail.
func (tx *Tx) InsertAudit(ctx context.Context, r AuditRecord) (int64, error) {
	id, err := tx.insertID(ctx, "INSERT INTO audit (at, kind, actor, detail) VALUES (?, ?, ?, ?)",
		micros(orNow(r.At, tx.now)), r.Kind, r.Actor, r.Detail)
	if err != nil {
		return 0, fmt.Errorf("insert audit %s: %w", r.Kind, err)
	}
	return id, nil
}

// AppendAudit appends an audit record without returning its id: a
// deferred write (deferExec), sent on PostgreSQL with the transaction's
// next statement or its commit. Callers never put card data or key
// material in Detail.
func (tx *Tx) AppendAudit(ctx context.Context, r AuditRecord) error {
	return tx.deferExec(ctx, "insert audit "+r.Kind, -1, "INSERT INTO audit (at, kind, actor, detail) VALUES (?, ?, ?, ?)",
		micros(orNow(r.At, tx.now)), r.Kind, r.Actor, r.Detail)
}

// Audit returns up to limit audit records of the given kind ("" for all),
// newest first.
func (tx *Tx) Audit(ctx context.Context, kind string, limit int) ([]AuditRecord, error) {
	rows, err := tx.query(ctx, "SELECT id, at, kind, actor, detail FROM audit WHERE (CAST(? AS TEXT) = '' OR kind = ?) ORDER BY id DESC LIMIT ?",
		kind, kind, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", classify(err))
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var r AuditRecord
		var at int64
		if err := rows.Scan(&r.ID, &at, &r.Kind, &r.Actor, &r.Detail); err != nil {
			return nil, fmt.Errorf("list audit: %w", classify(err))
		}
		r.At = fromMicros(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", classify(err))
	}
	return out, nil
}

// UnbalancedTransfers returns every (transfer, currency) whose postings do
// not sum to zero, and transfers without postings (Currency "", Sum 0).
func (tx *Tx) UnbalancedTransfers(ctx context.Context) ([]TransferImbalance, error) {
	rows, err := tx.query(ctx, `
		SELECT transfer_id, currency, CAST(SUM(amount) AS BIGINT) FROM postings GROUP BY transfer_id, currency HAVING SUM(amount) <> 0
		UNION ALL
		SELECT t.id, '', CAST(0 AS BIGINT) FROM transfers t WHERE NOT EXISTS (SELECT 1 FROM postings p WHERE p.transfer_id = t.id)
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("sum postings per transfer: %w", classify(err))
	}
	defer rows.Close()
	var out []TransferImbalance
	for rows.Next() {
		var r TransferImbalance
		if err := rows.Scan(&r.TransferID, &r.Currency, &r.Sum); err != nil {
			return nil, fmt.Errorf("sum postings per transfer: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sum postings per transfer: %w", classify(err))
	}
	return out, nil
}

// AccountMismatches returns every account whose stored balance differs from
// the sum of its postings, whose stored held amount differs from the sum of
// its open holds, or that has postings or holds in a currency other than
// its own.
func (tx *Tx) AccountMismatches(ctx context.Context) ([]AccountMismatch, error) {
	rows, err := tx.query(ctx, `
		SELECT a.id, a.balance, COALESCE(p.total, 0), a.held, COALESCE(h.total, 0), COALESCE(p.foreign_n, 0) + COALESCE(h.foreign_n, 0)
		FROM accounts a
		LEFT JOIN (SELECT pp.account_id, CAST(SUM(pp.amount) AS BIGINT) AS total,
		                  CAST(SUM(CASE WHEN pp.currency <> aa.currency THEN 1 ELSE 0 END) AS BIGINT) AS foreign_n
		           FROM postings pp JOIN accounts aa ON aa.id = pp.account_id GROUP BY pp.account_id) p ON p.account_id = a.id
		LEFT JOIN (SELECT hh.account_id, CAST(SUM(hh.amount) AS BIGINT) AS total,
		                  CAST(SUM(CASE WHEN hh.currency <> aa.currency THEN 1 ELSE 0 END) AS BIGINT) AS foreign_n
		           FROM holds hh JOIN accounts aa ON aa.id = hh.account_id WHERE hh.status = 'open' GROUP BY hh.account_id) h ON h.account_id = a.id
		WHERE a.balance <> COALESCE(p.total, 0) OR a.held <> COALESCE(h.total, 0)
		   OR COALESCE(p.foreign_n, 0) + COALESCE(h.foreign_n, 0) <> 0
		ORDER BY a.id`)
	if err != nil {
		return nil, fmt.Errorf("compare account balances with postings: %w", classify(err))
	}
	defer rows.Close()
	var out []AccountMismatch
	for rows.Next() {
		var m AccountMismatch
		if err := rows.Scan(&m.AccountID, &m.Balance, &m.PostingsSum, &m.Held, &m.OpenHoldsSum, &m.ForeignPostings); err != nil {
			return nil, fmt.Errorf("compare account balances with postings: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compare account balances with postings: %w", classify(err))
	}
	return out, nil
}

// Count returns the number of rows in one of the center's tables (for
// checks and tests): "authorizations", "transfers", "postings", "holds",
// "audit", "cards", "accounts".
func (tx *Tx) Count(ctx context.Context, table string) (int64, error) {
	switch table {
	case "authorizations", "transfers", "postings", "holds", "audit", "cards", "accounts":
	default:
		return 0, fmt.Errorf("count rows: unknown table %q", table)
	}
	var n int64
	if err := tx.queryRow(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}
