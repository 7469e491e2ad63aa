package offline_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/offlinetest"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/negfile"
)

// testKey is the software sealing key of these tests (not a real key).
var testKey = []byte(offlinetest.Key)

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func softSealer(testing.TB) offline.Sealer { return offlinetest.KeySealer() }

type opts struct {
	path   string
	policy standin.Policy
	clock  *clock
	sealer offline.Sealer
}

// open opens a store in t.TempDir (or o.path), sealed under testKey
// unless o.sealer is set, and closes it at cleanup.
func open(t testing.TB, o opts) (*offline.Store, string) {
	t.Helper()
	if o.path == "" {
		o.path = filepath.Join(t.TempDir(), "offline.db")
	}
	if o.clock == nil {
		o.clock = newClock()
	}
	st := offlinetest.Open(t, offline.Config{Path: o.path, Sealer: o.sealer, Policy: o.policy, Now: o.clock.Now})
	return st, o.path
}

// fp returns a deterministic test fingerprint (derived from no PAN).
func fp(i int) string {
	s := sha256.Sum256([]byte(fmt.Sprint("offline-test-", i)))
	return hex.EncodeToString(s[:16])
}

func fps(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fp(i))
	}
	slices.Sort(out)
	return out
}

// chunks splits a session into DE 72-sized chunks.
func chunks(t testing.TB, op negfile.Op, base, version uint64, adds, dels []string) []negfile.Chunk {
	t.Helper()
	cs, err := negfile.Split(op, base, version, adds, dels, negfile.MaxDE72)
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	return cs
}

func applyAll(t testing.TB, st *offline.Store, cs []negfile.Chunk) {
	t.Helper()
	for _, c := range cs {
		if _, err := st.ApplyChunk(c); err != nil {
			t.Fatalf("ApplyChunk %d/%d v%d: %v", c.Seq, c.Total, c.Version, err)
		}
	}
}

func blocked(t testing.TB, st *offline.Store, f string) bool {
	t.Helper()
	hit, err := st.Blocked(f)
	if err != nil {
		t.Fatalf("Blocked: %v", err)
	}
	return hit
}

// sale returns a valid sale with a unique idempotency key.
func sale(key string, fingerprint string, amount int64) offline.Sale {
	return offline.Sale{IdempotencyKey: key, TerminalID: "T0000001", MerchantID: "M000000000001", Brand: "visa",
		Fingerprint: fingerprint, MaskedPAN: "411111******1111", Amount: amount, Currency: "392",
		Message: []byte("request-" + key)}
}

// loaded opens a store with an empty negative file of version 1 in force.
func loaded(t testing.TB, o opts) (*offline.Store, string) {
	t.Helper()
	st, path := open(t, o)
	applyAll(t, st, chunks(t, negfile.OpSnapshot, 0, 1, nil, nil))
	return st, path
}

func softSealerWith(key []byte) (offline.Sealer, error) { return offlinetest.NewSealer(key) }
