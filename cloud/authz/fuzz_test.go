package authz_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

// FuzzAuthorize feeds the switch requests whose outside fields (everything a
// gateway controls) are arbitrary. Invariants: no fault, a recorded answer
// is returned unchanged on repeat, an approval carries a 6-character code,
// and the ledger stays provable with no account overdrawn.
func FuzzAuthorize(f *testing.F) {
	st := storetest.OpenSQLite(f)
	w := cloudtest.NewWorld(f, st)
	c := w.NewCard(f, store.KindPrepaid, 0, 5000)
	seed := w.Request("1200", c, 100)
	f.Add(seed.MTI, seed.TerminalID, seed.STAN, seed.ProcessingCode, int64(100), seed.Currency, seed.LocalTime, seed.CardBlock, seed.Fingerprint, "")
	r2 := w.Request("1100", c, 6000)
	f.Add(r2.MTI, r2.TerminalID, r2.STAN, r2.ProcessingCode, int64(6000), r2.Currency, r2.LocalTime, r2.CardBlock, r2.Fingerprint, "")
	f.Add("1420", seed.TerminalID, "000001", "000000", int64(100), "392", "", []byte(nil), "", seed.IdempotencyKey)
	f.Add("1220", seed.TerminalID, "000002", "000000", int64(-5), "840", "991399000000", []byte{1, 1, 0x30, 0}, "zz", "x")
	f.Add("0100", "", "", "", int64(0), "", "", []byte{}, "", "")
	var n int
	f.Fuzz(func(t *testing.T, mti, terminal, stan, pc string, amount int64, currency, local string, block []byte, fp, orig string) {
		n++
		r := authz.Request{MTI: mti, GatewayID: cloudtest.Gateway, TerminalID: terminal, STAN: stan, ProcessingCode: pc,
			Amount: amount, Currency: currency, LocalTime: local, IdempotencyKey: "fuzz-" + strconv.Itoa(n),
			CardBlock: block, Fingerprint: fp}
		if orig != "" {
			r.Original = &authz.OriginalData{IdempotencyKey: orig}
		}
		ctx := context.Background()
		first, err := w.Switch.Authorize(ctx, r)
		if err != nil {
			t.Fatalf("fault on outside input: %v", err)
		}
		if len(first.ActionCode) != 3 {
			t.Fatalf("action code %q", first.ActionCode)
		}
		if first.ActionCode == "000" && len(first.ApprovalCode) != 6 {
			t.Fatalf("approval without a 6-character code: %+v", first)
		}
		again, err := w.Switch.Authorize(ctx, r)
		if err != nil || !sameResponse(again, first) {
			t.Fatalf("repeat = %+v, %v; first = %+v", again, err, first)
		}
		cloudtest.CheckLedger(t, st)
	})
}
