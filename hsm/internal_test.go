package hsm

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/posgate/posgate/p2pe/dukpt"
)

// TestOnPath checks onPath against the derivation steps of random
// counters: w is on c's path exactly when it is one of c's steps.
func TestOnPath(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		c := r.Uint32() >> r.IntN(32)
		if c == 0 {
			continue
		}
		steps := dukpt.AESDerivationSteps(c)
		cands := append(slices.Clone(steps), r.Uint32(), c+1, c-1, c<<1, 0)
		for _, w := range cands {
			if got, want := onPath(w, c), slices.Contains(steps, w); got != want {
				t.Fatalf("onPath(%08X, %08X) = %v, want %v", w, c, got, want)
			}
		}
	}
}
