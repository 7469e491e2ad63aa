package center_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/posgate/posgate/cloud/center"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/sigcap"
)

var sigMeta = sigcap.Chunk{TerminalID: "T0000042", STAN: "000007", LocalTime: "260101120000",
	IdempotencyKey: "T0000042-sale-0007", Format: sigcap.FormatSignpadV1}

// sigFileAction packs a 1304 SIGCAP carrying rec.
func sigFileAction(t *testing.T, n int, rec string, function string) []byte {
	t.Helper()
	fa := iso93.FileAction{
		Trace: iso93.Trace{TransmissionTime: "0101120000", STAN: fmt.Sprintf("%06d", n+1), LocalTime: "260101120000",
			FunctionCode: function, IdempotencyKey: fmt.Sprintf("SG-test-%d", n), GatewayID: "GW1"},
		DataRecord: rec,
		FileName:   sigcap.FileName,
	}
	raw, err := iso93.Pack(&fa, iso93.MTIFileAction)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func answerOf(t *testing.T, raw []byte) (iso93.ActionCode, string) {
	t.Helper()
	mti, msg, err := iso93.Unpack(raw)
	if err != nil || mti != iso93.MTIFileActionResponse {
		t.Fatalf("answer %s: %v", mti, err)
	}
	var r iso93.FileActionResponse
	if err := msg.Unmarshal(&r); err != nil {
		t.Fatal(err)
	}
	return r.ActionCode, r.FileName
}

func TestSignatureServer(t *testing.T) {
	sig := append([]byte("SG\x01"), bytes.Repeat([]byte{0x11, 0x22, 0x33}, 500)...) // 1503 bytes: 3 records
	records := func(m sigcap.Chunk, data []byte) []string {
		cs, err := sigcap.Split(m, data)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			s, _ := c.Marshal()
			out = append(out, s)
		}
		return out
	}
	good := records(sigMeta, sig)
	otherSTAN := sigMeta
	otherSTAN.STAN = "000008"
	unknown := sigMeta
	unknown.IdempotencyKey = "no-such-sale"
	tests := []struct {
		name     string
		gateway  string
		recs     []string
		function string
		actions  []iso93.ActionCode
		stored   bool
		audit    string
	}{
		{"stored_in_order", "GW1", good, iso93.FunctionAddRecord, []iso93.ActionCode{"000", "000", "000"}, true, center.AuditSignatureStored},
		{"out_of_order_and_repeated", "GW1", []string{good[2], good[0], good[0], good[1], good[2]}, iso93.FunctionAddRecord, []iso93.ActionCode{"000", "000", "000", "000", "000"}, true, center.AuditSignatureStored},
		{"unknown_sale_914", "GW1", records(unknown, sig)[:1], iso93.FunctionAddRecord, []iso93.ActionCode{"914"}, false, center.AuditSignatureRefused},
		{"stan_mismatch_914", "GW1", records(otherSTAN, sig)[:1], iso93.FunctionAddRecord, []iso93.ActionCode{"914"}, false, center.AuditSignatureRefused},
		{"other_gateway_914", "GW2", good[:1], iso93.FunctionAddRecord, []iso93.ActionCode{"914"}, false, center.AuditSignatureRefused},
		{"malformed_904", "GW1", []string{"SIG1 garbage"}, iso93.FunctionAddRecord, []iso93.ActionCode{"904"}, false, center.AuditSignatureRefused},
		{"delete_function_904", "GW1", good[:1], iso93.FunctionDeleteRecord, []iso93.ActionCode{"904"}, false, center.AuditSignatureRefused},
		{"not_a_signpad_encoding_904", "GW1", records(sigMeta, []byte("XXnot a signature")), iso93.FunctionAddRecord, []iso93.ActionCode{"904"}, false, center.AuditSignatureRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.ForEach(t, func(t *testing.T, st *store.Store) {
				ctx := context.Background()
				var authID int64
				if err := st.Update(ctx, func(tx *store.Tx) error {
					var err error
					authID, _, err = tx.InsertAuthorization(ctx, store.Authorization{IdempotencyKey: sigMeta.IdempotencyKey, GatewayID: "GW1",
						TerminalID: sigMeta.TerminalID, STAN: sigMeta.STAN, MTI: "1200", ProcessingCode: "000000", FunctionCode: "200",
						LocalTime: sigMeta.LocalTime, Amount: 1000, Currency: "392", ActionCode: "000", ApprovalCode: "A1B2C3", Status: store.AuthStatus("captured")})
					return err
				}); err != nil {
					t.Fatal(err)
				}
				h := &center.LinkHandler{Signatures: &center.SignatureServer{Store: st, Logger: slog.New(slog.DiscardHandler)}, Logger: slog.New(slog.DiscardHandler)}
				for i, rec := range tt.recs {
					resp, err := h.ServeLink(ctx, link.Peer{GatewayID: tt.gateway}, sigFileAction(t, i, rec, tt.function))
					if err != nil {
						t.Fatalf("record %d: %v", i, err)
					}
					if a, name := answerOf(t, resp); a != tt.actions[i] || name != sigcap.FileName {
						t.Fatalf("record %d answered %s (file %s), want %s", i, a, name, tt.actions[i])
					}
				}
				var got store.Signature
				var audit []store.AuditRecord
				err := st.View(ctx, func(tx *store.Tx) error {
					var err error
					if got, err = tx.SignatureByAuthorization(ctx, authID); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					audit, err = tx.Audit(ctx, tt.audit, 10)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if tt.stored != (got.ID != 0) {
					t.Fatalf("signature stored %v, want %v", got.ID != 0, tt.stored)
				}
				if tt.stored && (!bytes.Equal(got.Data, sig) || got.IdempotencyKey != sigMeta.IdempotencyKey || got.STAN != "000007" || got.TerminalID != "T0000042" || got.GatewayID != "GW1" || got.Format != 1) {
					t.Fatalf("stored %+v (%d bytes)", got, len(got.Data))
				}
				if len(audit) != 1 {
					t.Fatalf("%d audit records of kind %s, want 1", len(audit), tt.audit)
				}
			})
		})
	}
}
