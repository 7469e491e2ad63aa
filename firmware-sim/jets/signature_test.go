package jets_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/sigcap"
	"github.com/posgate/posgate/terminal/ptytest"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// sigGateway plays the gateway for the signature tests: it approves every
// 1200, collects txn-results, and reassembles signature chunks, answering
// the first chunk it ever sees with "resend from 0" when resendFirst is set.
type sigGateway struct {
	ep          *tlink.Endpoint
	results     chan tlink.TxnResult
	sigs        chan gotSignature
	resendFirst bool

	mu     sync.Mutex
	chunks []tlink.Signature
}

type gotSignature struct {
	ref, stan string
	data      []byte
}

func (g *sigGateway) serve(t *testing.T, ctx context.Context) {
	var cur []byte
	first := true
	for {
		m, err := g.ep.Receive(ctx)
		if err != nil {
			return
		}
		switch m.Kind {
		case tlink.KindTxnResult:
			var r tlink.TxnResult
			if err := r.UnmarshalBinary(m.Payload); err != nil {
				t.Errorf("txn-result: %v", err)
				continue
			}
			g.results <- r
		case tlink.KindFinancialRequest:
			var req iso93.FinancialRequest
			if err := iso93.UnpackInto(m.Payload, &req); err != nil {
				t.Errorf("1200: %v", err)
				continue
			}
			resp := req.Response(iso93.ActionApproved)
			resp.ApprovalCode = "A1B2C3"
			raw, err := iso93.Pack(resp, iso93.MTIFinancialResponse)
			if err != nil {
				t.Errorf("pack 1210: %v", err)
				continue
			}
			g.ep.Send(ctx, tlink.KindFinancialResponse, raw)
		case tlink.KindSignature:
			var c tlink.Signature
			if err := c.UnmarshalBinary(m.Payload); err != nil {
				t.Errorf("signature chunk: %v", err)
				continue
			}
			g.mu.Lock()
			g.chunks = append(g.chunks, c)
			g.mu.Unlock()
			ack := tlink.SignatureAck{Ref: c.Ref, Status: tlink.SignatureOK}
			switch {
			case first && g.resendFirst:
				ack.Status, ack.NextOffset = tlink.SignatureResend, 0
			case c.Offset != uint32(len(cur)):
				ack.Status, ack.NextOffset = tlink.SignatureResend, uint32(len(cur))
			default:
				cur = append(cur, c.Data...)
				ack.NextOffset = uint32(len(cur))
				if len(cur) == int(c.Total) {
					ack.Status = tlink.SignatureComplete
					g.sigs <- gotSignature{ref: c.Ref, stan: c.STAN, data: cur}
					cur = nil
				}
			}
			first = false
			p, _ := ack.MarshalBinary()
			g.ep.Send(ctx, tlink.KindSignatureAck, p)
		}
	}
}

func startSig(t *testing.T, resendFirst bool) (*jets.Firmware, *sigGateway) {
	t.Helper()
	fw, err := jets.New(jets.Config{Terminal: newTerminal(t, t.TempDir()), Link: linkCfg})
	if err != nil {
		t.Fatal(err)
	}
	master, slave := ptytest.Open(t)
	port, err := transport.Open(transport.DeviceConfig{Medium: transport.Serial, Path: slave})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &sigGateway{ep: tlink.New(port, linkCfg), results: make(chan tlink.TxnResult, 4), sigs: make(chan gotSignature, 4), resendFirst: resendFirst}
	var wg sync.WaitGroup
	wg.Go(func() { fw.Serve(ctx, master) })
	wg.Go(func() { g.ep.Run(ctx) })
	wg.Go(func() { g.serve(t, ctx) })
	t.Cleanup(func() {
		cancel()
		g.ep.Close()
		wg.Wait()
	})
	return fw, g
}

func (g *sigGateway) sale(t *testing.T, ref string, amount uint64) tlink.TxnResult {
	t.Helper()
	p, err := (&tlink.TxnCommand{Ref: ref, Amount: amount, Currency: "392"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.ep.Send(ctx, tlink.KindSale, p); err != nil {
		t.Fatalf("send sale: %v", err)
	}
	select {
	case r := <-g.results:
		return r
	case <-ctx.Done():
		t.Fatalf("no txn-result for %s", ref)
	}
	return tlink.TxnResult{}
}

func TestSignatureAfterSignatureSale(t *testing.T) {
	tests := []struct {
		name        string
		resendFirst bool
	}{
		{"in_order", false},
		{"gateway_asks_resend", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, g := startSig(t, tt.resendFirst)
			// A chip sale is verified by PIN: no signature follows it.
			if r := g.sale(t, "P1@visa-ok", 1200); r.Outcome != tlink.OutcomeApproved {
				t.Fatalf("chip sale: %+v", r)
			}
			r := g.sale(t, "S2@mc-ok:magstripe", 1200)
			if r.Outcome != tlink.OutcomeApproved {
				t.Fatalf("magstripe sale: %+v", r)
			}
			var got gotSignature
			select {
			case got = <-g.sigs:
			case <-time.After(10 * time.Second):
				t.Fatal("no signature after the magstripe sale")
			}
			if got.ref != "S2@mc-ok:magstripe" || got.stan != r.STAN {
				t.Fatalf("signature for ref %q STAN %s, want the magstripe sale's (STAN %s)", got.ref, got.stan, r.STAN)
			}
			var sig sigcap.Signature
			if err := sig.UnmarshalBinary(got.data); err != nil {
				t.Fatalf("reassembled signature does not decode: %v", err)
			}
			if len(sig.Strokes) == 0 {
				t.Fatal("signature has no strokes")
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			refs := map[string]bool{}
			for _, c := range g.chunks {
				refs[c.Ref] = true
				if len(c.Data) > jets.SignatureChunk {
					t.Fatalf("chunk of %d bytes, more than SignatureChunk", len(c.Data))
				}
			}
			if len(refs) != 1 || !refs["S2@mc-ok:magstripe"] {
				t.Fatalf("signature chunks for refs %v, want only the magstripe sale", refs)
			}
			minChunks := (len(got.data) + jets.SignatureChunk - 1) / jets.SignatureChunk
			if tt.resendFirst {
				minChunks++
			}
			if len(got.data) <= jets.SignatureChunk || len(g.chunks) != minChunks {
				t.Fatalf("%d bytes in %d chunks, want %d chunks (and more than one)", len(got.data), len(g.chunks), minChunks)
			}
			if !bytes.Equal(g.chunks[0].Data, got.data[:len(g.chunks[0].Data)]) {
				t.Fatal("first chunk is not the start of the signature")
			}
		})
	}
}
