package ecr

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/posgate/posgate/terminal/tlink"
)

// FuzzParse feeds request bodies to the strict decoder: it never panics,
// and a body it accepts, re-encoded from its canonical form, parses to the
// same canonical request (the idempotency fingerprint's input).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"terminal_id":"T1","amount":1000,"currency":"392"}`,
		`{"terminal_id":"T1","original_transaction_id":"tx1"}`,
		`{"terminal_id":"T1","amount":5,"currency":"840","original_transaction_id":"tx1"}`,
		`{"terminal_id":"T1","amount":1e3,"currency":"392"}`,
		`{"terminal_id":"T1","amount":-1}`,
		`{"x":1}`, `[]`, `null`, ``,
	} {
		f.Add(uint8(0), s)
	}
	kinds := []tlink.Kind{tlink.KindSale, tlink.KindRefund, tlink.KindVoid, tlink.KindPreAuth, tlink.KindCapture}
	f.Fuzz(func(t *testing.T, k uint8, body string) {
		kind := kinds[int(k)%len(kinds)]
		c, aerr := parse(kind, strings.NewReader(body))
		if aerr != nil {
			if aerr.code == "" || aerr.status < 400 {
				t.Fatalf("error without code or status: %+v", aerr)
			}
			return
		}
		req := TxnRequest{TerminalID: c.TerminalID, Currency: c.Currency, OriginalID: c.OriginalID}
		if c.Amount != 0 {
			req.Amount = json.Number(strings.TrimSpace(jsonUint(c.Amount)))
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		c2, aerr := parse(kind, strings.NewReader(string(b)))
		if aerr != nil || c2 != c {
			t.Fatalf("round trip: %+v → %s → %+v (%v)", c, b, c2, aerr)
		}
		if err := (&tlink.TxnCommand{Ref: "R", Amount: c.Amount, Currency: c.Currency, OrigRef: c.OriginalID}).Validate(kind); err != nil {
			t.Fatalf("accepted request makes an invalid terminal command: %v", err)
		}
	})
}

func jsonUint(v uint64) string { b, _ := json.Marshal(v); return string(b) }

// BenchmarkParse measures the strict decoding and validation of a sale body.
func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	const body = `{"terminal_id":"T1","amount":1000,"currency":"392"}`
	for b.Loop() {
		if _, aerr := parse(tlink.KindSale, strings.NewReader(body)); aerr != nil {
			b.Fatal(aerr.code)
		}
	}
}
