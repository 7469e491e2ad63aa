package store

import (
	"context"
	"fmt"
	"time"
)

// SignatureChunk is one received piece of a signature not yet complete
// (table signature_chunks, migration 0005).
type SignatureChunk struct {
	IdempotencyKey string // the sale's DE 123
	Offset, Total  int
	Format         int
	Data           []byte
	ReceivedAt     time.Time
}

// Signature is a cardholder's complete signature, linked to its
// authorization (table signatures, migration 0005). No card data.
type Signature struct {
	ID              int64
	AuthorizationID int64
	IdempotencyKey  string // the sale's DE 123
	GatewayID       string
	TerminalID      string
	STAN            string
	LocalTime       string
	Format          int
	Data            []byte
	ReceivedAt      time.Time
}

// PutSignatureChunk stores c; a chunk already stored at the same key and
// offset is kept as it is (a repeat changes nothing).
func (tx *Tx) PutSignatureChunk(ctx context.Context, c SignatureChunk) error {
	_, err := tx.exec(ctx, `INSERT INTO signature_chunks (idempotency_key, chunk_offset, total, format, data, received_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key, chunk_offset) DO NOTHING`,
		c.IdempotencyKey, c.Offset, c.Total, c.Format, c.Data, micros(orNow(c.ReceivedAt, tx.now)))
	if err != nil {
		return fmt.Errorf("store signature chunk at %d: %w", c.Offset, err)
	}
	return nil
}

// SignatureChunks returns the stored chunks of the signature with this key,
// by offset.
func (tx *Tx) SignatureChunks(ctx context.Context, key string) ([]SignatureChunk, error) {
	rows, err := tx.query(ctx, `SELECT idempotency_key, chunk_offset, total, format, data, received_at
		FROM signature_chunks WHERE idempotency_key = ? ORDER BY chunk_offset`, key)
	if err != nil {
		return nil, fmt.Errorf("read signature chunks: %w", err)
	}
	defer rows.Close()
	var out []SignatureChunk
	for rows.Next() {
		var c SignatureChunk
		var at int64
		if err := rows.Scan(&c.IdempotencyKey, &c.Offset, &c.Total, &c.Format, &c.Data, &at); err != nil {
			return nil, fmt.Errorf("read signature chunks: %w", classify(err))
		}
		c.ReceivedAt = fromMicros(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signature chunks: %w", classify(err))
	}
	return out, nil
}

// DeleteSignatureChunks removes the stored chunks of the signature with
// this key.
func (tx *Tx) DeleteSignatureChunks(ctx context.Context, key string) error {
	if _, err := tx.exec(ctx, `DELETE FROM signature_chunks WHERE idempotency_key = ?`, key); err != nil {
		return fmt.Errorf("delete signature chunks: %w", err)
	}
	return nil
}

// InsertSignature stores a complete signature and returns its id; a second
// signature for the same authorization or key fails with ErrDuplicate (and,
// on PostgreSQL, aborts the transaction).
func (tx *Tx) InsertSignature(ctx context.Context, s Signature) (int64, error) {
	id, err := tx.insertID(ctx, `INSERT INTO signatures (authorization_id, idempotency_key, gateway_id, terminal_id,
		stan, local_time, format, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.AuthorizationID, s.IdempotencyKey, s.GatewayID, s.TerminalID, s.STAN, s.LocalTime, s.Format, s.Data,
		micros(orNow(s.ReceivedAt, tx.now)))
	if err != nil {
		return 0, fmt.Errorf("insert signature of authorization %d: %w", s.AuthorizationID, err)
	}
	return id, nil
}

const sigCols = `id, authorization_id, idempotency_key, gateway_id, terminal_id, stan, local_time, format, data, received_at`

func scanSignature(sc interface{ Scan(...any) error }) (Signature, error) {
	var s Signature
	var at int64
	if err := sc.Scan(&s.ID, &s.AuthorizationID, &s.IdempotencyKey, &s.GatewayID, &s.TerminalID, &s.STAN,
		&s.LocalTime, &s.Format, &s.Data, &at); err != nil {
		return Signature{}, err
	}
	s.ReceivedAt = fromMicros(at)
	return s, nil
}

// SignatureByKey returns the signature of the sale with this idempotency
// key, or ErrNotFound.
func (tx *Tx) SignatureByKey(ctx context.Context, key string) (Signature, error) {
	s, err := scanSignature(tx.queryRow(ctx, "SELECT "+sigCols+" FROM signatures WHERE idempotency_key = ?", key))
	if err != nil {
		return Signature{}, fmt.Errorf("read signature by idempotency key: %w", err)
	}
	return s, nil
}

// SignatureByAuthorization returns the signature of the authorization with
// this id, or ErrNotFound.
func (tx *Tx) SignatureByAuthorization(ctx context.Context, authorizationID int64) (Signature, error) {
	s, err := scanSignature(tx.queryRow(ctx, "SELECT "+sigCols+" FROM signatures WHERE authorization_id = ?", authorizationID))
	if err != nil {
		return Signature{}, fmt.Errorf("read signature of authorization %d: %w", authorizationID, err)
	}
	return s, nil
}
