package link_test

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/link"
)

// benchLink starts a server with an echo handler and an up client.
func benchLink(b *testing.B) *link.Client {
	b.Helper()
	env := newPKI(b)
	ctl := newTestControl(b)
	srv := startServer(b, link.ServerConfig{
		TLS: env.serverTLS, Control: ctl,
		Handler: link.HandlerFunc(func(_ context.Context, _ link.Peer, req []byte) ([]byte, error) {
			return req, nil
		}),
	})
	cfg := testClientConfig(env.clientTLS(b, nil, "gw-bench"), ctl, srv.addr)
	cfg.EchoInterval = 10 * time.Second
	cfg.EchoTimeout = 3 * time.Second
	c := startClient(b, cfg)
	waitUp(b, c.Client)
	return c.Client
}

// reportLatency reports requests per second and the p50/p99 of the
// per-request durations.
func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds())
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

var benchReq = bytes.Repeat([]byte("0123456789"), 20) // 200 bytes, like a typical 1100

func BenchmarkRoundTrip(b *testing.B) {
	c := benchLink(b)
	ctx := context.Background()
	var lat []time.Duration
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.RoundTrip(ctx, benchReq); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat, time.Since(start))
}

func BenchmarkRoundTripParallel64(b *testing.B) {
	const workers = 64
	c := benchLink(b)
	ctx := context.Background()
	jobs := make(chan struct{}, workers)
	lats := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	var failed sync.Once
	var firstErr error
	for w := range workers {
		wg.Go(func() {
			for range jobs {
				t0 := time.Now()
				if _, err := c.RoundTrip(ctx, benchReq); err != nil {
					failed.Do(func() { firstErr = err })
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		})
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	reportLatency(b, slices.Concat(lats...), elapsed)
}
