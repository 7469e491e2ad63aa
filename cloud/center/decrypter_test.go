package center

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/p2pe/cardblock"
)

// fakeOpener answers every block with err.
type fakeOpener struct{ err error }

func (f fakeOpener) OpenCardBlock(context.Context, []byte) (cardblock.ClearData, string, uint64, error) {
	return cardblock.ClearData{}, "dev", 7, f.err
}

func TestSwitchDecrypterMapsMalformedBlocks(t *testing.T) {
	fault := errors.New("token unavailable")
	for _, tc := range []struct {
		name          string
		err           error
		wantMalformed bool
	}{
		{"opened", nil, false},
		{"malformed", fmt.Errorf("open card block: %w: %w", cardblock.ErrMalformed, cardblock.ErrTruncated), true},
		{"fault", fmt.Errorf("open card block: %w", fault), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, device, counter, err := switchDecrypter{fakeOpener{tc.err}}.OpenCardBlock(context.Background(), nil)
			if got := errors.Is(err, authz.ErrMalformedBlock); got != tc.wantMalformed {
				t.Fatalf("errors.Is(%v, authz.ErrMalformedBlock) = %t, want %t", err, got, tc.wantMalformed)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want it to wrap %v", err, tc.err)
			}
			if device != "dev" || counter != 7 {
				t.Fatalf("device %q counter %d, want the vault's answer", device, counter)
			}
		})
	}
}
