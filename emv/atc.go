package emv

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ATC guard errors.
var (
	// ErrATCReplayed means the card already presented this ATC online:
	// the cryptogram is a replay.
	ErrATCReplayed = errors.New("emv: ATC replayed")
	// ErrATCRegressed means the ATC is lower than one the card already
	// presented online.
	ErrATCRegressed = errors.New("emv: ATC lower than the last one seen")
	// ErrATCJump means the ATC moved further ahead than the guard's
	// MaxGap allows (a cloned or manipulated card, or a counter near its
	// end).
	ErrATCJump = errors.New("emv: ATC jumped too far ahead")
)

// ATCGuard is the issuer's check that a card's application transaction
// counter only moves forward across online authorisations. The center
// implements it on its database; MemoryATCGuard is an in-memory version
// for tests and the simulator.
//
// Contract: call Accept only after the ARQC verified (so a forged
// cryptogram cannot burn counter values) and before the approval is
// answered. Accept atomically compares atc with the highest ATC accepted
// for card and, when atc is higher (and within any gap the implementation
// enforces), records it and returns nil; otherwise it records nothing and
// returns an error wrapping ErrATCReplayed (equal), ErrATCRegressed
// (lower) or ErrATCJump. card is an opaque key naming the card
// application, such as the PAN fingerprint with the PAN sequence number;
// never a clear PAN. Offline transactions reported later in advices carry
// lower ATCs legitimately: they are not for Accept. Implementations must
// be safe for concurrent use and must not hold locks across I/O beyond
// their own store's transaction.
type ATCGuard interface {
	Accept(ctx context.Context, card string, atc uint16) error
}

// MemoryATCGuard is an in-memory ATCGuard. The zero value is ready: no
// gap limit. It is safe for concurrent use; it forgets everything when
// the process ends.
type MemoryATCGuard struct {
	// MaxGap, when non-zero, refuses an ATC more than MaxGap above the
	// last one accepted for the card (ErrATCJump). The first ATC of a
	// card is always accepted.
	MaxGap uint16

	mu   sync.Mutex
	last map[string]uint16
}

// Accept implements ATCGuard.
func (g *MemoryATCGuard) Accept(ctx context.Context, card string, atc uint16) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("accept ATC: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = map[string]uint16{}
	}
	prev, seen := g.last[card]
	switch {
	case !seen:
	case atc == prev:
		return fmt.Errorf("accept ATC %d: %w", atc, ErrATCReplayed)
	case atc < prev:
		return fmt.Errorf("accept ATC %d after %d: %w", atc, prev, ErrATCRegressed)
	case g.MaxGap != 0 && atc-prev > g.MaxGap:
		return fmt.Errorf("accept ATC %d after %d (gap limit %d): %w", atc, prev, g.MaxGap, ErrATCJump)
	}
	g.last[card] = atc
	return nil
}
