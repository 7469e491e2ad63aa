// Package negsync pulls the negative file from the center over the link
// and applies it to the offline store (docs/offline.md).
package negsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/negfile"
)

// Uplink carries one request to the center and returns its response.
// *link.Client satisfies it.
type Uplink interface {
	RoundTrip(ctx context.Context, req []byte) ([]byte, error)
}

// NegStore is the part of the offline store the negative-file sync uses.
// *offline.Store satisfies it.
type NegStore interface {
	Negative() (offline.NegativeState, error)
	ApplyFileAction(functionCode string, de72 []byte) (offline.Progress, error)
	Confirm(version uint64) (bool, error)
}

// Sentinel errors of a negative-file sync pass.
var (
	// ErrNegFileRefused reports a 1314 whose action code is not 000: the
	// center could not read the inquiry (904) or cannot serve the
	// gateway's version (914, e.g. the gateway is ahead of the center).
	ErrNegFileRefused = errors.New("gateway: center refused the negative-file inquiry")
	// ErrNegFileStuck reports a pass that made no progress: the center's
	// chunks kept being refused by the store.
	ErrNegFileStuck = errors.New("gateway: negative-file sync makes no progress")
)

// NegFileSync pulls the negative file from the center: it sends a 1304
// inquiry (DE 101 NEGFILE, DE 24 304, DE 72 "NF1? <have> [<session>]",
// docs/offline.md) and applies each chunk the 1314 carries until the center
// says the gateway is current. A cut at any point leaves the previous
// version in force; the next pass resumes the staged session.
//
// Run owns its goroutine; Sync may be called concurrently with it but passes
// should not overlap (they would only repeat each other's chunks).
type NegFileSync struct {
	Store     NegStore
	Uplink    Uplink
	GatewayID string
	Logger    *slog.Logger
	// MaxChunks bounds one pass (a safety net; the center sends what the
	// gateway lacks). Default 1,000,000.
	MaxChunks int

	stan atomic.Uint32
}

// Run syncs at every sign-on and then every poll while the link is up,
// until ctx ends.
func (s *NegFileSync) Run(ctx context.Context, lw link.Watcher, poll time.Duration) {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	for {
		if err := link.WaitUp(ctx, lw); err != nil {
			return
		}
		if _, err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.Logger.Warn("negative-file sync incomplete; the version in force stays", "reason", err)
		}
		_, changed := lw.Watch()
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-changed:
			t.Stop()
		}
	}
}

// Sync runs one pass: inquiries and chunks until the center reports the
// gateway current (then the version in force is confirmed fresh), an error,
// or ctx ends. It returns the negative file's state after the pass.
func (s *NegFileSync) Sync(ctx context.Context) (offline.NegativeState, error) {
	maxChunks := s.MaxChunks
	if maxChunks <= 0 {
		maxChunks = 1_000_000
	}
	refusals := 0
	for i := 0; i < maxChunks; i++ {
		st, err := s.Store.Negative()
		if err != nil {
			return st, fmt.Errorf("read negative-file state: %w", err)
		}
		req, err := s.inquiry(st)
		if err != nil {
			return st, err
		}
		raw, err := s.Uplink.RoundTrip(ctx, req)
		if err != nil {
			return st, fmt.Errorf("negative-file inquiry: %w", err)
		}
		ans, err := negfile.ParseAnswer(raw)
		if err != nil {
			return st, fmt.Errorf("negative-file answer: %w", err)
		}
		if ans.Action != iso93.ActionApproved {
			return st, fmt.Errorf("%w: action %s", ErrNegFileRefused, ans.Action)
		}
		if len(ans.DataRecord) == 0 {
			// Current: the version in force is the center's.
			if st.Loaded {
				if _, err := s.Store.Confirm(st.Version); err != nil {
					return st, fmt.Errorf("confirm negative-file version %d: %w", st.Version, err)
				}
			}
			return s.Store.Negative()
		}
		p, err := s.Store.ApplyFileAction(ans.FunctionCode, ans.DataRecord)
		if err != nil {
			// Refused chunks change nothing; the next inquiry reports the
			// state again and the center resumes or restarts. Twice in a
			// row without progress ends the pass.
			refusals++
			s.Logger.Warn("negative-file chunk refused", "reason", err)
			if refusals >= 2 {
				return st, fmt.Errorf("%w: %w", ErrNegFileStuck, err)
			}
			continue
		}
		refusals = 0
		if p.Complete {
			s.Logger.Info("negative file updated", "version", p.Version)
		}
	}
	st, _ := s.Store.Negative()
	return st, fmt.Errorf("%w: more than %d chunks in one pass", ErrNegFileStuck, maxChunks)
}

// NegInquiry returns the inquiry a gateway in state st sends in its 1304
// (negfile.Inquiry, docs/offline.md): the version in force, if any, and the
// staged sync session so the center can resume it.
func NegInquiry(st offline.NegativeState) negfile.Inquiry {
	q := negfile.Inquiry{Loaded: st.Loaded, Have: st.Version}
	if s := st.Session; s != nil {
		q.Session = &negfile.Session{Snapshot: s.Snapshot, Base: s.Base, Version: s.Version, Total: s.Total, Next: s.Next}
	}
	return q
}

func (s *NegFileSync) inquiry(st offline.NegativeState) ([]byte, error) {
	now := time.Now()
	return negfile.PackInquiry(iso93.Trace{
		TransmissionTime: iso93.TransmissionTime(now),
		STAN:             iso93.FormatSTAN(iso93.NextSTAN(s.stan.Add(1))),
		LocalTime:        iso93.LocalTime(now),
		IdempotencyKey:   fmt.Sprintf("NFQ-%s-%d", s.GatewayID, now.UnixNano()),
		GatewayID:        s.GatewayID,
	}, NegInquiry(st))
}
