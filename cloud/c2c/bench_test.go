package c2c_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	connection "github.com/moov-io/iso8583-connection"

	"github.com/posgate/posgate/cloud/c2c"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

// BenchmarkAuthorize64Clients measures clear-PAN 1200 sales through the
// c2c port on SQLite: each iteration is one sale from each of 64 head-office
// connections at once. It reports authorizations per second and the
// p50/p99 round trip.
func BenchmarkAuthorize64Clients(b *testing.B) {
	const clients = 64
	st := storetest.OpenSQLite(b)
	w := cloudtest.NewWorld(b, st)
	srv := start(b, c2c.Config{Switch: w.Switch})
	card := w.NewCard(b, store.KindPrepaid, 0, 900_000_000_000)
	conns := make([]*connection.Connection, clients)
	for i := range conns {
		conns[i] = dial(b, srv.Addr().String())
	}
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				m := sale(b, cloudtest.OtherTerminal, card, 1)
				t0 := time.Now()
				if action, _ := send(b, c, m); action != "000" {
					b.Errorf("sale answered %s", action)
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			})
		}
		wg.Wait()
		n += clients
	}
	el := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(n)/el.Seconds(), "auth/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
