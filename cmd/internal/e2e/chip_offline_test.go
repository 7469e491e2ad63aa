package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/protocol/iso93"
)

// TestOfflineChipApprovalEndToEnd runs chip sales with the real binaries
// and a terminal floor limit (termsim farm --floor-limit 2000, whose card
// bureau personalises the deck's chips for offline data authentication
// under a test CA the terminals trust): a sale at or under the floor
// limit is authenticated offline (DDA) and approved by the card's TC at
// the terminal (approval code Y1...), which then sends a 1220 advice
// (function 201) with the TC in DE 55 through posgate to cardcenter,
// whose advice path posts it; a sale above the floor limit goes online
// with an ARQC as before; an offline sale is voided (the 1420 names the
// 1220). The center ends with an approved 1220 for each offline sale,
// captured or (the voided one) reversed, and a balanced ledger.
// It runs with the terminal doing DDA and, with termsim farm --cda, CDA.
func TestOfflineChipApprovalEndToEnd(t *testing.T) {
	for _, method := range []string{"DDA", "CDA"} {
		t.Run(strings.ToLower(method), func(t *testing.T) { offlineChipEndToEnd(t, method) })
	}
}

func offlineChipEndToEnd(t *testing.T, method string) {
	dir := t.TempDir()
	linkAddr, centerHTTP := freeAddr(t, "udp"), freeAddr(t, "tcp")
	termAddr, gwHTTP := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("center.yaml", fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, centerHTTP))
	run(t, dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", "1")
	if _, err := os.Stat(filepath.Join(dir, "center/ceremony/imk-components.json")); err != nil {
		t.Fatalf("the center's bootstrap wrote no IMK-AC components: %v", err)
	}
	run(t, dir, "hsmctl", "inject", "--format", "json", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
		"--terminal-id", "T0000001", "--ikid", "0000000100000001",
		"--fingerprint-components", "center/ceremony/fingerprint-components.json",
		"--imk-components", "center/ceremony/imk-components.json",
		"--smi-components", "center/ceremony/imk-smi-components.json", "--smc-components", "center/ceremony/imk-smc-components.json",
		"--out", "termsim/T0000001.json")

	// The cards are presented in this order, one per POS sale; the
	// farm's floor limit is 2000.
	type sale struct {
		card    string
		amount  int
		offline bool
		status  store.AuthStatus // at the center, at the end
	}
	sales := []sale{
		{"visa-ok", 1500, true, store.AuthCaptured},
		{"visa-ok", 2500, false, store.AuthCaptured}, // above the floor limit: ARQC, online
		{"mc-ok", 2000, true, store.AuthReversed},    // at the floor limit; voided below
	}
	var cards []string
	for _, s := range sales {
		cards = append(cards, s.card+":chip")
	}
	farmArgs := []string{"farm"}
	if method == "CDA" {
		farmArgs = append(farmArgs, "--cda")
	}
	farm := start(t, dir, "termsim", append(farmArgs, "--keys", "termsim", "--terminals", "1", "--medium", "pty",
		"--floor-limit", "2000", "--cards", strings.Join(cards, ","))...)
	slave := farmSlave(t, farm)

	const apiKey = "e2e-pos-key-chipoff-01"
	enrolPOSGateway(t, dir, linkAddr, termAddr, slave, gwHTTP, apiKey)

	center := start(t, dir, "cardcenter", "--config", "center.yaml")
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cardcenter:\n%s\nposgate:\n%s\ntermsim farm:\n%s", center.logs.String(), gw.logs.String(), farm.logs.String())
		}
	})
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	pos := posClient{t: t, base: "http://" + gwHTTP, key: apiKey}
	waitTerminalUp(t, pos, "T1")

	txns := make([]posTxn, len(sales))
	for i, s := range sales {
		t.Run(fmt.Sprintf("%d_%s_%d", i+1, strings.ReplaceAll(s.card, "-", "_"), s.amount), func(t *testing.T) {
			pos.t = t
			tx := pos.want("sales", fmt.Sprintf("chipoff-%d", i+1), map[string]any{"terminal_id": "T1", "amount": s.amount, "currency": "392"}, "approved", "000")
			if offline := strings.HasPrefix(tx.Approval, "Y1"); offline != s.offline {
				t.Fatalf("approval code %q: offline %v, want %v", tx.Approval, offline, s.offline)
			}
			txns[i] = tx
		})
		pos.t = t
	}
	if t.Failed() {
		return
	}
	// The offline sale at the floor limit is voided: the 1420 names the
	// 1220 in the terminal's journal.
	pos.want("voids", "chipoff-void", map[string]any{"terminal_id": "T1", "original_transaction_id": txns[2].ID}, "approved", "400")

	gw.stop(t)
	center.stop(t)
	if r := run(t, dir, "cardcenter", "ledger", "check", "--config", "center.yaml"); !strings.Contains(r, "OK") {
		t.Fatalf("ledger check: %s", r)
	}
	cst, err := store.Open(context.Background(), store.Config{Driver: "sqlite", Path: filepath.Join(dir, "center", "center.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	var auths []store.Authorization
	err = cst.View(context.Background(), func(tx *store.Tx) error {
		var err error
		auths, err = tx.Authorizations(context.Background(), store.AuthFilter{TerminalID: "T0000001", Limit: 100})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sales {
		var found *store.Authorization
		for j := range auths {
			if auths[j].STAN == txns[i].STAN {
				found = &auths[j]
			}
		}
		if found == nil {
			t.Errorf("sale %d (STAN %s): no authorization at the center", i+1, txns[i].STAN)
			continue
		}
		wantMTI := iso93.MTIFinancialRequest
		if s.offline {
			wantMTI = iso93.MTIAdvice
		}
		if found.MTI != wantMTI || found.ActionCode != iso93.ActionApproved || found.Status != s.status || found.Amount != int64(s.amount) {
			t.Errorf("sale %d at the center: MTI %s action %s status %v amount %d, want %s 000 %v %d",
				i+1, found.MTI, found.ActionCode, found.Status, found.Amount, wantMTI, s.status, s.amount)
		}
	}
	all := center.logs.String() + gw.logs.String() + farm.logs.String()
	if !strings.Contains(farm.logs.String(), "approved offline") || !strings.Contains(farm.logs.String(), "method="+method) {
		t.Errorf("the farm logged no offline approval by %s", method)
	}
	for _, c := range deck.Cards() {
		if strings.Contains(all, c.PAN) {
			t.Errorf("a daemon's output carries the clear PAN of deck card %s", c.Name)
		}
	}
}
