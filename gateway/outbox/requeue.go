package outbox

import (
	"context"
)

// Uplink carries one request to the center and returns its response.
// *link.Client satisfies it.
type Uplink interface {
	RoundTrip(ctx context.Context, req []byte) ([]byte, error)
}

// requeue puts the items loaded from the store whose id is not known
// (queued since the start) in front of q, in their stored order, and
// reports how many it added.
func requeue[T any](q, loaded []T, known map[uint64]bool, id func(T) uint64) ([]T, int) {
	var add []T
	for _, x := range loaded {
		if !known[id(x)] {
			add = append(add, x)
		}
	}
	return append(add, q...), len(add)
}
