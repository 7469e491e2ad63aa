package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/protocol/iso93"
)

// TestOfflineChipAdviceDurableAtGateway runs offline chip sales while the
// center is down, with the real binaries: the terminal (termsim farm
// --floor-limit 2000, DDA) approves two contact chip sales under its floor
// limit offline and sends their 1220 advices; posgate cannot reach the
// center, so it stores each advice in its offline queue and answers 1230
// 000 ("accepted for forwarding"); the terminal also sends each sale's
// signature, which posgate queues (holding it until the sale's advice has
// arrived when it comes first). The gateway's queue shows two pending
// records. When cardcenter starts, the advices go up (posted as approved,
// captured 1220s), the signatures follow, linked to the advices'
// authorizations, and the ledger adds up. No daemon prints a clear PAN.
func TestOfflineChipAdviceDurableAtGateway(t *testing.T) {
	dir := t.TempDir()
	linkAddr, centerHTTP := freeAddr(t, "udp"), freeAddr(t, "tcp")
	termAddr, gwHTTP := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	if err := os.WriteFile(filepath.Join(dir, "center.yaml"),
		[]byte(fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, centerHTTP)), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", "1")
	run(t, dir, "hsmctl", "inject", "--format", "json", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
		"--terminal-id", "T0000001", "--ikid", "0000000100000001",
		"--fingerprint-components", "center/ceremony/fingerprint-components.json",
		"--imk-components", "center/ceremony/imk-components.json",
		"--smi-components", "center/ceremony/imk-smi-components.json", "--smc-components", "center/ceremony/imk-smc-components.json",
		"--out", "termsim/T0000001.json")

	sales := []struct {
		card   string
		amount int64
	}{{"visa-ok", 1500}, {"mc-ok", 2000}} // both at or under the floor limit
	var cards []string
	for _, s := range sales {
		cards = append(cards, s.card+":chip")
	}
	farm := start(t, dir, "termsim", "farm", "--keys", "termsim", "--terminals", "1", "--medium", "pty",
		"--floor-limit", "2000", "--cards", strings.Join(cards, ","))
	slave := farmSlave(t, farm)
	const apiKey = "e2e-pos-key-chipdur-01"
	enrolPOSGateway(t, dir, linkAddr, termAddr, slave, gwHTTP, apiKey)

	// The center is down: the gateway's link never comes up.
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	var center *daemonProc
	t.Cleanup(func() {
		if t.Failed() {
			logs := ""
			if center != nil {
				logs = center.logs.String()
			}
			t.Logf("cardcenter:\n%s\nposgate:\n%s\ntermsim farm:\n%s", tail(logs, 6000), tail(gw.logs.String(), 8000), tail(farm.logs.String(), 6000))
		}
	})
	waitMetric(t, gwHTTP, "posgate_link_up 0")
	pos := posClient{t: t, base: "http://" + gwHTTP, key: apiKey}
	waitTerminalUp(t, pos, "T1")

	txns := make([]posTxn, len(sales))
	var total int64
	for i, s := range sales {
		tx := pos.want("sales", fmt.Sprintf("chipdur-%d", i+1), map[string]any{"terminal_id": "T1", "amount": s.amount, "currency": "392"}, "approved", "000")
		if !strings.HasPrefix(tx.Approval, "Y1") {
			t.Fatalf("sale %d: approval code %q, want an offline approval (Y1…)", i+1, tx.Approval)
		}
		txns[i] = tx
		total += s.amount
	}
	// Both advices are in the gateway's queue (so stored for forwarding),
	// answered 000 by the gateway (the terminal logged no refusal).
	waitStatus(t, gwHTTP, "two advices queued", func(st offlineStatus) bool {
		return st.Queue["pending"].Count == 2 && st.Queue["pending"].Amount == total && st.Exposure == total
	})
	for _, bad := range []string{"offline approval advice not delivered", "offline approval advice refused", "offline approval advice not taken"} {
		if strings.Contains(farm.logs.String(), bad) {
			t.Fatalf("the terminal was not told its advices were accepted (%q):\n%s", bad, tail(farm.logs.String(), 4000))
		}
	}
	// The signatures of both sales were accepted by the gateway (and wait
	// for the center in its signature queue).
	waitCounter(t, gwHTTP, "posgate_signatures_accepted_total", 2)
	if strings.Contains(gw.logs.String(), "signature refused") {
		t.Fatalf("the gateway refused an offline sale's signature")
	}

	center = start(t, dir, "cardcenter", "--config", "center.yaml")
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	waitStatus(t, gwHTTP, "both advices accepted", func(st offlineStatus) bool {
		return queueDrained(st) && st.Queue["accepted"].Count == 2 && st.Exposure == 0
	})
	cst := openCenterStore(t, filepath.Join(dir, "center", "center.db"))
	poll.Until(t, 60*time.Second, "both signatures stored at the center", func() bool { return centerSignatures(t, cst, "T0000001") >= 2 })

	gw.stop(t)
	center.stop(t)
	farm.stop(t)
	if r := run(t, dir, "cardcenter", "ledger", "check", "--config", "center.yaml"); !strings.Contains(r, "OK") {
		t.Fatalf("ledger check: %s", r)
	}
	ctx := context.Background()
	cst, err := store.Open(ctx, store.Config{Driver: "sqlite", Path: filepath.Join(dir, "center", "center.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	err = cst.View(ctx, func(tx *store.Tx) error {
		auths, err := tx.Authorizations(ctx, store.AuthFilter{TerminalID: "T0000001", Limit: 100})
		if err != nil {
			return err
		}
		for i, s := range sales {
			var found []store.Authorization
			for _, a := range auths {
				if a.STAN == txns[i].STAN {
					found = append(found, a)
				}
			}
			if len(found) != 1 {
				return fmt.Errorf("sale %d (STAN %s): %d authorizations at the center, want 1", i+1, txns[i].STAN, len(found))
			}
			a := found[0]
			if a.MTI != iso93.MTIAdvice || a.ActionCode != iso93.ActionApproved || a.Status != store.AuthCaptured || a.Amount != s.amount || a.GatewayID != "GW000001" {
				return fmt.Errorf("sale %d at the center: MTI %s action %s status %v amount %d gateway %s, want a captured 1220 of %d",
					i+1, a.MTI, a.ActionCode, a.Status, a.Amount, a.GatewayID, s.amount)
			}
			sig, err := tx.SignatureByAuthorization(ctx, a.ID)
			if err != nil {
				return fmt.Errorf("sale %d: signature of authorization %d: %w", i+1, a.ID, err)
			}
			if sig.IdempotencyKey != a.IdempotencyKey || sig.STAN != a.STAN || sig.TerminalID != "T0000001" || sig.GatewayID != "GW000001" || !bytes.HasPrefix(sig.Data, []byte("SG\x01")) {
				return fmt.Errorf("sale %d: signature %+v (%d bytes) does not match its advice", i+1, sig, len(sig.Data))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := center.logs.String() + gw.logs.String() + farm.logs.String()
	for _, c := range deck.Cards() {
		if strings.Contains(all, c.PAN) {
			t.Errorf("a daemon's output carries the clear PAN of deck card %s", c.Name)
		}
	}
	// The bbolt file holds the advices sealed: no masked PAN in clear.
	raw, err := os.ReadFile(filepath.Join(dir, "gateway", "offline.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range txns {
		if tx.MaskedPAN != "" && bytes.Contains(raw, []byte(tx.MaskedPAN)) {
			t.Errorf("the gateway's bbolt file holds masked PAN %s in clear", tx.MaskedPAN)
		}
	}
}

// waitCounter waits (bounded: 60 s) until the metric name on addr's
// /metrics is at least n.
func waitCounter(t *testing.T, addr, name string, n float64) {
	t.Helper()
	var v float64
	if !poll.Wait(60*time.Second, func() bool {
		for _, l := range strings.Split(metrics(addr), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == name {
				v, _ = strconv.ParseFloat(f[1], 64)
			}
		}
		return v >= n
	}) {
		t.Fatalf("%s at %s is %v after 60s, want at least %v", name, addr, v, n)
	}
}
