package offline_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/negfile"
)

var benchPolicy = standin.Policy{TotalExposure: 1 << 60, MaxStaleness: 1 << 62,
	Default: standin.Rules{FloorLimit: 1 << 40, CardCount: 1 << 30, CardAmount: 1 << 60, MerchantExposure: 1 << 60}}

func benchStore(b *testing.B, boltBatch bool) *offline.Store {
	b.Helper()
	cfg := offline.Config{Path: filepath.Join(b.TempDir(), "bench.db"), Sealer: softSealer(b), Policy: benchPolicy}
	var st *offline.Store
	var err error
	if boltBatch {
		st, err = offline.OpenBoltBatch(cfg)
	} else {
		st, err = offline.Open(cfg)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	applyAll(b, st, chunks(b, negfile.OpSnapshot, 0, 1, nil, nil))
	return st
}

// pool is a set of terminal goroutines owned by a benchmark: each takes
// sales from work and reports on done. stop ends and waits for them.
type pool struct {
	work chan int
	done chan error
	wg   sync.WaitGroup
}

func newPool(st *offline.Store, n int, prefix string) *pool {
	p := &pool{work: make(chan int), done: make(chan error, n)}
	for range n {
		p.wg.Go(func() {
			for i := range p.work {
				key := prefix + strconv.Itoa(i)
				d, err := st.Approve(sale(key, fp(i), 100))
				if err == nil && !d.Approved {
					err = fmt.Errorf("declined: %s", d.Reason)
				}
				p.done <- err
			}
		})
	}
	return p
}

func (p *pool) stop() { close(p.work); p.wg.Wait() }

// BenchmarkApprove measures durable offline approvals (each fsynced before
// Approve returns) with c terminals selling at once. One op is c
// approvals; approvals/s is the throughput. Modes: group (the committer),
// boltbatch (bbolt's db.Batch), single (MaxBatch 1: one fsync each).
func BenchmarkApprove(b *testing.B) {
	for _, mode := range []string{"group", "boltbatch", "single"} {
		for _, c := range []int{1, 16, 64, 256} {
			if mode == "single" && c > 16 {
				continue
			}
			b.Run(fmt.Sprintf("mode=%s/terminals=%d", mode, c), func(b *testing.B) {
				var st *offline.Store
				if mode == "single" {
					cfg := offline.Config{Path: filepath.Join(b.TempDir(), "bench.db"), Sealer: softSealer(b), Policy: benchPolicy, MaxBatch: 1}
					var err error
					if st, err = offline.Open(cfg); err != nil {
						b.Fatal(err)
					}
					defer st.Close()
					applyAll(b, st, chunks(b, negfile.OpSnapshot, 0, 1, nil, nil))
				} else {
					st = benchStore(b, mode == "boltbatch")
				}
				p := newPool(st, c, "bench-")
				defer p.stop()
				b.ReportAllocs()
				n := 0
				start := time.Now()
				for b.Loop() {
					for range c {
						p.work <- n
						n++
					}
					for range c {
						if err := <-p.done; err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "approvals/s")
			})
		}
	}
}

// BenchmarkForward measures forwarding while 16 terminals keep approving
// in the background. One forwarder takes window records with Next, marks
// them sent in one call, and their answers arrive concurrently (as 1230s
// on separate streams would), each recorded with MarkAnswered.
func BenchmarkForward(b *testing.B) {
	for _, window := range []int{1, 32} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) { benchForward(b, window) })
	}
}

func benchForward(b *testing.B, window int) {
	st := benchStore(b, false)
	q := st.Queue()
	// A backlog to forward, as after a long outage.
	p := newPool(st, 64, "backlog-")
	const backlog = 20000
	inFlight := 0
	for i := range backlog {
		if inFlight == 64 {
			if err := <-p.done; err != nil {
				b.Fatal(err)
			}
			inFlight--
		}
		p.work <- i
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		if err := <-p.done; err != nil {
			b.Fatal(err)
		}
	}
	p.stop()

	bg := newPool(st, 16, "live-")
	stopFeed := make(chan struct{})
	var feeder, consumer sync.WaitGroup
	var live atomic.Int64
	feeder.Go(func() { // feeds the background terminals until stopped
		for i := 1_000_000; ; i++ {
			select {
			case bg.work <- i:
			case <-stopFeed:
				return
			}
		}
	})
	consumer.Go(func() {
		for err := range bg.done {
			if err != nil {
				b.Error(err)
			}
			live.Add(1)
		}
	})
	b.ReportAllocs()
	forwarded := 0
	start := time.Now()
	for b.Loop() {
		recs, err := q.Next(window)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			b.Fatal("queue ran dry; enlarge the backlog")
		}
		ids := make([]uint64, len(recs))
		for i, r := range recs {
			ids[i] = r.ID
		}
		if err := q.MarkSent(ids...); err != nil {
			b.Fatal(err)
		}
		var answers sync.WaitGroup
		for _, id := range ids {
			answers.Go(func() {
				if _, err := q.MarkAnswered(id, "000"); err != nil {
					b.Error(err)
				}
			})
		}
		answers.Wait()
		forwarded += len(ids)
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	close(stopFeed)
	feeder.Wait()
	bg.stop()
	close(bg.done)
	consumer.Wait()
	b.ReportMetric(float64(forwarded)/el, "forwarded/s")
	b.ReportMetric(float64(live.Load())/el, "approvals/s")
}

// benchNegSize is the negative file size of BenchmarkNegativeLookup;
// OFFLINE_BENCH_NEGFILE_SIZE overrides the 10 million default.
func benchNegSize(b *testing.B) int {
	if s := os.Getenv("OFFLINE_BENCH_NEGFILE_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("OFFLINE_BENCH_NEGFILE_SIZE=%q", s)
		}
		return n
	}
	return 10_000_000
}

// benchFP is the i-th of n ascending fingerprints spread evenly over the
// 128-bit space (as HMAC outputs are), plus a deterministic jitter.
func benchFP(i, n int) string {
	step := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(int64(n)))
	v := new(big.Int).Mul(step, big.NewInt(int64(i)))
	v.Add(v, big.NewInt(int64(i%977)))
	var buf [16]byte
	v.FillBytes(buf[:])
	return hex.EncodeToString(buf[:])
}

// negStore opens (building once, cached under os.TempDir by size) a store
// whose negative file has n entries, synced from scratch through
// control-stream chunks.
func negStore(b *testing.B, n int) (*offline.Store, time.Duration) {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("posgate-offline-bench-negfile-%d.db", n))
	ready := path + ".ready"
	var built time.Duration
	if _, err := os.Stat(ready); err != nil {
		os.Remove(path)
		st, err := offline.Open(offline.Config{Path: path, Sealer: softSealer(b), Policy: benchPolicy})
		if err != nil {
			b.Fatal(err)
		}
		per := (negfile.MaxChunkLen - 200) / negfile.FingerprintLen
		total := uint32((n + per - 1) / per)
		start := time.Now()
		batch := make([]string, 0, per)
		for c := uint32(1); c <= total; c++ {
			batch = batch[:0]
			for i := int(c-1) * per; i < min(int(c)*per, n); i++ {
				batch = append(batch, benchFP(i, n))
			}
			if _, err := st.ApplyChunk(negfile.Chunk{Op: negfile.OpSnapshot, Version: 1, Seq: c, Total: total, Fingerprints: batch}); err != nil {
				b.Fatal(err)
			}
		}
		built = time.Since(start)
		st.Close()
		if err := os.WriteFile(ready, []byte(built.String()), 0o600); err != nil {
			b.Fatal(err)
		}
	} else if v, err := os.ReadFile(ready); err == nil {
		built, _ = time.ParseDuration(string(v))
	}
	st, err := offline.Open(offline.Config{Path: path, Sealer: softSealer(b), Policy: benchPolicy})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, built
}

// BenchmarkNegativeLookup measures Blocked on a negative file of 10
// million fingerprints (half the lookups hit), reporting the p99 latency
// and the time the file took to sync from scratch.
func BenchmarkNegativeLookup(b *testing.B) {
	n := benchNegSize(b)
	st, built := negStore(b, n)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 4096)
	for i := range keys {
		if i%2 == 0 {
			keys[i] = benchFP(rng.IntN(n), n)
		} else {
			var buf [16]byte
			binary.BigEndian.PutUint64(buf[:], rng.Uint64())
			binary.BigEndian.PutUint64(buf[8:], rng.Uint64()|1) // odd: never on the file (entries are even + jitter < 977)
			keys[i] = hex.EncodeToString(buf[:])
		}
	}
	lat := make([]time.Duration, 0, 1<<20)
	hits := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		hit, err := st.Blocked(keys[i%len(keys)])
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if hit {
			hits++
		}
		if len(lat) < cap(lat) {
			lat = append(lat, d)
		}
		i++
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
	}
	if i >= len(keys) && (hits < i/2-i/100-1 || hits > i/2+i/100+1) {
		b.Fatalf("%d hits in %d lookups; the cached file does not hold the expected entries", hits, i)
	}
	if built > 0 {
		b.ReportMetric(built.Seconds(), "sync-s")
	}
}
