package e2e_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/internal/poll"
)

// posTxn is the part of a POS API Transaction the test reads.
type posTxn struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Status     string `json:"status"`
	ActionCode string `json:"action_code"`
	Approval   string `json:"approval_code"`
	STAN       string `json:"stan"`
	MaskedPAN  string `json:"masked_pan"`
	Amount     int64  `json:"amount"`
	Original   string `json:"original_transaction_id"`
}

// posClient calls the gateway's POS API with one API key.
type posClient struct {
	t    *testing.T
	base string
	key  string
}

func (c posClient) post(route, idemKey string, body map[string]any) (int, posTxn) {
	c.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", c.base+"/pos/v1/"+route, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Idempotency-Key", idemKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", route, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var tx posTxn
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, &tx); err != nil {
			c.t.Fatalf("POST %s: answer %d is not a transaction: %v", route, resp.StatusCode, err)
		}
	} else {
		c.t.Logf("POST %s: %d %s", route, resp.StatusCode, raw)
	}
	return resp.StatusCode, tx
}

// want posts and requires a 200 with status and action code.
func (c posClient) want(route, idemKey string, body map[string]any, status, action string) posTxn {
	c.t.Helper()
	code, tx := c.post(route, idemKey, body)
	if code != http.StatusOK || tx.Status != status || tx.ActionCode != action {
		c.t.Fatalf("POST %s: %d status %q action %q, want 200 %s %s", route, code, tx.Status, tx.ActionCode, status, action)
	}
	if tx.MaskedPAN != "" && !strings.Contains(tx.MaskedPAN, "*") {
		c.t.Fatalf("POST %s: masked PAN %q is not masked", route, tx.MaskedPAN)
	}
	return tx
}

// farmLine matches termsim farm's "SERIAL MEDIUM WHERE" line of a pty.
var farmLine = regexp.MustCompile(`(?m)^(T\d{7}) pty (/dev/pts/\d+)$`)

// TestPOSFlowsEndToEnd drives the "Terminals at the edge" path with the
// real binaries: POS API → posgate → a real pty → the simulated terminal
// firmware (termsim farm) → posgate → QUIC → cardcenter and back, for a
// sale, a refund, a void, a pre-auth and its capture, and a POS retry;
// then the ledger check. Byte-flip noise on the line is covered at unit
// level (terminal/tlink TestCorruptedFrameIsNakedAndRetransmitted); a
// pulled cable by TestPOSPulledCableResolvesByLastTxn.
func TestPOSFlowsEndToEnd(t *testing.T) {
	rig := startPOSRig(t, "e2e-pos-key-0123456789")
	dir, center, gw, farm, pos := rig.dir, rig.center, rig.gw, rig.farm, rig.pos

	yen := func(amount int64, extra ...string) map[string]any {
		b := map[string]any{"terminal_id": "T1", "amount": amount, "currency": "392"}
		if len(extra) == 1 {
			b["original_transaction_id"] = extra[0]
		}
		return b
	}
	commands := 0

	// Sale, and a POS retry of it: the same transaction, one command.
	sale := pos.want("sales", "till-1", yen(1000), "approved", "000")
	commands++
	if sale.MaskedPAN == "" || sale.Approval == "" || sale.STAN == "" {
		t.Fatalf("sale %+v lacks masked PAN, approval code or STAN", sale)
	}
	if again := pos.want("sales", "till-1", yen(1000), "approved", "000"); again.ID != sale.ID || again.STAN != sale.STAN {
		t.Fatalf("retry with the same Idempotency-Key gave transaction %s STAN %s, first %s %s", again.ID, again.STAN, sale.ID, sale.STAN)
	}

	// Refund of part of it (the center allows up to the card's purchases
	// at the merchant).
	refund := pos.want("refunds", "till-2", yen(400, sale.ID), "approved", "000")
	commands++
	if refund.STAN == sale.STAN {
		t.Fatal("refund reused the sale's STAN")
	}

	// Void of a second sale.
	sale2 := pos.want("sales", "till-3", yen(700), "approved", "000")
	commands++
	pos.want("voids", "till-4", map[string]any{"terminal_id": "T1", "original_transaction_id": sale2.ID}, "approved", "400")
	commands++
	// Voided once: the terminal refuses a second void.
	pos.want("voids", "till-5", map[string]any{"terminal_id": "T1", "original_transaction_id": sale2.ID}, "declined", "914")
	commands++

	// Pre-auth, then its capture for less.
	pre := pos.want("preauths", "till-6", yen(5000), "approved", "000")
	commands++
	pos.want("captures", "till-7", yen(4200, pre.ID), "approved", "000")
	commands++

	// The terminal saw each command once: stop the farm and read its
	// summary.
	farm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-farm.done:
		farm.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("termsim farm did not stop on SIGTERM")
	}
	lines := strings.Split(strings.TrimSpace(farm.logs.String()), "\n")
	var fs struct {
		Transactions int            `json:"transactions"`
		ByOutcome    map[string]int `json:"by_outcome"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &fs); err != nil {
		t.Fatalf("farm's last line is not its summary: %v", err)
	}
	if fs.Transactions != commands {
		t.Fatalf("the terminal ran %d transactions, want %d (a retry must not reach it)", fs.Transactions, commands)
	}

	gw.stop(t)
	center.stop(t)
	if r := run(t, dir, "cardcenter", "ledger", "check", "--config", "center.yaml"); !strings.Contains(r, "OK") {
		t.Fatalf("ledger check: %s", r)
	}
	all := center.logs.String() + gw.logs.String() + farm.logs.String()
	for _, c := range deck.Cards() {
		if strings.Contains(all, c.PAN) {
			t.Errorf("a daemon's output carries the clear PAN of deck card %s", c.Name)
		}
	}
}

// waitTerminalUp polls GET /pos/v1/terminals until the device is
// connected (bounded: 30 s).
func waitTerminalUp(t *testing.T, pos posClient, id string) {
	t.Helper()
	poll.Until(t, 30*time.Second, "terminal "+id+" connected", func() bool {
		req, _ := http.NewRequest("GET", pos.base+"/pos/v1/terminals", nil)
		req.Header.Set("Authorization", "Bearer "+pos.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct {
			Terminals []struct {
				ID        string `json:"id"`
				Connected bool   `json:"connected"`
			} `json:"terminals"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			return false
		}
		for _, tm := range v.Terminals {
			if tm.ID == id && tm.Connected {
				return true
			}
		}
		return false
	})
}

// TestPOSPulledCableResolvesByLastTxn pulls the cable in the middle of a
// sale: the center is paused so the sale waits for its answer, the
// terminal process is killed (its line drops) and started again on the
// same TCP port (a pty path does not survive its owner, so this part runs
// over the tcp transport). The gateway reopens the line and resolves the
// POS request by the terminal's last-transaction record; the money is
// reversed and the ledger adds up.
func TestPOSPulledCableResolvesByLastTxn(t *testing.T) {
	dir := t.TempDir()
	linkAddr, centerHTTP := freeAddr(t, "udp"), freeAddr(t, "tcp")
	termAddr, gwHTTP, devAddr := freeAddr(t, "tcp"), freeAddr(t, "tcp"), freeAddr(t, "tcp")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("center.yaml", fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, centerHTTP))
	run(t, dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", "1")
	run(t, dir, "hsmctl", "inject", "--format", "json", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
		"--terminal-id", "T0000001", "--ikid", "0000000100000001",
		"--fingerprint-components", "center/ceremony/fingerprint-components.json", "--out", "termsim/T0000001.json")
	const apiKey = "e2e-pos-key-cable-0123"
	sum := sha256.Sum256([]byte(apiKey))
	write("gateway.yaml", fmt.Sprintf(`data_dir: ./gateway
center:
  addrs: [%s]
terminals:
  listen: %s
  resolve_timeout: 60s
  reconnect_max: 1s
devices:
  - id: T1
    kind: payment-terminal
    transport: tcp
    address: %s
http:
  listen: %s
pos:
  clients:
    - id: POS01
      key_sha256: %s
      terminals: [T1]
`, linkAddr, termAddr, devAddr, gwHTTP, hex.EncodeToString(sum[:])))
	csr := strings.TrimSpace(run(t, dir, "posgate", "csr", "--config", "gateway.yaml"))
	run(t, dir, "cardcenter", "enrol", "--config", "center.yaml", "--gateway-id", "GW000001", "--csr", csr,
		"--out", "gateway/link/gateway.crt", "--ca-out", "gateway/link/ca.crt")

	farmArgs := []string{"farm", "--keys", "termsim", "--terminals", "1", "--medium", "tcp-listen", "--address", devAddr, "--cards", "visa-ok:chip"}
	farm := start(t, dir, "termsim", farmArgs...)
	center := start(t, dir, "cardcenter", "--config", "center.yaml")
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	pos := posClient{t: t, base: "http://" + gwHTTP, key: apiKey}
	waitTerminalUp(t, pos, "T1")
	pos.want("sales", "till-1", map[string]any{"terminal_id": "T1", "amount": 300, "currency": "392"}, "approved", "000")

	// Pause the center so the next sale waits for its answer at the
	// terminal, then pull the cable.
	if err := center.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		tx   posTxn
	}
	done := make(chan answer, 1)
	go func() {
		code, tx := pos.post("sales", "till-2", map[string]any{"terminal_id": "T1", "amount": 800, "currency": "392"})
		done <- answer{code, tx}
	}()
	if !poll.Wait(30*time.Second, func() bool { return terminalOwesAnswer(t, filepath.Join(dir, "termsim", "T0000001.state")) }) {
		center.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("the terminal never sent the second sale:\n%s", farm.logs.String())
	}
	farm.cmd.Process.Kill()
	<-farm.done
	farm.done <- nil
	if err := center.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	farm2 := start(t, dir, "termsim", farmArgs...)

	var a answer
	select {
	case a = <-done:
	case <-time.After(120 * time.Second):
		t.Fatal("the POS request was not answered after the cable came back")
	}
	if a.code != http.StatusOK || a.tx.Status != "failed" {
		t.Fatalf("sale with a pulled cable: %d %+v, want 200 failed (resolved from the terminal's last transaction)", a.code, a.tx)
	}
	// The terminal still works, and the lost sale's reversal has gone
	// through before the books are checked (the restarted firmware sends
	// the 1420 it owes at the start of the link).
	pos.want("sales", "till-3", map[string]any{"terminal_id": "T1", "amount": 200, "currency": "392"}, "approved", "000")
	waitMetricPart(t, centerHTTP, `mti="1420"}`)
	farm2.stop(t)
	gw.stop(t)
	center.stop(t)
	if r := run(t, dir, "cardcenter", "ledger", "check", "--config", "center.yaml"); !strings.Contains(r, "OK") {
		t.Fatalf("ledger check: %s", r)
	}
}

// waitMetricPart waits (bounded: 30 s) for addr's /metrics to contain
// part.
func waitMetricPart(t *testing.T, addr, part string) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("a metric with %s at %s", part, addr), func() bool {
		return strings.Contains(metrics(addr), part)
	})
}

// farmSlave waits (bounded) for `termsim farm --medium pty` to print its
// terminal's pty line and returns the slave path the gateway opens.
func farmSlave(t *testing.T, farm *daemonProc) string {
	t.Helper()
	var m []string
	if !poll.Wait(30*time.Second, func() bool {
		m = farmLine.FindStringSubmatch(farm.logs.String())
		return m != nil
	}) {
		t.Fatalf("termsim farm printed no pty line:\n%s", farm.logs.String())
	}
	return m[2]
}

// posRig is the demo center seeded with one terminal, its simulated
// terminal on a pty (termsim farm, deck card visa-ok:chip) and a gateway
// with the POS API, all real processes started and the terminal up.
type posRig struct {
	dir, gwHTTP      string
	center, gw, farm *daemonProc
	pos              posClient
}

// startPOSRig starts a posRig whose POS API takes apiKey.
func startPOSRig(t *testing.T, apiKey string) posRig {
	t.Helper()
	dir := t.TempDir()
	linkAddr, centerHTTP := freeAddr(t, "udp"), freeAddr(t, "tcp")
	termAddr, gwHTTP := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	if err := os.WriteFile(filepath.Join(dir, "center.yaml"),
		fmt.Appendf(nil, "data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, centerHTTP), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", "1")
	run(t, dir, "hsmctl", "inject", "--format", "json", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
		"--terminal-id", "T0000001", "--ikid", "0000000100000001",
		"--fingerprint-components", "center/ceremony/fingerprint-components.json", "--out", "termsim/T0000001.json")
	// The terminal: its firmware on the master side of a pty.
	farm := start(t, dir, "termsim", "farm", "--keys", "termsim", "--terminals", "1", "--medium", "pty", "--cards", "visa-ok:chip")
	slave := farmSlave(t, farm)
	enrolPOSGateway(t, dir, linkAddr, termAddr, slave, gwHTTP, apiKey)
	center := start(t, dir, "cardcenter", "--config", "center.yaml")
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	pos := posClient{t: t, base: "http://" + gwHTTP, key: apiKey}
	waitTerminalUp(t, pos, "T1")
	return posRig{dir: dir, gwHTTP: gwHTTP, center: center, gw: gw, farm: farm, pos: pos}
}

// enrolPOSGateway writes dir/gateway.yaml for a gateway with one payment
// terminal T1 on the pty slave and one POS client POS01 holding apiKey, and
// enrols the gateway with the center configured in dir/center.yaml.
func enrolPOSGateway(t *testing.T, dir, linkAddr, termAddr, slave, gwHTTP, apiKey string) {
	t.Helper()
	sum := sha256.Sum256([]byte(apiKey))
	cfg := fmt.Sprintf(`data_dir: ./gateway
center:
  addrs: [%s]
terminals:
  listen: %s
devices:
  - id: T1
    kind: payment-terminal
    transport: usb-acm
    path: %s
http:
  listen: %s
pos:
  clients:
    - id: POS01
      key_sha256: %s
      terminals: [T1]
`, linkAddr, termAddr, slave, gwHTTP, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	csr := strings.TrimSpace(run(t, dir, "posgate", "csr", "--config", "gateway.yaml"))
	run(t, dir, "cardcenter", "enrol", "--config", "center.yaml", "--gateway-id", "GW000001", "--csr", csr,
		"--out", "gateway/link/gateway.crt", "--ca-out", "gateway/link/ca.crt")
}
