package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuthReads names what the transaction of one card's authorization is
// about to read, lock and insert, so that Prefetch can fetch it in one
// round trip on PostgreSQL instead of one round trip each. Zero fields are
// not fetched.
type AuthReads struct {
	// Key is read as by AuthorizationByKey.
	Key string
	// TerminalID is read as by Terminal.
	TerminalID string
	// BINPrefix and PANLength are read as by ProductCoversBIN (the BIN
	// routing's on-us test); BINPrefix "" for none.
	BINPrefix string
	PANLength int
	// Device and Counter are applied as by AdvanceDeviceCounter (a write);
	// Device "" for none.
	Device  string
	Counter uint64
	// Fingerprint names the card: CardByFingerprint, LockAccount of the
	// card's account (so the account is locked from here on), CardControls
	// of the card and, when its controls set a daily limit,
	// ApprovedTotal(card, DayFrom, DayTo).
	Fingerprint    string
	DayFrom, DayTo time.Time
	// MerchantID is read as by MerchantCountry, and with Fingerprint as by
	// ProductAllowsMerchant(the card's product, MerchantID).
	MerchantID string
	// ClearingRefs is locked as by LockFreeAccountByRef.
	ClearingRefs []string
	// Reserve lists tables whose next id this transaction draws now for
	// the row it may insert; an unused id is a gap in the ids, as after a
	// rollback. With a Fingerprint the ids are drawn only when the card
	// exists (a decline for an unknown card inserts its row the ordinary
	// way).
	Reserve []Table
}

// Table names a table whose next id Prefetch can draw ahead
// (AuthReads.Reserve).
type Table string

// The tables whose ids Prefetch can reserve: those of the rows an
// authorization inserts.
const (
	TableAuthorizations Table = "authorizations"
	TableHolds          Table = "holds"
	TableTransfers      Table = "transfers"
)

// reservable are the tables whose ids Prefetch can draw ahead.
var reservable = []Table{TableHolds, TableAuthorizations, TableTransfers}

// Prefetch reads, locks and applies what r names, in the order the
// authorization switch's checks use them (device counter, then the card's
// account lock, then the card and its controls, then the merchant clearing
// shard; docs/authorization.md: the switch derives r from the checks of its
// pipeline),
// and keeps the answers in tx. Each later call of the matching method with
// the same arguments is answered from there once, without asking the
// database; the answer is what the rows were when Prefetch ran, within
// this transaction and (for the account) under its lock.
//
// On PostgreSQL everything goes out in one batch together with the
// transaction's BEGIN and any deferred writes: one round trip. On SQLite
// Prefetch does nothing; each method then reads in process, which costs
// no round trip. In a Tx of Store.Read only Key and TerminalID may be set
// (and BINPrefix; the rest writes or locks).
//
// Prefetch is one function of about 115 lines on purpose: it queues the
// batch's statements in lock order and then reads their answers in the same
// order, and keeping both halves in one place is what keeps them in step.
func (tx *Tx) Prefetch(ctx context.Context, r AuthReads) error {
	if tx.pg == nil {
		return nil
	}
	if tx.autocommit && (r.Device != "" || r.Fingerprint != "" || len(r.ClearingRefs) > 0 || len(r.Reserve) > 0) {
		return errReadOnly
	}
	for _, t := range r.Reserve {
		if !slices.Contains(reservable, t) {
			return fmt.Errorf("prefetch: cannot reserve ids of %q", t)
		}
	}
	if r.Counter > 1<<63-1 {
		return fmt.Errorf("prefetch: counter of device %q out of range", r.Device)
	}
	p := &prefetched{}
	var items []batchItem
	if r.Key != "" {
		items = append(items, batchItem{
			sql: tx.bind("SELECT " + authCols + " FROM authorizations WHERE idempotency_key = ?"), args: []any{r.Key},
			read: func(br pgx.BatchResults) error {
				a, err := scanAuth(br.QueryRow())
				if err = classify(err); err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("read authorization by idempotency key: %w", err)
				}
				p.auth = &authAnswer{key: r.Key, a: a, err: err}
				return nil
			}})
	}
	if r.TerminalID != "" {
		items = append(items, batchItem{sql: tx.bind(terminalSQL), args: []any{r.TerminalID},
			read: func(br pgx.BatchResults) error {
				t, err := scanTerminal(br.QueryRow())
				if err = classify(err); err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("read terminal %q: %w", r.TerminalID, err)
				}
				p.terminal = &terminalAnswer{t: t, id: r.TerminalID, err: err}
				return nil
			}})
	}
	if r.BINPrefix != "" {
		items = append(items, batchItem{sql: tx.bind(productCoversBINSQL), args: []any{r.PANLength, len(r.BINPrefix), r.BINPrefix},
			read: func(br pgx.BatchResults) error {
				var n int64
				if err := br.QueryRow().Scan(&n); err != nil {
					return fmt.Errorf("match BIN against products: %w", classify(err))
				}
				p.covers = &coversAnswer{prefix: r.BINPrefix, length: r.PANLength, ok: n > 0}
				return nil
			}})
	}
	if r.Device != "" {
		items = append(items, batchItem{sql: tx.bind(advanceCounterSQL), args: []any{r.Device, int64(r.Counter), micros(tx.now)},
			read: func(br pgx.BatchResults) error {
				tag, err := br.Exec()
				if err != nil {
					return fmt.Errorf("advance counter of device %q: %w", r.Device, classify(err))
				}
				p.counter = &counterAnswer{device: r.Device, counter: r.Counter, fresh: tag.RowsAffected() == 1}
				return nil
			}})
	}
	if r.Fingerprint != "" {
		items = append(items, batchItem{
			sql:  tx.bind("SELECT " + accountCols + " FROM accounts WHERE id = (SELECT account_id FROM cards WHERE fingerprint = ?) FOR UPDATE"),
			args: []any{r.Fingerprint},
			read: func(br pgx.BatchResults) error {
				a, err := scanAccount(br.QueryRow())
				switch err = classify(err); {
				case err == nil:
					tx.remember(a)
				case !errors.Is(err, ErrNotFound):
					return fmt.Errorf("lock account of card by fingerprint: %w", err)
				}
				return nil
			}})
		items = append(items, tx.cardItem(p, r))
	}
	reserve := r.Reserve
	if r.Fingerprint != "" {
		reserve = nil // drawn with the card (cardItem)
	}
	if len(r.ClearingRefs) > 0 {
		list, args := refList(r.ClearingRefs)
		items = append(items, batchItem{
			sql:  tx.bind("SELECT " + accountCols + " FROM accounts WHERE ref IN (" + list + ") ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"),
			args: args,
			read: func(br pgx.BatchResults) error {
				a, err := scanAccount(br.QueryRow())
				if err = classify(err); err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("lock free account among %q…: %w", r.ClearingRefs[0], err)
				}
				if err == nil {
					tx.remember(a)
				}
				p.clearing = &clearingAnswer{refs: r.ClearingRefs, id: a.ID, err: err}
				return nil
			}})
	}
	if len(reserve) > 0 {
		ids := make([]int64, len(reserve))
		items = append(items, batchItem{sql: "SELECT " + nextvals(reserve),
			read: func(br pgx.BatchResults) error {
				if err := br.QueryRow().Scan(ptrs(ids)...); err != nil {
					return fmt.Errorf("reserve ids of %q: %w", reserve, classify(err))
				}
				p.reserved(reserve, ids)
				return nil
			}})
	}
	if err := tx.pg.batch(ctx, items); err != nil {
		return err
	}
	tx.pre = p
	return nil
}

// nextvals returns the select list drawing the next id of each table.
func nextvals(tables []Table) string {
	var b strings.Builder
	for i, t := range tables {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("nextval(pg_get_serial_sequence('" + string(t) + "', 'id'))")
	}
	return b.String()
}

func ptrs(ids []int64) []any {
	dst := make([]any, len(ids))
	for i := range ids {
		dst[i] = &ids[i]
	}
	return dst
}

// reserved records ids drawn for tables.
func (p *prefetched) reserved(tables []Table, ids []int64) {
	p.ids = make(map[Table]int64, len(tables))
	for i, t := range tables {
		p.ids[t] = ids[i]
	}
}

// cardItem reads the card with its controls, the day's approved total
// when the controls set a daily limit, whether its product accepts the
// merchant, and the merchant's country, and draws the ids r reserves, in
// one statement.
func (tx *Tx) cardItem(p *prefetched, r AuthReads) batchItem {
	ids := make([]int64, len(r.Reserve))
	draw := ""
	if len(r.Reserve) > 0 {
		draw = ", " + nextvals(r.Reserve)
	}
	return batchItem{
		sql: tx.bind(`SELECT ` + prefixed("c.", cardCols) + `,
			k.card_id IS NOT NULL, COALESCE(k.locked, FALSE), COALESCE(k.per_txn_limit, 0), COALESCE(k.daily_limit, 0),
			COALESCE(k.blocked_mccs, ''), COALESCE(k.overseas_allowed, FALSE), COALESCE(k.ecommerce_allowed, FALSE),
			COALESCE(k.home_country, ''), COALESCE(k.updated_at, 0),
			CASE WHEN k.daily_limit > 0 THEN (SELECT CAST(COALESCE(SUM(a.amount), 0) AS BIGINT) FROM authorizations a
				WHERE a.card_id = c.id AND a.created_at >= ? AND a.created_at < ? AND a.status IN ('held', 'captured')) END,
			EXISTS (SELECT 1 FROM product_merchants pm WHERE pm.product_id = c.product_id AND pm.merchant_id = ?),
			(SELECT m.country FROM merchants m WHERE m.id = ?)` + draw + `
			FROM cards c LEFT JOIN card_controls k ON k.card_id = c.id WHERE c.fingerprint = ?`),
		args: []any{micros(r.DayFrom), micros(r.DayTo), r.MerchantID, r.MerchantID, r.Fingerprint},
		read: func(br pgx.BatchResults) error {
			var k Controls
			var hasControls, allows bool
			var mccs string
			var kat int64
			var total sql.NullInt64
			var country sql.NullString
			c, err := scanCard(withExtra{br.QueryRow(), append([]any{&hasControls, &k.Locked, &k.PerTxnLimit, &k.DailyLimit, &mccs,
				&k.OverseasAllowed, &k.ECommerceAllowed, &k.HomeCountry, &kat, &total, &allows, &country}, ptrs(ids)...)})
			err = classify(err)
			if errors.Is(err, ErrNotFound) {
				p.card = &cardAnswer{fingerprint: r.Fingerprint, err: err}
				return nil
			}
			if err != nil {
				return fmt.Errorf("read card by fingerprint: %w", err)
			}
			p.card = &cardAnswer{fingerprint: r.Fingerprint, card: c}
			if len(ids) > 0 {
				p.reserved(r.Reserve, ids)
			}
			if hasControls {
				k.CardID, k.UpdatedAt = c.ID, fromMicros(kat)
				if mccs != "" {
					k.BlockedMCCs = strings.Split(mccs, ",")
				}
			} else {
				k = DefaultControls(c.ID)
			}
			p.controls = &k
			if total.Valid {
				p.total = &totalAnswer{card: c.ID, from: r.DayFrom, to: r.DayTo, sum: total.Int64}
			}
			if r.MerchantID != "" {
				p.allows = &allowsAnswer{product: c.ProductID, merchant: r.MerchantID, ok: allows}
				if country.Valid {
					p.country = &countryAnswer{merchant: r.MerchantID, country: country.String}
				}
			}
			return nil
		}}
}

// prefixed qualifies each column of a column list with prefix.
func prefixed(prefix, cols string) string {
	return prefix + strings.ReplaceAll(cols, ", ", ", "+prefix)
}

// withExtra scans a row whose first columns a scan function knows and
// whose further columns go to extra.
type withExtra struct {
	row   interface{ Scan(...any) error }
	extra []any
}

func (w withExtra) Scan(dst ...any) error { return w.row.Scan(append(dst, w.extra...)...) }

// batchItem is one statement of a pipelined batch and what reads its
// result.
type batchItem struct {
	sql  string
	args []any
	read func(br pgx.BatchResults) error
}

// batch sends the lead and items as one batch and reads the results in
// order; the first failure is returned (the transaction is then aborted).
func (q *pgQuerier) batch(ctx context.Context, items []batchItem) error {
	if len(items) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	q.lead(b)
	for _, it := range items {
		b.Queue(it.sql, it.args...)
	}
	q.trips.Add(1)
	br := q.conn.SendBatch(ctx, b)
	err := q.readLead(br)
	for _, it := range items {
		if err != nil {
			break
		}
		err = it.read(br)
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = classify(cerr)
	}
	return err
}

// prefetched holds Prefetch's answers; each is used once, by the first
// call with matching arguments, then dropped.
type prefetched struct {
	auth     *authAnswer
	terminal *terminalAnswer
	covers   *coversAnswer
	counter  *counterAnswer
	card     *cardAnswer
	controls *Controls
	total    *totalAnswer
	allows   *allowsAnswer
	country  *countryAnswer
	clearing *clearingAnswer
	ids      map[Table]int64
}

type authAnswer struct {
	key string
	a   Authorization
	err error
}

type terminalAnswer struct {
	id  string
	t   Terminal
	err error
}

type coversAnswer struct {
	prefix string
	length int
	ok     bool
}

type counterAnswer struct {
	device  string
	counter uint64
	fresh   bool
}

type cardAnswer struct {
	fingerprint string
	card        Card
	err         error
}

type totalAnswer struct {
	card     int64
	from, to time.Time
	sum      int64
}

type allowsAnswer struct {
	product  int64
	merchant string
	ok       bool
}

type countryAnswer struct {
	merchant, country string
}

type clearingAnswer struct {
	refs []string
	id   int64
	err  error
}

func (p *prefetched) takeAuth(key string) (Authorization, error, bool) {
	if p == nil || p.auth == nil || p.auth.key != key {
		return Authorization{}, nil, false
	}
	a := p.auth
	p.auth = nil
	return a.a, a.err, true
}

func (p *prefetched) takeTerminal(id string) (Terminal, error, bool) {
	if p == nil || p.terminal == nil || p.terminal.id != id {
		return Terminal{}, nil, false
	}
	t := p.terminal
	p.terminal = nil
	return t.t, t.err, true
}

func (p *prefetched) takeCovers(prefix string, length int) (ok, found bool) {
	if p == nil || p.covers == nil || p.covers.prefix != prefix || p.covers.length != length {
		return false, false
	}
	c := p.covers
	p.covers = nil
	return c.ok, true
}

func (p *prefetched) takeCounter(device string, counter uint64) (fresh, ok bool) {
	if p == nil || p.counter == nil || p.counter.device != device || p.counter.counter != counter {
		return false, false
	}
	c := p.counter
	p.counter = nil
	return c.fresh, true
}

func (p *prefetched) takeCard(fingerprint string) (Card, error, bool) {
	if p == nil || p.card == nil || p.card.fingerprint != fingerprint {
		return Card{}, nil, false
	}
	c := p.card
	p.card = nil
	return c.card, c.err, true
}

func (p *prefetched) takeControls(cardID int64) (Controls, bool) {
	if p == nil || p.controls == nil || p.controls.CardID != cardID {
		return Controls{}, false
	}
	k := *p.controls
	p.controls = nil
	return k, true
}

func (p *prefetched) takeTotal(cardID int64, from, to time.Time) (int64, bool) {
	if p == nil || p.total == nil || p.total.card != cardID || !p.total.from.Equal(from) || !p.total.to.Equal(to) {
		return 0, false
	}
	t := p.total
	p.total = nil
	return t.sum, true
}

func (p *prefetched) takeAllows(productID int64, merchantID string) (ok, found bool) {
	if p == nil || p.allows == nil || p.allows.product != productID || p.allows.merchant != merchantID {
		return false, false
	}
	a := p.allows
	p.allows = nil
	return a.ok, true
}

func (p *prefetched) takeCountry(merchantID string) (string, bool) {
	if p == nil || p.country == nil || p.country.merchant != merchantID {
		return "", false
	}
	c := p.country
	p.country = nil
	return c.country, true
}

func (p *prefetched) takeClearing(refs []string) (int64, error, bool) {
	if p == nil || p.clearing == nil || !slices.Equal(p.clearing.refs, refs) {
		return 0, nil, false
	}
	c := p.clearing
	p.clearing = nil
	return c.id, c.err, true
}

// takeID returns the id reserved for the next row of table, or 0.
func (p *prefetched) takeID(table Table) int64 {
	if p == nil {
		return 0
	}
	id := p.ids[table]
	delete(p.ids, table)
	return id
}
