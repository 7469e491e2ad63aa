package c2c

import (
	"context"
	"log/slog"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/protocol/iso93"
)

type approveAll struct{}

func (approveAll) Authorize(context.Context, authz.Request) (authz.Response, error) {
	return authz.Response{ActionCode: "000", ApprovalCode: "000001", RRN: "000000000001"}, nil
}

// FuzzHandle feeds arbitrary message bodies to the port's request handler.
// Invariant: an answer, when given, is a well-formed response of the
// request's class, and a request that Unpack reads is answered with its
// own STAN.
func FuzzHandle(f *testing.F) {
	echo, _ := iso93.NetworkCodec{}.Echo("HO1", 7)
	f.Add(echo)
	m := iso93.FinancialRequest{
		Trace: iso93.Trace{TransmissionTime: "1124101500", STAN: "000001", LocalTime: "261124101500",
			FunctionCode: iso93.FunctionOriginalFinancial, AcquirerID: "1", TerminalID: "TERM0002", MerchantID: "M0000002       "},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 100, POSDataCode: "100000000000", Currency: "392"},
		Card:    iso93.Card{PAN: "4111111111111111"},
	}
	raw, _ := iso93.Pack(&m, iso93.MTIFinancialRequest)
	f.Add(raw)
	f.Add([]byte("1200\xff\xff"))
	f.Add([]byte("1804"))
	s := &Server{cfg: Config{Switch: approveAll{}}, log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, in []byte) {
		cn := &conn{s: s, office: "HO1", log: s.log}
		out := cn.handle(context.Background(), in)
		if out == nil {
			return
		}
		mti, _, err := iso93.Unpack(out)
		if err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		if len(in) < 4 || mti[:2] != string(in[:2]) || !iso93.IsResponse(mti) {
			t.Fatalf("answer MTI %s to a message starting %q", mti, in[:min(4, len(in))])
		}
		if h, err := iso93.Peek(in); err == nil && h.STAN != "" {
			if oh, _ := iso93.Peek(out); oh.STAN != h.STAN {
				t.Fatalf("answer STAN %q, request STAN %q", oh.STAN, h.STAN)
			}
		}
	})
}
