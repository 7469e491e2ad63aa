package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/internal/poll"
)

// TestSignatureStoredWithSale: a POS sale on a magstripe card through the
// farm (signature CVM) ends with the terminal's signature stored at the
// center, linked to that sale's authorization.
func TestSignatureStoredWithSale(t *testing.T) {
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
	run(t, dir, "hsmctl", "inject", "--format", "json", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
		"--terminal-id", "T0000001", "--ikid", "0000000100000001",
		"--fingerprint-components", "center/ceremony/fingerprint-components.json", "--out", "termsim/T0000001.json")

	farm := start(t, dir, "termsim", "farm", "--keys", "termsim", "--terminals", "1", "--medium", "pty", "--cards", "mc-ok:magstripe")
	slave := farmSlave(t, farm)

	const apiKey = "e2e-pos-key-0123456789"
	enrolPOSGateway(t, dir, linkAddr, termAddr, slave, gwHTTP, apiKey)

	center := start(t, dir, "cardcenter", "--config", "center.yaml")
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	pos := posClient{t: t, base: "http://" + gwHTTP, key: apiKey}
	waitTerminalUp(t, pos, "T1")

	sale := pos.want("sales", "till-sig-1", map[string]any{"terminal_id": "T1", "amount": 1200, "currency": "392"}, "approved", "000")

	// The signature follows the txn-result: wait (bounded) until the
	// center's database has it.
	cst := openCenterStore(t, filepath.Join(dir, "center", "center.db"))
	if !poll.Wait(30*time.Second, func() bool { return centerSignatures(t, cst, "T0000001") >= 1 }) {
		t.Fatalf("center stored no signature\ngateway:\n%s\ncenter:\n%s", gw.logs.String(), center.logs.String())
	}
	gw.stop(t)
	center.stop(t)
	farm.stop(t)

	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "center", "center.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var auth store.Authorization
	var sig store.Signature
	err = st.View(ctx, func(tx *store.Tx) error {
		auths, err := tx.Authorizations(ctx, store.AuthFilter{TerminalID: "T0000001", Limit: 10})
		if err != nil {
			return err
		}
		for _, a := range auths {
			if a.STAN == sale.STAN && a.MTI == "1200" {
				auth = a
			}
		}
		if auth.ID == 0 {
			return fmt.Errorf("no 1200 authorization with STAN %s among %d", sale.STAN, len(auths))
		}
		sig, err = tx.SignatureByAuthorization(ctx, auth.ID)
		return err
	})
	if err != nil {
		t.Fatalf("read the sale's signature: %v", err)
	}
	if sig.IdempotencyKey != auth.IdempotencyKey || sig.STAN != sale.STAN || sig.TerminalID != "T0000001" || sig.GatewayID != "GW000001" || sig.Format != 1 || !bytes.HasPrefix(sig.Data, []byte("SG\x01")) {
		t.Fatalf("signature %+v (%d bytes) does not match the sale (STAN %s)", sig, len(sig.Data), sale.STAN)
	}
}
