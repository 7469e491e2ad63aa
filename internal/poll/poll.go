// Package poll is the tests' one bounded wait on a condition that no event
// announces: a counter in a test double, a row in a database, a metric on
// another process's /metrics. Where the code under test announces what
// happened (a channel, a Watch, a WaitUp) or runs on timers alone, tests
// wait on that or use testing/synctest instead.
//
// It is imported by tests only.
package poll

import (
	"testing"
	"time"
)

// First and Max bound the pause between two checks: the first pause is
// First, each next one doubles up to Max, so a condition that holds soon is
// seen soon and a slow one costs little CPU.
const (
	First = time.Millisecond
	Max   = 50 * time.Millisecond
)

// Until calls cond until it returns true. When limit passes first it fails
// t with "timed out after LIMIT waiting for WHAT". cond runs on the calling
// goroutine, never after Until has returned.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(limit, cond) {
		t.Fatalf("timed out after %s waiting for %s", limit, what)
	}
}

// Wait calls cond until it returns true or limit passes, and reports
// whether cond held: for a caller that adds its own context to the
// failure. cond is called at least once, and once more after limit has
// passed, so a condition that became true during the last pause counts.
func Wait(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	pause := First
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		timer.Reset(pause)
		<-timer.C
		pause = min(2*pause, Max)
	}
	return true
}
