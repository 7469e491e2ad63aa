package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/posgate/posgate/firmware-sim/deck"
)

// centerAPI calls the center's REST API with an admin key.
type centerAPI struct {
	t    *testing.T
	base string
	key  string
}

// do sends method path with body (nil: none) and decodes a 200 answer
// into out.
func (c centerAPI) do(method, path string, body, out any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+"/api/v1"+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		c.t.Fatalf("%s %s: answer does not decode: %v", method, path, err)
	}
}

// cardID returns the center's id of the issued card with c's masked PAN.
func (c centerAPI) cardID(card deck.Card) int64 {
	c.t.Helper()
	var v struct {
		Cards []struct {
			ID        int64  `json:"id"`
			MaskedPAN string `json:"masked_pan"`
		} `json:"cards"`
	}
	c.do("GET", "/cards?limit=100", nil, &v)
	for _, x := range v.Cards {
		if x.MaskedPAN == card.Masked() {
			return x.ID
		}
	}
	c.t.Fatalf("the center lists no card %s", card.Masked())
	return 0
}

// centerTxns returns how many of terminal T0000001's transactions at the
// center are of card id, and their action codes in order of listing.
func (c centerAPI) centerTxns(id int64) (int, []string) {
	c.t.Helper()
	var v struct {
		Transactions []struct {
			CardID     int64  `json:"card_id"`
			ActionCode string `json:"action_code"`
		} `json:"transactions"`
	}
	c.do("GET", "/transactions?terminal=T0000001&limit=100", nil, &v)
	var codes []string
	for _, x := range v.Transactions {
		if x.CardID == id {
			codes = append(codes, x.ActionCode)
		}
	}
	return len(codes), codes
}

// TestChipBlockScriptEndToEnd: the center's issuer script blocks the
// simulated card. The terminal's bundle carries the IMK-AC, IMK-SMI and
// IMK-SMC the center's bootstrap wrote (hsmctl inject --imk-components
// --smi-components --smc-components). An active card's chip sale is
// approved; the card is reported lost through the center's REST API; its
// next chip sale is declined 208 and the response DE 55 carries
// APPLICATION BLOCK (template 72, MACed in the token), which the card
// runs (9000) after its second GENERATE AC. The observable of the block:
// the card's third sale is declined by the card at the terminal (its
// first GENERATE AC answers an AAC: action 100, termsim logs "the card
// declined offline"), and the center records no transaction for it (its
// count of the card's transactions does not move). Another card at the
// same terminal is still approved.
//
// The card cannot be made active again to show that the block, not the
// center's status, declines: the API allows a lost card only to close.
// The center-side count is what shows that the decline happened in the
// card.
func TestChipBlockScriptEndToEnd(t *testing.T) {
	dir := t.TempDir()
	linkAddr, centerHTTP := freeAddr(t, "udp"), freeAddr(t, "tcp")
	termAddr, gwHTTP := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	if err := os.WriteFile(filepath.Join(dir, "center.yaml"),
		[]byte(fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, centerHTTP)), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", "1")
	for _, f := range []string{"imk-components.json", "imk-smi-components.json", "imk-smc-components.json"} {
		if _, err := os.Stat(filepath.Join(dir, "center/ceremony", f)); err != nil {
			t.Fatalf("the center's bootstrap wrote no %s: %v", f, err)
		}
	}
	run(t, dir, "hsmctl", "inject", "--format", "json", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
		"--terminal-id", "T0000001", "--ikid", "0000000100000001",
		"--fingerprint-components", "center/ceremony/fingerprint-components.json",
		"--imk-components", "center/ceremony/imk-components.json",
		"--smi-components", "center/ceremony/imk-smi-components.json",
		"--smc-components", "center/ceremony/imk-smc-components.json",
		"--out", "termsim/T0000001.json")
	adminKey := strings.TrimSpace(run(t, dir, "cardcenter", "api-key", "--config", "center.yaml", "--role", "admin"))

	visa, err := deck.Lookup("visa-ok")
	if err != nil {
		t.Fatal(err)
	}
	// The cards are presented in this order, one per POS sale.
	farm := start(t, dir, "termsim", "farm", "--keys", "termsim", "--terminals", "1", "--medium", "pty",
		"--cards", "visa-ok:chip,visa-ok:chip,visa-ok:chip,mc-ok:chip")
	slave := farmSlave(t, farm)
	const posKey = "e2e-pos-key-script-01"
	enrolPOSGateway(t, dir, linkAddr, termAddr, slave, gwHTTP, posKey)
	center := start(t, dir, "cardcenter", "--config", "center.yaml")
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cardcenter:\n%s\nposgate:\n%s\ntermsim farm:\n%s", center.logs.String(), gw.logs.String(), farm.logs.String())
		}
	})
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	pos := posClient{t: t, base: "http://" + gwHTTP, key: posKey}
	waitTerminalUp(t, pos, "T1")
	api := centerAPI{t: t, base: "http://" + centerHTTP, key: adminKey}
	id := api.cardID(visa)
	body := map[string]any{"terminal_id": "T1", "amount": 1500, "currency": "392"}

	pos.want("sales", "script-1", body, "approved", "000")
	var card struct {
		Status string `json:"status"`
	}
	api.do("POST", fmt.Sprintf("/cards/%d/status", id), map[string]any{"action": "lost"}, &card)
	if card.Status != "lost" {
		t.Fatalf("card status %q after the lost action", card.Status)
	}

	pos.want("sales", "script-2", body, "declined", "208")
	if l := farm.logs.String(); !strings.Contains(l, "issuer script run") || !strings.Contains(l, "status_words=9000") || !strings.Contains(l, "card_blocked=true") {
		t.Fatalf("termsim logged no APPLICATION BLOCK run by the card:\n%s", l)
	}
	n2, codes := api.centerTxns(id)
	if n2 < 2 || !slices.Contains(codes, "208") || !slices.Contains(codes, "000") {
		t.Fatalf("the center has the card's transactions %v, want the approval and the 208", codes)
	}

	pos.want("sales", "script-3", body, "declined", "100")
	if l := farm.logs.String(); !strings.Contains(l, "the card declined offline (AAC)") {
		t.Fatalf("termsim did not log the card's offline decline:\n%s", l)
	}
	if n3, codes := api.centerTxns(id); n3 != n2 {
		t.Fatalf("the center has %d transactions of the card after the blocked sale, %d before (%v): the blocked card's sale went online", n3, n2, codes)
	}

	pos.want("sales", "script-4", body, "approved", "000") // another card at the same terminal

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
