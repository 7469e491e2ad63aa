package poll_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posgate/posgate/internal/poll"
)

func TestWait(t *testing.T) {
	for _, tc := range []struct {
		name      string
		trueAfter int // calls of cond before it holds; -1 never
		want      bool
	}{
		{"holds_at_once", 0, true},
		{"holds_later", 5, true},
		{"never_holds", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				start := time.Now()
				got := poll.Wait(time.Second, func() bool {
					calls++
					return tc.trueAfter >= 0 && calls > tc.trueAfter
				})
				took := time.Since(start)
				if got != tc.want {
					t.Fatalf("Wait = %v after %d calls, want %v", got, calls, tc.want)
				}
				if !tc.want && took < time.Second {
					t.Fatalf("gave up after %s, before the 1s limit", took)
				}
				if took > time.Second+poll.Max {
					t.Fatalf("took %s, past the limit and one pause", took)
				}
				if tc.want && calls != tc.trueAfter+1 {
					t.Fatalf("cond called %d times, want %d", calls, tc.trueAfter+1)
				}
			})
		})
	}
}

// fatalTB records Fatalf and stops the goroutine as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestUntilFailsWithWhat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fatalTB{TB: t}
		func() {
			defer func() {
				if r := recover(); r != f {
					t.Fatalf("Until did not fail: %v", r)
				}
			}()
			poll.Until(f, 2*time.Second, "the queue to drain", func() bool { return false })
		}()
		if want := "timed out after 2s waiting for the queue to drain"; !strings.Contains(f.msg, want) {
			t.Fatalf("failure %q, want %q", f.msg, want)
		}
	})
}

func TestUntilReturnsWhenCondHolds(t *testing.T) {
	n := 0
	poll.Until(t, time.Minute, "three calls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times", n)
	}
}
