package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
)

// offlineSystem is a seeded center and an enrolled gateway as processes,
// with the gateway's offline policy set for the test.
type offlineSystem struct {
	dir                  string
	linkAddr, centerHTTP string
	termAddr, gwHTTP     string
	center, gw           *daemonProc
	terminals            int
}

const offlineGatewayYAML = `data_dir: ./gateway
center:
  addrs: [%s]
  echo_interval: 500ms
  echo_timeout: 300ms
  request_timeout: 2s
terminals:
  listen: %s
http:
  listen: %s
offline:
  negfile_poll: 200ms
  forward_rate: 2000
  policy:
    total_exposure: 100000000
    default:
      floor_limit: 5000
      card_count: 100000
      card_amount: 100000000
      merchant_exposure: 100000000
`

func newOfflineSystem(t *testing.T, terminals int) *offlineSystem {
	t.Helper()
	s := &offlineSystem{dir: t.TempDir(), linkAddr: freeAddr(t, "udp"), centerHTTP: freeAddr(t, "tcp"),
		termAddr: freeAddr(t, "tcp"), gwHTTP: freeAddr(t, "tcp"), terminals: terminals}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("center.yaml", fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", s.linkAddr, s.centerHTTP))
	write("gateway.yaml", fmt.Sprintf(offlineGatewayYAML, s.linkAddr, s.termAddr, s.gwHTTP))
	run(t, s.dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", fmt.Sprint(terminals))
	for i := 1; i <= terminals; i++ {
		run(t, s.dir, "hsmctl", "inject", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
			"--terminal-id", fmt.Sprintf("T%07d", i), "--ikid", fmt.Sprintf("00000001%08d", i),
			"--fingerprint-components", "center/ceremony/fingerprint-components.json",
			"--out", fmt.Sprintf("termsim/T%07d.json", i))
	}
	csr := strings.TrimSpace(run(t, s.dir, "posgate", "csr", "--config", "gateway.yaml"))
	run(t, s.dir, "cardcenter", "enrol", "--config", "center.yaml", "--gateway-id", "GW000001", "--csr", csr,
		"--out", "gateway/link/gateway.crt", "--ca-out", "gateway/link/ca.crt")
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*daemonProc{s.center, s.gw} {
				if p != nil {
					t.Logf("%s:\n%s", filepath.Base(p.cmd.Path), tail(p.logs.String(), 6000))
				}
			}
		}
	})
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (s *offlineSystem) startCenter(t *testing.T) {
	s.center = start(t, s.dir, "cardcenter", "--config", "center.yaml")
}

func (s *offlineSystem) startGateway(t *testing.T) {
	s.gw = start(t, s.dir, "posgate", "--config", "gateway.yaml")
}

// kill sends SIGKILL and waits for the process to end.
func kill(t *testing.T, d *daemonProc) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	err := <-d.done
	d.done <- err // for the cleanup
}

// offlineStatus reads the gateway's GET /offline/status.
type offlineStatus struct {
	Queue    map[string]struct{ Count, Amount int64 } `json:"queue"`
	Exposure int64                                    `json:"exposure"`
	Negative struct {
		Loaded  bool   `json:"loaded"`
		Version uint64 `json:"version"`
	} `json:"negative_file"`
}

func getStatus(t *testing.T, addr string) (offlineStatus, error) {
	var st offlineStatus
	resp, err := http.Get("http://" + addr + "/offline/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitStatus polls /offline/status until ok holds (bounded: 60s).
func waitStatus(t *testing.T, addr, what string, ok func(offlineStatus) bool) offlineStatus {
	t.Helper()
	var st offlineStatus
	var err error
	if !poll.Wait(60*time.Second, func() bool {
		st, err = getStatus(t, addr)
		return err == nil && ok(st)
	}) {
		t.Fatalf("gateway: %s not reached within 60s (last %+v, %v)", what, st, err)
	}
	return st
}

func queueDrained(st offlineStatus) bool {
	return st.Queue["pending"].Count == 0 && st.Queue["sent"].Count == 0
}

// TestOfflineStandInAfterCut syncs the negative file (the demo's lost card
// is on it), kills the center, and sells: within policy approved offline,
// over the floor limit declined, the lost card declined from the negative
// file. With the center back, the approvals go up as advices; the one for
// a card the center does not know is rejected and listed for the merchant.
func TestOfflineStandInAfterCut(t *testing.T) {
	s := newOfflineSystem(t, 1)
	s.startCenter(t)
	s.startGateway(t)
	waitMetric(t, s.gwHTTP, "posgate_link_up 1")
	st := waitStatus(t, s.gwHTTP, "negative file loaded", func(st offlineStatus) bool { return st.Negative.Loaded && st.Negative.Version > 0 })
	t.Logf("negative file version %d synced", st.Negative.Version)

	kill(t, s.center)
	waitMetric(t, s.gwHTTP, "posgate_link_up 0")

	keys, err := keybundle.Load(filepath.Join(s.dir, "termsim", "T0000001.json"))
	if err != nil {
		t.Fatal(err)
	}
	term, err := device.New(keys, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := term.Connect(ctx, s.termAddr); err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	tests := []struct {
		name, card string
		amount     int64
		want       iso93.ActionCode
	}{
		{"within_policy_approved", "visa-ok", 1200, iso93.ActionApproved},
		{"other_brand_approved", "jcb-ok", 4000, iso93.ActionApproved},
		{"over_floor_limit_declined", "visa-ok", 6000, iso93.ActionIssuerInoperative},
		{"negative_file_hit_declined", "lost", 1200, iso93.ActionPickUp},
		{"unknown_card_approved_offline", "unknown", 1000, iso93.ActionApproved},
	}
	approved := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := deck.Lookup(tt.card)
			if err != nil {
				t.Fatal(err)
			}
			res, err := term.Sale(ctx, c, tt.amount)
			if err != nil {
				t.Fatalf("sale: %v", err)
			}
			if res.ActionCode != tt.want {
				t.Fatalf("card %s: action %s, want %s", res.MaskedPAN, res.ActionCode, tt.want)
			}
			if res.Approved() {
				approved++
				if len(res.ApprovalCode) != 6 {
					t.Fatalf("approval code %q", res.ApprovalCode)
				}
			}
		})
	}
	st = waitStatus(t, s.gwHTTP, "approvals queued", func(st offlineStatus) bool { return st.Queue["pending"].Count == int64(approved) })
	if st.Exposure != 1200+4000+1000 {
		t.Errorf("exposure %d, want %d", st.Exposure, 1200+4000+1000)
	}

	s.startCenter(t)
	st = waitStatus(t, s.gwHTTP, "queue drained", queueDrained)
	if st.Queue["accepted"].Count != 2 || st.Queue["rejected"].Count != 1 || st.Exposure != 0 {
		t.Fatalf("after forwarding: %+v; want 2 accepted, 1 rejected, no exposure", st)
	}
	resp, err := http.Get("http://" + s.gwHTTP + "/offline/rejected")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rej struct {
		Rejected []struct {
			MaskedPAN string `json:"masked_pan"`
			Action    string `json:"action"`
			Amount    int64  `json:"amount"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal(body, &rej); err != nil || len(rej.Rejected) != 1 || rej.Rejected[0].Amount != 1000 || rej.Rejected[0].Action == "000" {
		t.Fatalf("GET /offline/rejected: %v %s", err, body)
	}
	// "Forward now" is accepted.
	if resp, err := http.Post("http://"+s.gwHTTP+"/offline/forward", "application/json", nil); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /offline/forward: %v %v", resp, err)
	}
	s.gw.stop(t)
	s.center.stop(t)
	all := s.center.logs.String() + s.gw.logs.String() + string(body)
	for _, c := range deck.Cards() {
		if strings.Contains(all, c.PAN) {
			t.Errorf("a daemon's output carries the clear PAN of deck card %s", c.Name)
		}
	}
}

// TestOfflineKillGatewayNeverLosesOrDoubles runs termsim's load script
// against a gateway whose center is down and SIGKILLs the gateway at random
// moments, many rounds; then the center comes back and the gateway forwards.
// The center must hold every approval termsim was told of, each idempotency
// key once, and exactly the approvals the gateway recorded.
func TestOfflineKillGatewayNeverLosesOrDoubles(t *testing.T) {
	const rounds = 6
	s := newOfflineSystem(t, 2)
	s.startCenter(t)
	s.startGateway(t)
	waitMetric(t, s.gwHTTP, "posgate_link_up 1")
	waitStatus(t, s.gwHTTP, "negative file loaded", func(st offlineStatus) bool { return st.Negative.Loaded })
	kill(t, s.center)
	waitMetric(t, s.gwHTTP, "posgate_link_up 0")

	told, inFlight := 0, 0
	for round := 1; round <= rounds; round++ {
		cmd := exec.Command(filepath.Join(binaries(t), "termsim"), "--gateway", s.termAddr, "--keys", "termsim",
			"--script", "load", "--sales", "40", "--amount", "700", "--timeout", "5s")
		cmd.Dir = s.dir
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
		if round < rounds {
			// A random moment into the run; the last round runs to its end.
			tm := time.NewTimer(time.Duration(50+rand.IntN(400)) * time.Millisecond)
			select {
			case err := <-done:
				done <- err
			case <-tm.C:
				kill(t, s.gw)
				killed = true
			}
			tm.Stop()
		}
		<-done // termsim exits non-zero when sales failed; its summary is still its last line
		if killed && strings.TrimSpace(out.String()) == "" {
			// Killed before termsim had connected its terminals: it made
			// no sale and printed no summary.
			t.Logf("round %d: gateway killed before termsim connected", round)
			s.startGateway(t)
			waitMetric(t, s.gwHTTP, "posgate_link_up 0")
			continue
		}
		sum := lastLineSummary(t, out.String())
		told += sum.ByOutcome["000"]
		inFlight += sum.Errors
		for code, n := range sum.ByOutcome {
			if code != "000" {
				t.Errorf("round %d: %d sales answered %s offline, want only approvals", round, n, code)
			}
		}
		t.Logf("round %d: killed=%v approved=%d errors=%d", round, killed, sum.ByOutcome["000"], sum.Errors)
		if killed {
			s.startGateway(t)
			waitMetric(t, s.gwHTTP, "posgate_link_up 0")
		}
	}
	if told == 0 {
		t.Fatal("termsim was told of no approval: the test proves nothing")
	}

	s.startCenter(t)
	st := waitStatus(t, s.gwHTTP, "queue drained", queueDrained)
	s.gw.stop(t)
	s.center.stop(t)

	// The gateway's own record of its approvals.
	gwStore, err := offline.Open(offline.Config{Path: filepath.Join(s.dir, "gateway", "offline.db"), Sealer: noSealer{}})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := gwStore.Queue().Stats()
	gwStore.Close()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Rejected.Count != 0 || stats.Expired.Count != 0 || stats.Accepted.Count != st.Queue["accepted"].Count {
		t.Fatalf("gateway records: %+v", stats)
	}

	// The center's offline-advice authorizations.
	cst, err := store.Open(context.Background(), store.Config{Driver: "sqlite", Path: filepath.Join(s.dir, "center", "center.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	keys := map[string]int{}
	approvedAtCenter := 0
	for term := 1; term <= s.terminals; term++ {
		before := int64(0)
		for {
			var page []store.Authorization
			err := cst.View(context.Background(), func(tx *store.Tx) error {
				var err error
				page, err = tx.Authorizations(context.Background(), store.AuthFilter{TerminalID: fmt.Sprintf("T%07d", term), BeforeID: before, Limit: 1000})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page {
				if a.MTI != iso93.MTIAdvice && a.MTI != iso93.MTIAdviceRepeat {
					continue
				}
				keys[a.IdempotencyKey]++
				if a.ActionCode == iso93.ActionApproved {
					approvedAtCenter++
				}
			}
			if len(page) < 1000 {
				break
			}
			before = page[len(page)-1].ID
		}
	}
	for k, n := range keys {
		if n != 1 {
			t.Errorf("idempotency key %s recorded %d times at the center", k, n)
		}
	}
	t.Logf("termsim told %d approvals (%d sales failed at kills); gateway accepted %d; center approved %d advices",
		told, inFlight, stats.Accepted.Count, approvedAtCenter)
	if int64(approvedAtCenter) != stats.Accepted.Count || len(keys) != approvedAtCenter {
		t.Fatalf("center approved %d advices under %d keys; gateway recorded %d accepted", approvedAtCenter, len(keys), stats.Accepted.Count)
	}
	if approvedAtCenter < told {
		t.Fatalf("lost approvals: termsim was told %d, the center has %d", told, approvedAtCenter)
	}
	if approvedAtCenter > told+inFlight {
		t.Fatalf("the center has %d approvals, more than termsim's %d plus %d sales in flight at kills", approvedAtCenter, told, inFlight)
	}
}

// noSealer opens the gateway's file to read its counters only (they are
// not sealed); it refuses to open records.
type noSealer struct{}

func (noSealer) Seal([]byte, []byte) ([]byte, error) { return nil, fmt.Errorf("test: no sealing") }
func (noSealer) Open([]byte, []byte) ([]byte, error) { return nil, fmt.Errorf("test: no opening") }
