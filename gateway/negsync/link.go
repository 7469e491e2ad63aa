package negsync

import (
	"context"

	"github.com/posgate/posgate/protocol/link"
)

// Uplink carries one request to the center and returns its response.
// *link.Client satisfies it.
type Uplink interface {
	RoundTrip(ctx context.Context, req []byte) ([]byte, error)
}

// LinkWatcher reports the link's state and its changes. *link.Client
// satisfies it.
type LinkWatcher interface {
	Watch() (link.State, <-chan struct{})
}

// waitUp blocks until lw reports Up or ctx ends (returning ctx.Err()).
func waitUp(ctx context.Context, lw LinkWatcher) error {
	for {
		s, ch := lw.Watch()
		if s == link.Up {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
