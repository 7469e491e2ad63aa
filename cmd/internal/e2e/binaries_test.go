package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/internal/poll"
)

// binDir holds the binaries built once per test process.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "posgate-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "github.com/posgate/posgate/cmd/...")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// run runs a binary to completion in dir and returns its stdout.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), name), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// daemon is a started daemon process whose stderr is collected.
type daemonProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

func start(t *testing.T, dir, name string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), name), args...)
	cmd.Dir = dir
	d := &daemonProc{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.done
	})
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		if err != nil {
			t.Errorf("%s exited with %v\n%s", filepath.Base(d.cmd.Path), err, d.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM", filepath.Base(d.cmd.Path))
	}
}

// waitMetric waits (bounded: 30s) until addr's /metrics has line.
func waitMetric(t *testing.T, addr, line string) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("metric %q at %s", line, addr), func() bool {
		return strings.Contains(metrics(addr), "\n"+line+"\n")
	})
}

// metrics returns addr's /metrics page, or "" when it cannot be read.
func metrics(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBinariesDemoPath runs the documented operator path with the real
// binaries and config files: seed, key injection, enrolment, both daemons,
// termsim, graceful shutdown, and the ledger check.
func TestBinariesDemoPath(t *testing.T) {
	dir := t.TempDir()
	linkAddr, centerHTTP := freeAddr(t, "udp"), freeAddr(t, "tcp")
	termAddr, gwHTTP := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("center.yaml", fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, centerHTTP))
	write("gateway.yaml", fmt.Sprintf("data_dir: ./gateway\ncenter:\n  addrs: [%s]\nterminals:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, termAddr, gwHTTP))

	run(t, dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", "2")
	for i := 1; i <= 2; i++ {
		out := run(t, dir, "hsmctl", "inject", "--format", "json", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
			"--terminal-id", fmt.Sprintf("T%07d", i), "--ikid", fmt.Sprintf("00000001%08d", i),
			"--fingerprint-components", "center/ceremony/fingerprint-components.json",
			"--out", fmt.Sprintf("termsim/T%07d.json", i))
		var inj map[string]any
		if err := json.Unmarshal([]byte(out), &inj); err != nil {
			t.Fatalf("hsmctl inject --format json: %v: %s", err, out)
		}
	}
	csr := strings.TrimSpace(run(t, dir, "posgate", "csr", "--config", "gateway.yaml"))
	run(t, dir, "cardcenter", "enrol", "--config", "center.yaml", "--gateway-id", "GW000001", "--csr", csr,
		"--out", "gateway/link/gateway.crt", "--ca-out", "gateway/link/ca.crt")

	apiKey := strings.TrimSpace(run(t, dir, "cardcenter", "api-key", "--config", "center.yaml", "--role", "admin"))
	center := start(t, dir, "cardcenter", "--config", "center.yaml")
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	waitMetric(t, centerHTTP, "cardcenter_link_gateways 1")

	out := run(t, dir, "termsim", "--gateway", termAddr, "--keys", "termsim", "--script", "demo", "--amount", "1200")
	sc := bufio.NewScanner(strings.NewReader(out))
	var last string
	for sc.Scan() {
		last = sc.Text()
	}
	var sum struct {
		Sales      int            `json:"sales"`
		Errors     int            `json:"errors"`
		Unexpected int            `json:"unexpected"`
		ByOutcome  map[string]int `json:"by_outcome"`
	}
	if err := json.Unmarshal([]byte(last), &sum); err != nil {
		t.Fatalf("termsim's last line is not its JSON summary: %v: %q", err, last)
	}
	if sum.Sales != len(deck.Cards()) || sum.Errors != 0 || sum.Unexpected != 0 || sum.ByOutcome["000"] == 0 {
		t.Fatalf("termsim summary %+v", sum)
	}

	// The head office's REST API sees the sales, masked.
	req, _ := http.NewRequest("GET", "http://"+centerHTTP+"/api/v1/transactions?terminal=T0000001", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "000") {
		t.Fatalf("GET /api/v1/transactions: %d %s", resp.StatusCode, body)
	}
	out += string(body)
	req, _ = http.NewRequest("GET", "http://"+centerHTTP+"/api/v1/transactions", nil)
	req.Header.Set("Authorization", "Bearer pgk_not-a-key")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a bad API key got %v, %v", resp.Status, err)
	}

	gw.stop(t)
	center.stop(t)
	if r := run(t, dir, "cardcenter", "ledger", "check", "--config", "center.yaml"); !strings.Contains(r, "OK") {
		t.Fatalf("ledger check: %s", r)
	}
	all := center.logs.String() + gw.logs.String() + out
	for _, c := range deck.Cards() {
		if strings.Contains(all, c.PAN) {
			t.Errorf("a daemon's output or termsim's carries the clear PAN of deck card %s", c.Name)
		}
	}
}

// termsimSummary is the last line termsim prints.
type termsimSummary struct {
	Sales      int            `json:"sales"`
	Errors     int            `json:"errors"`
	Unexpected int            `json:"unexpected"`
	ByOutcome  map[string]int `json:"by_outcome"`
}

func lastLineSummary(t *testing.T, out string) termsimSummary {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var sum termsimSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("termsim's last line is not its JSON summary: %v", err)
	}
	return sum
}

// TestTwoCentersOnOnePostgres runs two cardcenter processes on one
// PostgreSQL database (sharing the token directory, as two nodes share an
// HSM), each serving its own gateway and terminals at the same time, then
// proves the ledger.
func TestTwoCentersOnOnePostgres(t *testing.T) {
	dsn := storetest.NewSchema(t)
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type node struct{ link, http, term, gwHTTP string }
	nodes := []node{
		{freeAddr(t, "udp"), freeAddr(t, "tcp"), freeAddr(t, "tcp"), freeAddr(t, "tcp")},
		{freeAddr(t, "udp"), freeAddr(t, "tcp"), freeAddr(t, "tcp"), freeAddr(t, "tcp")},
	}
	for i, n := range nodes {
		write(fmt.Sprintf("center%d.yaml", i+1), fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\nstore:\n  driver: postgres\n  dsn: %q\n", n.link, n.http, dsn))
		write(fmt.Sprintf("gw%d.yaml", i+1), fmt.Sprintf("data_dir: ./gw%d\ngateway_id: GW00000%d\ncenter:\n  addrs: [%s]\nterminals:\n  listen: %s\nhttp:\n  listen: %s\n", i+1, i+1, n.link, n.term, n.gwHTTP))
	}
	for g := 1; g <= 2; g++ {
		run(t, dir, "cardcenter", "seed-demo", "--config", "center1.yaml", "--gateway-id", fmt.Sprintf("GW00000%d", g),
			"--first-terminal", fmt.Sprint(2*g-1), "--terminals", "2")
		for i := 2*g - 1; i <= 2*g; i++ {
			run(t, dir, "hsmctl", "inject", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
				"--terminal-id", fmt.Sprintf("T%07d", i), "--ikid", fmt.Sprintf("00000001%08d", i),
				"--fingerprint-components", "center/ceremony/fingerprint-components.json",
				"--out", fmt.Sprintf("termsim%d/T%07d.json", g, i))
		}
		gwCfg := fmt.Sprintf("gw%d.yaml", g)
		csr := strings.TrimSpace(run(t, dir, "posgate", "csr", "--config", gwCfg))
		run(t, dir, "cardcenter", "enrol", "--config", "center1.yaml", "--gateway-id", fmt.Sprintf("GW00000%d", g), "--csr", csr,
			"--out", fmt.Sprintf("gw%d/link/gateway.crt", g), "--ca-out", fmt.Sprintf("gw%d/link/ca.crt", g))
	}
	var procs []*daemonProc
	for i := range nodes {
		procs = append(procs, start(t, dir, "cardcenter", "--config", fmt.Sprintf("center%d.yaml", i+1)))
	}
	for i := range nodes {
		procs = append(procs, start(t, dir, "posgate", "--config", fmt.Sprintf("gw%d.yaml", i+1)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("%s %v:\n%s", filepath.Base(p.cmd.Path), p.cmd.Args[1:], p.logs.String())
			}
		}
	})
	for _, n := range nodes {
		waitMetric(t, n.gwHTTP, "posgate_link_up 1")
	}

	outs := make([]string, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			cmd := exec.Command(filepath.Join(binaries(t), "termsim"), "--gateway", n.term, "--keys", fmt.Sprintf("termsim%d", i+1),
				"--script", "load", "--sales", "40", "--amount", "700")
			cmd.Dir = dir
			b, err := cmd.Output()
			if err != nil {
				t.Errorf("termsim against gateway %d: %v\n%s", i+1, err, b)
			}
			outs[i] = string(b)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, n := range nodes {
		sum := lastLineSummary(t, outs[i])
		if sum.Sales != 80 || sum.Errors != 0 || sum.ByOutcome["000"] == 0 {
			t.Errorf("gateway %d: termsim summary %+v", i+1, sum)
		}
		// Both centers served at once: each counted approved sales.
		resp, err := http.Get("http://" + n.http + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `cardcenter_requests_total{action="000",mti="1200"}`) {
			t.Errorf("center %d approved nothing", i+1)
		}
	}
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(t)
	}
	if r := run(t, dir, "cardcenter", "ledger", "check", "--config", "center2.yaml"); !strings.Contains(r, "OK") {
		t.Fatalf("ledger check: %s", r)
	}
}
