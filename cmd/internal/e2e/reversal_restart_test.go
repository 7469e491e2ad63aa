package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
)

// udpProxy relays the QUIC link between the gateway and the center and
// drops datagrams on demand.
type udpProxy struct {
	ln     *net.UDPConn
	target *net.UDPAddr
	// mode: proxyPass, proxyDropAnswers (center → gateway dropped) or
	// proxyDropAll.
	mode  atomic.Int32
	mu    sync.Mutex
	peers map[string]*net.UDPConn
}

const (
	proxyPass int32 = iota
	proxyDropAnswers
	proxyDropAll
)

func newUDPProxy(t *testing.T, target string) *udpProxy {
	t.Helper()
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{ln: ln, target: ta, peers: map[string]*net.UDPConn{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.peers {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := ln.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if p.mode.Load() == proxyDropAll {
				continue
			}
			p.mu.Lock()
			up, ok := p.peers[from.String()]
			if !ok {
				up, err = net.DialUDP("udp", nil, ta)
				if err != nil {
					p.mu.Unlock()
					continue
				}
				p.peers[from.String()] = up
				wg.Go(func() {
					b := make([]byte, 64<<10)
					for {
						n, err := up.Read(b)
						if err != nil {
							if errors.Is(err, net.ErrClosed) {
								return
							}
							continue
						}
						if p.mode.Load() != proxyPass {
							continue
						}
						ln.WriteToUDP(b[:n], from)
					}
				})
			}
			p.mu.Unlock()
			up.Write(buf[:n])
		}
	})
	return p
}

func (p *udpProxy) addr() string { return p.ln.LocalAddr().String() }

// TestTimeoutReversalSurvivesGatewayKill: the center takes a sale (money
// posted) but its answer never reaches the gateway, which answers the
// terminal 911 and queues the timeout reversal; the link stays cut, so
// the reversal cannot go. The gateway is SIGKILLed. Restarted with the
// link back, it sends the stored reversal (a 1421 under the original's key
// + "-R") and the center reverses the sale; the ledger adds up and no
// daemon prints a clear PAN.
func TestTimeoutReversalSurvivesGatewayKill(t *testing.T) {
	s := newOfflineSystem(t, 1)
	proxy := newUDPProxy(t, s.linkAddr)
	if err := os.WriteFile(filepath.Join(s.dir, "gateway.yaml"),
		fmt.Appendf(nil, offlineGatewayYAML, proxy.addr(), s.termAddr, s.gwHTTP), 0o600); err != nil {
		t.Fatal(err)
	}
	s.startCenter(t)
	s.startGateway(t)
	waitMetric(t, s.gwHTTP, "posgate_link_up 1")

	ctx := context.Background()
	cst, err := store.Open(ctx, store.Config{Driver: "sqlite", Path: filepath.Join(s.dir, "center", "center.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	// sale returns the center's authorization of the sale with STAN stan.
	sale := func(stan string) (store.Authorization, bool) {
		var found store.Authorization
		ok := false
		err := cst.View(ctx, func(tx *store.Tx) error {
			auths, err := tx.Authorizations(ctx, store.AuthFilter{TerminalID: "T0000001", Limit: 100})
			for _, a := range auths {
				if a.STAN == stan && a.MTI == iso93.MTIFinancialRequest {
					found, ok = a, true
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return found, ok
	}

	keys, err := keybundle.Load(filepath.Join(s.dir, "termsim", "T0000001.json"))
	if err != nil {
		t.Fatal(err)
	}
	term, err := device.New(keys, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := term.Connect(t.Context(), s.termAddr); err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	card, err := deck.Lookup("visa-ok")
	if err != nil {
		t.Fatal(err)
	}

	// The center's answers are dropped; once the center has the sale,
	// everything is.
	proxy.mode.Store(proxyDropAnswers)
	type result struct {
		res device.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := term.Sale(t.Context(), card, 1500)
		done <- result{res, err}
	}()
	var orig store.Authorization
	if !poll.Wait(30*time.Second, func() bool {
		var found bool
		err = cst.View(ctx, func(tx *store.Tx) error {
			auths, err := tx.Authorizations(ctx, store.AuthFilter{TerminalID: "T0000001", Limit: 100})
			for _, a := range auths {
				if a.MTI == iso93.MTIFinancialRequest && a.Amount == 1500 {
					orig, found = a, true
				}
			}
			return err
		})
		return found
	}) {
		t.Fatalf("the center never recorded the sale (%v)", err)
	}
	proxy.mode.Store(proxyDropAll)
	r := <-done
	if r.err != nil {
		t.Fatalf("sale: %v", r.err)
	}
	if r.res.ActionCode != iso93.ActionIssuerTimedOut || r.res.STAN != orig.STAN {
		t.Fatalf("sale answered %s for STAN %s; want 911 for the center's STAN %s", r.res.ActionCode, r.res.STAN, orig.STAN)
	}
	if orig.Status != store.AuthCaptured {
		t.Fatalf("the center's sale is %s, want captured", orig.Status)
	}
	waitCounter(t, s.gwHTTP, "posgate_reversal_failures_total", 2)
	kill(t, s.gw)
	if a, _ := sale(orig.STAN); a.Status != store.AuthCaptured {
		t.Fatalf("the sale is %s before the gateway restarted, want still captured", a.Status)
	}

	proxy.mode.Store(proxyPass)
	s.startGateway(t)
	waitMetric(t, s.gwHTTP, "posgate_link_up 1")
	// The reloaded reversal goes up: the center's sale turns reversed.
	var a store.Authorization
	if !poll.Wait(60*time.Second, func() bool { a, _ = sale(orig.STAN); return a.Status == store.AuthReversed }) {
		t.Fatalf("after the restart the sale is %s, want reversed", a.Status)
	}
	var rev []store.Authorization
	if err := cst.View(ctx, func(tx *store.Tx) error {
		auths, err := tx.Authorizations(ctx, store.AuthFilter{TerminalID: "T0000001", Limit: 100})
		for _, x := range auths {
			if x.MTI == iso93.MTIReversal || x.MTI == iso93.MTIReversalRepeat {
				rev = append(rev, x)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(rev) != 1 || rev[0].MTI != iso93.MTIReversalRepeat || rev[0].IdempotencyKey != orig.IdempotencyKey+"-R" || rev[0].ActionCode != iso93.ActionReversalAccepted {
		t.Fatalf("reversals at the center: %+v; want one 1421 under %q answered 400", rev, orig.IdempotencyKey+"-R")
	}
	if !strings.Contains(s.gw.logs.String(), "timeout reversals from before the restart queued") {
		t.Error("the restarted gateway did not log the reloaded reversal")
	}

	s.gw.stop(t)
	s.center.stop(t)
	cst.Close()
	if out := run(t, s.dir, "cardcenter", "ledger", "check", "--config", "center.yaml"); !strings.Contains(out, "OK") {
		t.Fatalf("ledger check: %s", out)
	}
	all := s.center.logs.String() + s.gw.logs.String()
	for _, c := range deck.Cards() {
		if strings.Contains(all, c.PAN) {
			t.Errorf("a daemon's output carries the clear PAN of deck card %s", c.Name)
		}
	}
	raw, err := os.ReadFile(filepath.Join(s.dir, "gateway", "offline.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), card.Masked()) {
		t.Error("the gateway's bbolt file holds the masked PAN in clear")
	}
}
