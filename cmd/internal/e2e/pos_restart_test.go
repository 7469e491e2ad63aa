package e2e_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/internal/poll"
)

// TestPOSRetryAfterGatewayKill SIGKILLs the real posgate process twice:
// once after a sale was answered, once while a sale waits at the terminal
// for the center. After each restart the POS retries with the same
// Idempotency-Key: it gets the first transaction (the settled one
// unchanged; the one cut short as "unknown", resolved_by gateway_restart,
// until the terminal's outcome settles it), a different body
// under the key still gets 409, and the terminal never sees a second
// command.
func TestPOSRetryAfterGatewayKill(t *testing.T) {
	rig := startPOSRig(t, "e2e-pos-key-restart-01")
	dir, gwHTTP, center, gw, farm, pos := rig.dir, rig.gwHTTP, rig.center, rig.gw, rig.farm, rig.pos
	yen := func(amount int64) map[string]any {
		return map[string]any{"terminal_id": "T1", "amount": amount, "currency": "392"}
	}

	// 1. A settled sale survives a SIGKILL.
	sale := pos.want("sales", "till-1", yen(1000), "approved", "000")
	kill(t, gw)
	gw = start(t, dir, "posgate", "--config", "gateway.yaml")
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	waitTerminalUp(t, pos, "T1")
	if again := pos.want("sales", "till-1", yen(1000), "approved", "000"); again != sale {
		t.Fatalf("retry after the restart: %+v, first %+v", again, sale)
	}
	if code, _ := pos.post("sales", "till-1", yen(1001)); code != http.StatusConflict {
		t.Fatalf("other body under the key after the restart: %d, want 409", code)
	}

	// 2. A sale cut short by a SIGKILL: the center is paused so the sale
	// waits at the terminal, and the gateway dies meanwhile.
	if err := center.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	go rawPost(pos, "sales", "till-2", yen(800)) // its connection dies with the gateway
	if !poll.Wait(30*time.Second, func() bool { return terminalOwesAnswer(t, filepath.Join(dir, "termsim", "T0000001.state")) }) {
		center.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("the terminal never started the second sale:\n%s", farm.logs.String())
	}
	kill(t, gw)
	if err := center.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	gw = start(t, dir, "posgate", "--config", "gateway.yaml")
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	waitTerminalUp(t, pos, "T1")
	code, cut := pos.post("sales", "till-2", yen(800))
	if (code != http.StatusAccepted && code != http.StatusOK) || cut.ID == "" {
		t.Fatalf("retry of the sale cut short: %d %+v, want its record", code, cut)
	}
	// The restarted gateway settles the record with the terminal's outcome:
	// by its last-transaction query, or by the terminal's own txn-result
	// when the terminal was still working on the sale.
	var full struct {
		Status     string `json:"status"`
		ResolvedBy string `json:"resolved_by"`
	}
	if !poll.Wait(30*time.Second, func() bool {
		getJSON(t, pos, "/pos/v1/transactions/"+cut.ID, &full)
		if (full.ResolvedBy == "last_txn_query" || full.ResolvedBy == "late_result") && full.Status != "unknown" && full.Status != "in_progress" {
			return true
		}
		if full.ResolvedBy != "gateway_restart" || full.Status != "unknown" {
			t.Fatalf("the sale cut short is %+v, want unknown (gateway_restart) until the query settles it", full)
		}
		return false
	}) {
		t.Fatalf("the sale cut short was never settled by the terminal: %+v", full)
	}
	t.Logf("the sale cut short settled as %s by %s", full.Status, full.ResolvedBy)
	if code, _ := pos.post("sales", "till-2", yen(801)); code != http.StatusConflict {
		t.Fatalf("other body under the cut key: %d, want 409", code)
	}
	if code, _ := pos.post("sales", "till-1", yen(1000)); code != http.StatusOK {
		t.Fatalf("the first sale after the second restart: %d", code)
	}

	// The terminal ran exactly the two sales.
	farm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-farm.done:
		farm.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("termsim farm did not stop on SIGTERM")
	}
	lines := strings.Split(strings.TrimSpace(farm.logs.String()), "\n")
	var fs struct {
		Transactions int `json:"transactions"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &fs); err != nil {
		t.Fatalf("farm's last line is not its summary: %v", err)
	}
	if fs.Transactions != 2 {
		t.Fatalf("the terminal ran %d transactions, want 2 (a retry must not reach it)", fs.Transactions)
	}
	gw.stop(t)
	center.stop(t)
	all := center.logs.String() + gw.logs.String() + farm.logs.String()
	for _, c := range deck.Cards() {
		if strings.Contains(all, c.PAN) {
			t.Errorf("a daemon's output carries the clear PAN of deck card %s", c.Name)
		}
	}
}

// rawPost posts without failing the test: its answer does not matter.
func rawPost(c posClient, route, idemKey string, body map[string]any) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", c.base+"/pos/v1/"+route, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Idempotency-Key", idemKey)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func getJSON(t *testing.T, c posClient, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
