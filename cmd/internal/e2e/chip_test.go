package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/firmware-sim/deck"
)

// TestChipSalesEndToEnd runs EMV sales with the real binaries: POS API →
// posgate → a real pty → the simulated firmware's EMV kernel (termsim
// farm, its deck cards personalised under the IMK-AC components the
// center's bootstrap wrote, copied into the bundle by hsmctl inject
// --imk-components) → posgate → QUIC → cardcenter, which verifies the
// ARQC in SoftHSM and answers the ARPC in DE 55 tag 91. A chip sale is
// approved only when the card accepts that ARPC in its second GENERATE AC
// (TC); a contactless sale carries the cryptogram of the tap; a dead chip
// falls back to the stripe (the demo products allow fallback); a cloned
// chip's ARQC does not verify and the sale is declined 102.
func TestChipSalesEndToEnd(t *testing.T) {
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

	// The cards are presented in this order, one per POS sale.
	type sale struct {
		card, entry    string
		status, action string
	}
	sales := []sale{
		{"visa-ok", "chip", "approved", "000"},
		{"mc-ok", "contactless", "approved", "000"},
		{"mc-chipdead", "chip", "approved", "000"},
		{"visa-cloned", "chip", "declined", "102"},
		{"visa-ok", "chip", "approved", "000"}, // the ATC advanced
	}
	var cards []string
	for _, s := range sales {
		cards = append(cards, s.card+":"+s.entry)
	}
	farm := start(t, dir, "termsim", "farm", "--keys", "termsim", "--terminals", "1", "--medium", "pty",
		"--cards", strings.Join(cards, ","))
	slave := farmSlave(t, farm)

	const apiKey = "e2e-pos-key-chip-0123"
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

	for i, s := range sales {
		t.Run(fmt.Sprintf("%d_%s_%s", i+1, strings.ReplaceAll(s.card, "-", "_"), s.entry), func(t *testing.T) {
			pos.t = t
			pos.want("sales", fmt.Sprintf("chip-%d", i+1), map[string]any{"terminal_id": "T1", "amount": 1500, "currency": "392"}, s.status, s.action)
		})
		pos.t = t
	}
	logs := center.logs.String()
	if !strings.Contains(logs, "arqc_invalid") && !strings.Contains(farm.logs.String(), "102") {
		t.Error("the cloned chip's decline left no trace of an ARQC failure")
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
