package authz_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/protocol/iso93"
)

// hammer sends clients*perClient requests of amount on one card from
// concurrent clients (client i uses switches[i%len]) and returns the number
// approved.
func hammer(t *testing.T, w *cloudtest.World, switches []*authz.Switch, c cloudtest.Card, mti string, clients, perClient int, amount int64) int64 {
	t.Helper()
	var approved atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		sw := switches[i%len(switches)]
		wg.Go(func() {
			for range perClient {
				r := w.RequestOn(fmt.Sprintf("dev-%d", i), mti, c, amount)
				resp, err := sw.Authorize(context.Background(), r)
				if err != nil {
					t.Errorf("authorize: %v", err)
					return
				}
				switch resp.ActionCode {
				case iso93.ActionApproved:
					approved.Add(1)
				case iso93.ActionInsufficientFunds:
				default:
					t.Errorf("unexpected action code %s", resp.ActionCode)
				}
			}
		})
	}
	wg.Wait()
	return approved.Load()
}

func TestConcurrentAuthorizationsNeverOverspend(t *testing.T) {
	const funds, amount = 10_000, 300
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		for _, mti := range []string{iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest} {
			t.Run("mti_"+mti, func(t *testing.T) {
				c := w.NewCard(t, store.KindPrepaid, 0, funds)
				approved := hammer(t, w, []*authz.Switch{w.Switch}, c, mti, 16, 4, amount)
				// 64 requests of 300 against 10000: exactly 33 fit.
				if approved*amount > funds || approved != funds/amount {
					t.Fatalf("%d approvals of %d against %d", approved, amount, funds)
				}
				if got := w.Available(t, c.AccountID); got != funds-approved*amount {
					t.Fatalf("available = %d, want %d", got, funds-approved*amount)
				}
				cloudtest.CheckLedger(t, st)
			})
		}
	})
}

func TestTwoNodesOnOnePostgres(t *testing.T) {
	const funds, amount = 10_000, 300
	dsn := storetest.NewSchema(t)
	a := storetest.OpenConfig(t, store.Config{DSN: dsn, MaxConns: 4})
	b := storetest.OpenConfig(t, store.Config{DSN: dsn, MaxConns: 4})
	w := cloudtest.NewWorld(t, a)
	other := &authz.Switch{Store: b, Decrypter: w.Decrypter, Vault: w.Vault}
	for _, mti := range []string{iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest} {
		t.Run("mti_"+mti, func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, funds, 0)
			approved := hammer(t, w, []*authz.Switch{w.Switch, other}, c, mti, 16, 4, amount)
			if approved*amount > funds || approved != funds/amount {
				t.Fatalf("%d approvals of %d against %d", approved, amount, funds)
			}
			cloudtest.CheckLedger(t, a)
			cloudtest.CheckLedger(t, b)
		})
	}
	t.Run("same_key_on_both_nodes", func(t *testing.T) {
		c := w.NewCard(t, store.KindCredit, funds, 0)
		r := w.Request(iso93.MTIFinancialRequest, c, amount)
		var wg sync.WaitGroup
		resps := make([]authz.Response, 8)
		for i := range resps {
			sw := []*authz.Switch{w.Switch, other}[i%2]
			wg.Go(func() {
				resp, err := sw.Authorize(context.Background(), r)
				if err != nil {
					t.Errorf("authorize: %v", err)
				}
				resps[i] = resp
			})
		}
		wg.Wait()
		for _, resp := range resps[1:] {
			if !sameResponse(resp, resps[0]) {
				t.Fatalf("answers differ across nodes: %+v and %+v", resp, resps[0])
			}
		}
		if got := w.Available(t, c.AccountID); got != funds-amount {
			t.Fatalf("available = %d, want %d", got, funds-amount)
		}
		cloudtest.CheckLedger(t, a)
	})
}

// BenchmarkAuthorize measures the store-side cost of an authorization (the
// fake decrypter stands in for the token; the BIN routing lookup runs as
// in the center) with 64 concurrent clients, each on its own card and
// device.
func BenchmarkAuthorize(b *testing.B) {
	for _, be := range storetest.Backends() {
		for _, mti := range []string{iso93.MTIAuthorizationRequest, iso93.MTIFinancialRequest} {
			b.Run(be.Name+"/mti_"+mti, func(b *testing.B) { benchAuthorize(b, be.Open(b), mti) })
		}
	}
}

// BenchmarkAuthorizePostgresPool is BenchmarkAuthorize's 1100 on
// PostgreSQL with connection pools of several sizes (store.max_conns).
func BenchmarkAuthorizePostgresPool(b *testing.B) {
	for _, conns := range []int{4, 8, 16, 32} {
		b.Run(fmt.Sprintf("conns_%d", conns), func(b *testing.B) {
			st := storetest.OpenConfig(b, store.Config{DSN: storetest.NewSchema(b), MaxConns: conns})
			benchAuthorize(b, st, iso93.MTIAuthorizationRequest)
		})
	}
}

func benchAuthorize(b *testing.B, st *store.Store, mti string) {
	w := cloudtest.NewWorld(b, st)
	// As in the center: every card is routed by BIN first (on-us here).
	w.Switch.Router = &routing.Router{Store: st}
	const clients = 64
	cards := make([]cloudtest.Card, clients)
	for i := range cards {
		cards[i] = w.NewCard(b, store.KindCredit, 999_999_999_999, 0)
	}
	// Warm up as a running center is: every pool connection dialled and
	// its statements prepared, so that a short -benchtime measures the
	// steady state rather than 16 connections being opened.
	var warm sync.WaitGroup
	for i := range clients {
		warm.Go(func() {
			for range 3 {
				r := w.RequestOn(fmt.Sprintf("warm-%d", i), mti, cards[i], 1)
				if resp, err := w.Switch.Authorize(context.Background(), r); err != nil || resp.ActionCode != iso93.ActionApproved {
					b.Errorf("warm-up authorize: %+v, %v", resp, err)
					return
				}
			}
		})
	}
	warm.Wait()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		n := next.Add(1)
		i := int(n-1) % clients
		device := fmt.Sprintf("bench-%d", n)
		var mine []time.Duration
		for pb.Next() {
			r := w.RequestOn(device, mti, cards[i], 1)
			t0 := time.Now()
			resp, err := w.Switch.Authorize(context.Background(), r)
			mine = append(mine, time.Since(t0))
			if err != nil || resp.ActionCode != iso93.ActionApproved {
				b.Errorf("authorize: %+v, %v", resp, err)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "auths/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
