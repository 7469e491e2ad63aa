package store

import (
	"context"
	"fmt"
	"time"
)

// BINRoute sends the PANs of one BIN range to a destination: OnUs or the
// name of a brand host. BINLow and BINHigh are equal-length digit prefixes
// of 6 to 11 digits; a PAN matches when it has PANLength digits and its
// prefix of that length lies in [BINLow, BINHigh]. StandInTxnLimit and
// StandInDailyLimit bound what the center approves in stand-in for one card
// of the range when its host does not answer: per transaction and per card
// and local day, in minor units (zero means no stand-in).
type BINRoute struct {
	ID                int64
	BINLow, BINHigh   string
	PANLength         int
	Destination       string
	StandInTxnLimit   int64
	StandInDailyLimit int64
	CreatedAt         time.Time
}

// OnUs is the BINRoute destination of cards the center issues itself.
const OnUs = "on-us"

// RoutedAuthorization is the routing record of an authorization that went
// to (or was stood in for) a brand host. Fingerprint identifies the card
// for the stand-in daily limit; LocalDay is the transaction's YYMMDD;
// HostAction is the host's DE 39, empty when the host did not answer.
type RoutedAuthorization struct {
	AuthorizationID int64
	Host            string
	Fingerprint     string
	MaskedPAN       string
	LocalDay        string
	StandIn         bool
	HostAction      string
	CreatedAt       time.Time
}

// OutboxKind is what a host outbox message is.
type OutboxKind string

// Outbox kinds.
const (
	OutboxReversal OutboxKind = "reversal" // a 1420, repeated as 1421
	OutboxAdvice   OutboxKind = "advice"   // a 1220, repeated as 1221
)

// OutboxState is the delivery state of a host outbox message.
type OutboxState string

// Outbox states.
const (
	OutboxPending OutboxState = "pending"
	OutboxDone    OutboxState = "done"   // the host answered
	OutboxFailed  OutboxState = "failed" // attempts exhausted; an operator must act
	// OutboxCancelled marks a message that was queued as a safeguard and
	// turned out not to be needed (the host answered in time).
	OutboxCancelled OutboxState = "cancelled"
)

// OutboxMessage is a reversal or advice owed to a brand host. Message is
// the packed first send without DE 2; PANSealed, when set, is the PAN
// sealed under the token-vault key, added as DE 2 at each send.
type OutboxMessage struct {
	ID              int64
	AuthorizationID int64
	Host            string
	Kind            OutboxKind
	Message         []byte
	PANSealed       []byte
	State           OutboxState
	Attempts        int
	NextAt          time.Time
	LastResult      string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// InsertBINRoute adds a BIN route and returns its id. A route with the same
// range and PAN length fails with ErrDuplicate.
func (tx *Tx) InsertBINRoute(ctx context.Context, r BINRoute) (int64, error) {
	id, err := tx.insertID(ctx, `INSERT INTO bin_routes
		(bin_low, bin_high, pan_length, destination, standin_txn_limit, standin_daily_limit, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.BINLow, r.BINHigh, r.PANLength, r.Destination, r.StandInTxnLimit, r.StandInDailyLimit,
		micros(orNow(r.CreatedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("insert BIN route %s-%s/%d: %w", r.BINLow, r.BINHigh, r.PANLength, err)
	}
	return id, nil
}

// DeleteBINRoute removes a BIN route, or returns ErrNotFound.
func (tx *Tx) DeleteBINRoute(ctx context.Context, id int64) error {
	n, err := tx.exec(ctx, "DELETE FROM bin_routes WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete BIN route %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete BIN route %d: %w", id, ErrNotFound)
	}
	return nil
}

const routeCols = "id, bin_low, bin_high, pan_length, destination, standin_txn_limit, standin_daily_limit, created_at"

func scanRoute(sc interface{ Scan(...any) error }) (BINRoute, error) {
	var r BINRoute
	var at int64
	if err := sc.Scan(&r.ID, &r.BINLow, &r.BINHigh, &r.PANLength, &r.Destination, &r.StandInTxnLimit,
		&r.StandInDailyLimit, &at); err != nil {
		return BINRoute{}, err
	}
	r.CreatedAt = fromMicros(at)
	return r, nil
}

// BINRoutes returns every BIN route ordered by range.
func (tx *Tx) BINRoutes(ctx context.Context) ([]BINRoute, error) {
	rows, err := tx.query(ctx, "SELECT "+routeCols+" FROM bin_routes ORDER BY bin_low, bin_high, pan_length, id")
	if err != nil {
		return nil, fmt.Errorf("list BIN routes: %w", err)
	}
	defer rows.Close()
	var out []BINRoute
	for rows.Next() {
		r, err := scanRoute(rows)
		if err != nil {
			return nil, fmt.Errorf("list BIN routes: %w", classify(err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list BIN routes: %w", classify(err))
	}
	return out, nil
}

// RouteFor returns the BIN route of a PAN given its first digits (prefix,
// 6 to 11 of them; never pass the whole PAN) and its length: the matching
// route with the longest BIN, then the narrowest range. It returns
// ErrNotFound when no route matches. On-us products are not consulted;
// see ProductCoversBIN.
func (tx *Tx) RouteFor(ctx context.Context, prefix string, panLength int) (BINRoute, error) {
	r, err := scanRoute(tx.queryRow(ctx, "SELECT "+routeCols+` FROM bin_routes
		WHERE pan_length = ? AND length(bin_low) <= ?
		  AND substr(CAST(? AS TEXT), 1, length(bin_low)) BETWEEN bin_low AND bin_high
		ORDER BY length(bin_low) DESC, bin_high, bin_low DESC, id LIMIT 1`,
		panLength, len(prefix), prefix))
	if err != nil {
		return BINRoute{}, fmt.Errorf("find BIN route: %w", err)
	}
	return r, nil
}

// ProductCoversBIN reports whether a card product of the center issues
// PANs of panLength digits starting with prefix (6 to 11 digits; never pass
// the whole PAN): such cards are on-us whatever the BIN routes say.
func (tx *Tx) ProductCoversBIN(ctx context.Context, prefix string, panLength int) (bool, error) {
	if ok, found := tx.pre.takeCovers(prefix, panLength); found {
		return ok, nil
	}
	var n int64
	err := tx.queryRow(ctx, productCoversBINSQL, panLength, len(prefix), prefix).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("match BIN against products: %w", err)
	}
	return n > 0, nil
}

const productCoversBINSQL = `SELECT COUNT(*) FROM card_products
	WHERE pan_length = ? AND length(bin_low) <= ?
	  AND substr(CAST(? AS TEXT), 1, length(bin_low)) BETWEEN bin_low AND bin_high`

// InsertRoutedAuthorization adds the routing record of an authorization.
func (tx *Tx) InsertRoutedAuthorization(ctx context.Context, r RoutedAuthorization) error {
	if _, err := tx.exec(ctx, `INSERT INTO routed_authorizations
		(authorization_id, host, fingerprint, masked_pan, local_day, stand_in, host_action, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.AuthorizationID, r.Host, r.Fingerprint, r.MaskedPAN, r.LocalDay, boolInt(r.StandIn), r.HostAction,
		micros(orNow(r.CreatedAt, tx.now))); err != nil {
		return fmt.Errorf("insert routing record of authorization %d: %w", r.AuthorizationID, err)
	}
	return nil
}

// UpdateRoutedAuthorization stores r's StandIn and HostAction.
func (tx *Tx) UpdateRoutedAuthorization(ctx context.Context, r RoutedAuthorization) error {
	n, err := tx.exec(ctx, "UPDATE routed_authorizations SET stand_in = ?, host_action = ? WHERE authorization_id = ?",
		boolInt(r.StandIn), r.HostAction, r.AuthorizationID)
	if err != nil {
		return fmt.Errorf("update routing record of authorization %d: %w", r.AuthorizationID, err)
	}
	if n == 0 {
		return fmt.Errorf("update routing record of authorization %d: %w", r.AuthorizationID, ErrNotFound)
	}
	return nil
}

// RoutedAuthorization returns the routing record of an authorization, or
// ErrNotFound when it was decided on-us.
func (tx *Tx) RoutedAuthorization(ctx context.Context, authorizationID int64) (RoutedAuthorization, error) {
	var r RoutedAuthorization
	var standIn int64
	var at int64
	err := tx.queryRow(ctx, `SELECT authorization_id, host, fingerprint, masked_pan, local_day, stand_in, host_action, created_at
		FROM routed_authorizations WHERE authorization_id = ?`, authorizationID).
		Scan(&r.AuthorizationID, &r.Host, &r.Fingerprint, &r.MaskedPAN, &r.LocalDay, &standIn, &r.HostAction, &at)
	if err != nil {
		return RoutedAuthorization{}, fmt.Errorf("read routing record of authorization %d: %w", authorizationID, err)
	}
	r.StandIn, r.CreatedAt = standIn != 0, fromMicros(at)
	return r, nil
}

// StandInTotal returns the sum of the stand-in approvals still standing
// (approved, not reversed) for the card with the fingerprint on the local
// day (YYMMDD).
func (tx *Tx) StandInTotal(ctx context.Context, fingerprint, localDay string) (int64, error) {
	var sum int64
	err := tx.queryRow(ctx, `SELECT CAST(COALESCE(SUM(a.amount), 0) AS BIGINT)
		FROM routed_authorizations r JOIN authorizations a ON a.id = r.authorization_id
		WHERE r.fingerprint = ? AND r.local_day = ? AND r.stand_in = 1
		  AND a.action_code = '000' AND a.status <> 'reversed'`, fingerprint, localDay).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum stand-in approvals: %w", err)
	}
	return sum, nil
}

// SetAuthorizationAnswer stores the answer of an authorization decided in
// two steps (recorded as in progress, then answered): its action code,
// approval code, status, hold and transfer.
func (tx *Tx) SetAuthorizationAnswer(ctx context.Context, a Authorization) error {
	n, err := tx.exec(ctx, `UPDATE authorizations SET action_code = ?, approval_code = ?, status = ?, hold_id = ?,
		transfer_id = ?, updated_at = ? WHERE id = ?`,
		a.ActionCode, a.ApprovalCode, string(a.Status), nullInt(a.HoldID), nullInt(a.TransferID), micros(tx.now), a.ID)
	if err != nil {
		return fmt.Errorf("answer authorization %d: %w", a.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("answer authorization %d: %w", a.ID, ErrNotFound)
	}
	return nil
}

// AuthorizationsInStatus returns up to limit authorizations with the
// status last updated before t, oldest first.
func (tx *Tx) AuthorizationsInStatus(ctx context.Context, status AuthStatus, t time.Time, limit int) ([]Authorization, error) {
	rows, err := tx.query(ctx, "SELECT "+authCols+" FROM authorizations WHERE status = ? AND updated_at < ? ORDER BY id LIMIT ?",
		string(status), micros(t), limit)
	if err != nil {
		return nil, fmt.Errorf("list %s authorizations: %w", status, err)
	}
	defer rows.Close()
	var out []Authorization
	for rows.Next() {
		a, err := scanAuth(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s authorizations: %w", status, classify(err))
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s authorizations: %w", status, classify(err))
	}
	return out, nil
}

// InsertOutbox queues a message for a brand host and returns its id. State
// zero means OutboxPending and NextAt zero means now.
func (tx *Tx) InsertOutbox(ctx context.Context, m OutboxMessage) (int64, error) {
	if m.State == "" {
		m.State = OutboxPending
	}
	at := micros(orNow(m.CreatedAt, tx.now))
	id, err := tx.insertID(ctx, `INSERT INTO host_outbox
		(authorization_id, host, kind, message, pan_sealed, state, attempts, next_at, last_result, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.AuthorizationID, m.Host, string(m.Kind), m.Message, m.PANSealed, string(m.State), m.Attempts,
		micros(orNow(m.NextAt, tx.now)), m.LastResult, at, at)
	if err != nil {
		return 0, fmt.Errorf("queue %s for host %q: %w", m.Kind, m.Host, err)
	}
	return id, nil
}

const outboxCols = "id, authorization_id, host, kind, message, pan_sealed, state, attempts, next_at, last_result, created_at, updated_at"

func scanOutbox(sc interface{ Scan(...any) error }) (OutboxMessage, error) {
	var m OutboxMessage
	var kind, state string
	var next, at, up int64
	if err := sc.Scan(&m.ID, &m.AuthorizationID, &m.Host, &kind, &m.Message, &m.PANSealed, &state, &m.Attempts,
		&next, &m.LastResult, &at, &up); err != nil {
		return OutboxMessage{}, err
	}
	m.Kind, m.State = OutboxKind(kind), OutboxState(state)
	m.NextAt, m.CreatedAt, m.UpdatedAt = fromMicros(next), fromMicros(at), fromMicros(up)
	return m, nil
}

// DueOutbox returns up to limit pending outbox messages due at t, oldest
// first.
func (tx *Tx) DueOutbox(ctx context.Context, t time.Time, limit int) ([]OutboxMessage, error) {
	rows, err := tx.query(ctx, "SELECT "+outboxCols+" FROM host_outbox WHERE state = 'pending' AND next_at <= ? ORDER BY id LIMIT ?",
		micros(t), limit)
	if err != nil {
		return nil, fmt.Errorf("list due outbox messages: %w", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("list due outbox messages: %w", classify(err))
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list due outbox messages: %w", classify(err))
	}
	return out, nil
}

// OutboxFor returns the outbox messages of an authorization, oldest first.
func (tx *Tx) OutboxFor(ctx context.Context, authorizationID int64) ([]OutboxMessage, error) {
	rows, err := tx.query(ctx, "SELECT "+outboxCols+" FROM host_outbox WHERE authorization_id = ? ORDER BY id", authorizationID)
	if err != nil {
		return nil, fmt.Errorf("list outbox of authorization %d: %w", authorizationID, err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("list outbox of authorization %d: %w", authorizationID, classify(err))
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list outbox of authorization %d: %w", authorizationID, classify(err))
	}
	return out, nil
}

// ClaimOutbox moves a pending message's next attempt to next if it is still
// due at now (next_at <= now), and reports whether this caller won it: of
// several center nodes polling one database, exactly one claims each
// attempt.
func (tx *Tx) ClaimOutbox(ctx context.Context, id int64, now, next time.Time) (bool, error) {
	n, err := tx.exec(ctx, `UPDATE host_outbox SET next_at = ?, attempts = attempts + 1, updated_at = ?
		WHERE id = ? AND state = 'pending' AND next_at <= ?`, micros(next), micros(tx.now), id, micros(now))
	if err != nil {
		return false, fmt.Errorf("claim outbox message %d: %w", id, err)
	}
	return n == 1, nil
}

// SetOutboxState records the outcome of an attempt: the new state and a
// short result (an action code or error class, never card data).
func (tx *Tx) SetOutboxState(ctx context.Context, id int64, state OutboxState, result string) error {
	n, err := tx.exec(ctx, "UPDATE host_outbox SET state = ?, last_result = ?, updated_at = ? WHERE id = ?",
		string(state), result, micros(tx.now), id)
	if err != nil {
		return fmt.Errorf("set outbox message %d %s: %w", id, state, err)
	}
	if n == 0 {
		return fmt.Errorf("set outbox message %d: %w", id, ErrNotFound)
	}
	return nil
}

// RescheduleOutbox sets when a pending message is next due.
func (tx *Tx) RescheduleOutbox(ctx context.Context, id int64, next time.Time) error {
	n, err := tx.exec(ctx, "UPDATE host_outbox SET next_at = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
		micros(next), micros(tx.now), id)
	if err != nil {
		return fmt.Errorf("reschedule outbox message %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("reschedule outbox message %d: %w", id, ErrNotFound)
	}
	return nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
