package store

import (
	"context"
	"fmt"
)

// Gateway returns the registered gateway with the given id, or ErrNotFound.
func (tx *Tx) Gateway(ctx context.Context, id string) (Gateway, error) {
	var g Gateway
	var at int64
	if err := tx.queryRow(ctx, "SELECT id, created_at FROM gateways WHERE id = ?", id).Scan(&g.ID, &at); err != nil {
		return Gateway{}, fmt.Errorf("read gateway %q: %w", id, err)
	}
	g.CreatedAt = fromMicros(at)
	return g, nil
}
