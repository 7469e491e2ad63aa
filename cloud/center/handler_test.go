package center

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

// recorder is an Authorizer that remembers the request and answers as told;
// the handler's job (mapping ISO fields, refusing what cannot be decided) is
// what these tests check, the switch has its own suite.
type recorder struct {
	got  []authz.Request
	resp authz.Response
	err  error
}

func (r *recorder) Authorize(_ context.Context, req authz.Request) (authz.Response, error) {
	r.got = append(r.got, req)
	return r.resp, r.err
}

func testSale(t *testing.T) []byte {
	t.Helper()
	req := iso93.FinancialRequest{
		Trace: iso93.Trace{TransmissionTime: "1124120000", STAN: "000321", LocalTime: "261124120000",
			FunctionCode: iso93.FunctionOriginalFinancial, AcquirerID: "99000001", TerminalID: "T0000001",
			MerchantID: "MERCHANT0000001", IdempotencyKey: "idem-1", GatewayID: "FORGED"},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 1500, POSDataCode: "510101513001", Currency: "392"},
		Card: iso93.Card{CardData: bytes.Repeat([]byte{1}, 40), KSN: bytes.Repeat([]byte{2}, 12),
			Fingerprint: "00112233445566778899aabbccddeeff", MaskedPAN: "411111******1111"},
	}
	raw, err := iso93.Pack(&req, iso93.MTIFinancialRequest)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestLinkHandler(t *testing.T) {
	peer := link.Peer{GatewayID: "GW000001"}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("approved_sale_maps_fields", func(t *testing.T) {
		rec := &recorder{resp: authz.Response{ActionCode: "000", ApprovalCode: "A1B2C3", RRN: "000000000042"}}
		h := &LinkHandler{Switch: rec, Logger: quiet, Metrics: NewMetrics()}
		raw, err := h.ServeLink(t.Context(), peer, testSale(t))
		if err != nil {
			t.Fatal(err)
		}
		var resp iso93.FinancialResponse
		if err := iso93.UnpackInto(raw, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.ActionCode != "000" || resp.ApprovalCode != "A1B2C3" || resp.RRN != "000000000042" || resp.STAN != "000321" {
			t.Fatalf("response %+v", resp)
		}
		r := rec.got[0]
		if r.GatewayID != "GW000001" {
			t.Errorf("gateway id %q: must come from the certificate, not DE 126", r.GatewayID)
		}
		if r.Amount != 1500 || r.Currency != "392" || r.TerminalID != "T0000001" || r.IdempotencyKey != "idem-1" || len(r.CardBlock) != 40 || len(r.KSN) != 12 {
			t.Errorf("request mapped wrong: %+v", r)
		}
	})
	t.Run("completion_advice_names_its_original", func(t *testing.T) {
		rec := &recorder{resp: authz.Response{ActionCode: "000", RRN: "000000000043"}}
		h := &LinkHandler{Switch: rec, Logger: quiet}
		_, msg, err := iso93.Unpack(testSale(t))
		if err != nil {
			t.Fatal(err)
		}
		msg.MTI(iso93.MTIAdvice)
		msg.Field(iso93.FieldFunctionCode, iso93.FunctionPreviousApproval)
		msg.Field(iso93.FieldApprovalCode, "A1B2C3")
		msg.Field(iso93.FieldReasonCode, "1376")
		od, err := iso93.OriginalData{MTI: "1100", STAN: "000111", LocalTime: "261124115900", AcquirerID: "99000001"}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		msg.Field(iso93.FieldOriginalData, od)
		if err := iso93.Validate(msg); err != nil {
			t.Fatalf("test advice invalid: %v", err)
		}
		req, err := iso93.PackMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.ServeLink(t.Context(), peer, req)
		if err != nil {
			t.Fatal(err)
		}
		if hd, _ := iso93.Peek(resp); hd.ActionCode != "000" {
			t.Fatalf("advice answered %q", hd.ActionCode)
		}
		if len(rec.got) != 1 || rec.got[0].Original == nil || rec.got[0].Original.MTI != "1100" || rec.got[0].Original.STAN != "000111" {
			t.Fatalf("the switch got %+v, want the 1100 named in DE 56", rec.got)
		}
	})
	t.Run("missing_mandatory_field_904", func(t *testing.T) {
		rec := &recorder{}
		h := &LinkHandler{Switch: rec, Logger: quiet}
		msg := iso93.NewMessage(iso93.MTIFinancialRequest)
		msg.Field(iso93.FieldSTAN, "000001")
		msg.Field(iso93.FieldTerminalID, "T0000001")
		req, err := iso93.PackMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := h.ServeLink(t.Context(), peer, req)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := iso93.Peek(raw); h.ActionCode != "904" {
			t.Fatalf("action %q, want 904", h.ActionCode)
		}
		if len(rec.got) != 0 {
			t.Fatal("an invalid request reached the switch")
		}
	})
	t.Run("class_not_served_902", func(t *testing.T) {
		rec := &recorder{}
		h := &LinkHandler{Switch: rec, Logger: quiet}
		fa := iso93.FileAction{}
		fa.TransmissionTime, fa.STAN, fa.FunctionCode, fa.FileName, fa.IdempotencyKey = "1124120000", "000002", iso93.FunctionReplaceFile, "NEGFILE", "file-1"
		req, err := iso93.Pack(&fa, iso93.MTIFileAction)
		if err != nil {
			t.Fatalf("build 1304: %v", err)
		}
		raw, err := h.ServeLink(t.Context(), peer, req)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := iso93.Peek(raw); h.ActionCode != "902" {
			t.Fatalf("action %q, want 902", h.ActionCode)
		}
	})
	t.Run("garbage_closes_stream", func(t *testing.T) {
		h := &LinkHandler{Switch: &recorder{}, Logger: quiet}
		if raw, err := h.ServeLink(t.Context(), peer, []byte("\x00\x01garbage")); err == nil {
			t.Fatalf("garbage answered with %d bytes", len(raw))
		}
	})
	t.Run("switch_fault_909", func(t *testing.T) {
		h := &LinkHandler{Switch: &recorder{err: errors.New("store unavailable")}, Logger: quiet}
		raw, err := h.ServeLink(t.Context(), peer, testSale(t))
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := iso93.Peek(raw); h.ActionCode != "909" {
			t.Fatalf("action %q, want 909", h.ActionCode)
		}
	})
}
