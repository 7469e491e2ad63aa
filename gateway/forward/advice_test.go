package forward

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/gateway/advice"
	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	gwstandin "github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/negfile"
)

// answerWith answers every request with action, DE 38 and an RRN, as the
// center does.
func answerWith(action iso93.ActionCode) uplinkFunc {
	return func(_ context.Context, req []byte) ([]byte, error) {
		_, msg, err := iso93.Unpack(req)
		if err != nil {
			return nil, err
		}
		resp, err := iso93.NewResponse(msg, action)
		if err != nil {
			return nil, err
		}
		resp.Field(iso93.FieldRRN, "000000004242")
		return iso93.PackMessage(resp)
	}
}

// TestForwarderTerminalAdvice sends a terminal's offline approval advice
// through the Forwarder: a final answer of the center is relayed and
// nothing is kept; without one the advice is stored (as sent when it may
// have reached the center) and answered 1230 000 by the gateway; a
// malformed advice is answered 904 and a completion advice is relayed
// like any request, neither stored.
func TestForwarderTerminalAdvice(t *testing.T) {
	mismatched := uplinkFunc(func(ctx context.Context, req []byte) ([]byte, error) {
		return answerWith(iso93.ActionApproved)(ctx, terminalAdvice(t, "000999", nil))
	})
	tests := []struct {
		name    string
		uplink  Uplink
		change  func(*iso93.Advice)
		extra   func(t *testing.T, raw []byte) []byte // changes the packed advice
		want    string
		wantRRN bool   // the center's answer was relayed
		stored  string // MTI of the stored record's next send; "" nothing stored
	}{
		{"center_accepts_relayed", answerWith(iso93.ActionApproved), nil, nil, "000", true, ""},
		{"center_declines_relayed", answerWith(iso93.ActionInsufficientFunds), nil, nil, "116", true, ""},
		{"link_down_stored", linkDown, nil, nil, "000", false, "1220"},
		{"not_enrolled_stored", notEnrolledUp, nil, nil, "000", false, "1220"},
		{"outcome_unknown_stored_as_sent", outcomeUnknown, nil, nil, "000", false, "1221"},
		{"center_try_later_stored_as_sent", answerWith(iso93.ActionSystemMalfunction), nil, nil, "000", false, "1221"},
		{"mismatched_answer_stored_as_sent", mismatched, nil, nil, "000", false, "1221"},
		{"aac_refused", linkDown, func(a *iso93.Advice) { a.ICCData = chipData(t, 0x00) }, nil, "904", false, ""},
		{"malformed_de55_refused", linkDown, func(a *iso93.Advice) { a.ICCData = []byte{0x9F, 0x27, 0x05, 0x40} }, nil, "904", false, ""},
		{"card_data_tag_in_de55_refused", linkDown, func(a *iso93.Advice) {
			a.ICCData = append(chipData(t, 0x40), 0x5A, 0x08, 0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11)
		}, nil, "904", false, ""},
		{"no_approval_code_refused", linkDown, nil, func(t *testing.T, raw []byte) []byte {
			_, msg, err := iso93.Unpack(raw)
			if err != nil {
				t.Fatal(err)
			}
			msg.UnsetField(iso93.FieldApprovalCode)
			b, err := iso93.PackMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, "904", false, ""},
		{"clear_pan_refused", linkDown, func(a *iso93.Advice) {
			a.PAN, a.CardData, a.KSN, a.Fingerprint = "4111111111111111", nil, nil, ""
		}, nil, "904", false, ""},
		{"completion_advice_not_stored", linkDown, nil, func(t *testing.T, raw []byte) []byte {
			_, msg, err := iso93.Unpack(raw)
			if err != nil {
				t.Fatal(err)
			}
			od, _ := iso93.OriginalData{MTI: "1100", STAN: "000001", LocalTime: "261124115900", AcquirerID: "99000001"}.Encode()
			msg.Field(iso93.FieldOriginalData, od)
			b, err := iso93.PackMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, "907", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, true, standin.Policy{})
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			f := &Forwarder{Uplink: tt.uplink, Logger: log, Metrics: NewMetrics(), StandIn: &gwstandin.Decider{Store: st}, Advices: st}
			defer func() {
				if strings.Contains(logs.String(), "4111111111111111") {
					t.Errorf("the gateway logged a clear PAN:\n%s", logs.String())
				}
			}()
			raw := terminalAdvice(t, "000061", tt.change)
			if tt.extra != nil {
				raw = tt.extra(t, raw)
			}
			resp, err := f.Handle(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			var r iso93.AdviceResponse
			if err := iso93.UnpackInto(resp, &r); err != nil {
				t.Fatalf("answer: %v", err)
			}
			if string(r.ActionCode) != tt.want || r.STAN != "000061" || r.IdempotencyKey != "T0000001-000061" {
				t.Fatalf("answer %s for STAN %s key %s, want %s echoing the advice", r.ActionCode, r.STAN, r.IdempotencyKey, tt.want)
			}
			if got := r.RRN != ""; got != tt.wantRRN {
				t.Fatalf("answer has RRN %q; want the center's answer relayed: %v", r.RRN, tt.wantRRN)
			}
			recs, err := st.Queue().Next(10)
			if err != nil {
				t.Fatal(err)
			}
			if tt.stored == "" {
				if len(recs) != 0 {
					t.Fatalf("%d records stored, want none", len(recs))
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d records stored, want 1", len(recs))
			}
			rec := recs[0]
			if rec.Origin != offline.OriginTerminal || rec.MTI() != tt.stored || rec.ApprovalCode != "Y10061" ||
				!bytes.Equal(rec.Message, raw) || rec.Chip != standin.ChipTC || rec.Amount != 1200 || rec.Brand != "visa" ||
				rec.MaskedPAN != "411111******1111" || rec.TerminalID != "T0000001" || rec.IdempotencyKey != "T0000001-000061" {
				t.Fatalf("stored record %v (origin %s, next %s, code %s), want the terminal's advice going as %s",
					rec, rec.Origin, rec.MTI(), rec.ApprovalCode, tt.stored)
			}
		})
	}
}

// TestForwarderTerminalAdviceStoreFailure closes the store: the advice is
// neither delivered nor kept, and the terminal is told 909, not 000.
func TestForwarderTerminalAdviceStoreFailure(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	st.Close()
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), Advices: st}
	resp, err := f.Handle(t.Context(), terminalAdvice(t, "000062", nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := actionOf(t, resp); got != "909" {
		t.Fatalf("action %s with a failed store, want 909", got)
	}
}

// TestTerminalAdvicesForwardedInOrder stores terminal advices and a
// stand-in approval while the link is down (a repeated advice once),
// reopens the bbolt file as after a gateway restart, and forwards: every
// record goes up once, in the order it was stored, the terminal's advices
// byte for byte as the terminal sent them (DE 25 1005, DE 38 Y1…, DE 55),
// and the queue is empty with no exposure left.
func TestTerminalAdvicesForwardedInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offline.db")
	sealer := gatewaytest.NewSealer(t)
	open := func() *offline.Store {
		st, err := offline.Open(offline.Config{Path: path, Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open()
	chunks, _ := negfile.Split(negfile.OpSnapshot, 0, 1, nil, nil, negfile.MaxDE72)
	if _, err := st.ApplyChunk(chunks[0]); err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{Uplink: linkDown, Logger: quiet(), StandIn: &gwstandin.Decider{Store: st}, Advices: st}
	sent := map[string][]byte{}
	var order []string
	handle := func(raw []byte, want string) {
		t.Helper()
		resp, err := f.Handle(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := actionOf(t, resp); got != want {
			t.Fatalf("answer %s, want %s", got, want)
		}
	}
	for i, stan := range []string{"000071", "000072", "000073"} {
		raw := terminalAdvice(t, stan, func(a *iso93.Advice) { a.Amount = int64(100 * (i + 1)) })
		handle(raw, "000")
		sent["T0000001-"+stan] = raw
		order = append(order, "T0000001-"+stan)
		if i == 1 {
			handle(saleWith(t, "000080", nil), "000") // a stand-in approval between them
			order = append(order, "T0000001-000080")
			handle(raw, "000") // the terminal repeats an advice: stored once
		}
	}
	if s, _ := st.Queue().Stats(); s.Pending.Count != 4 || s.Exposure != 100+200+300+1200 {
		t.Fatalf("stats before forwarding %+v; want 4 pending", s)
	}
	st.Close()

	st = open() // the gateway restarted
	center := &gatewaytest.AdviceCenter{}
	a := &advice.Forwarder{Queue: st.Queue(), Uplink: center, Window: 1, Rate: 10_000, Logger: quiet()}
	if n, err := a.Pass(t.Context()); err != nil || n != 4 {
		t.Fatalf("pass: %d answered, %v; want 4", n, err)
	}
	if len(center.Seen) != 4 {
		t.Fatalf("center saw %d advices, want 4", len(center.Seen))
	}
	for i, adv := range center.Seen {
		if adv.IdempotencyKey != order[i] || center.MTIs[i] != iso93.MTIAdvice {
			t.Fatalf("advice %d is %s %s, want %s 1220 (order %v)", i, center.MTIs[i], adv.IdempotencyKey, order[i], order)
		}
		raw, ok := sent[adv.IdempotencyKey]
		if !ok {
			if adv.ReasonCode != iso93.ReasonStandIn {
				t.Fatalf("stand-in advice with DE 25 %s", adv.ReasonCode)
			}
			continue
		}
		if adv.ReasonCode != "1005" || adv.ApprovalCode != "Y1"+adv.STAN[2:] || len(adv.ICCData) == 0 {
			t.Fatalf("terminal advice %s: DE 25 %s DE 38 %s", adv.IdempotencyKey, adv.ReasonCode, adv.ApprovalCode)
		}
		got, err := advice.Build(mustRecord(t, st, adv.IdempotencyKey))
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("the advice of %s is not the terminal's bytes (%v)", adv.IdempotencyKey, err)
		}
	}
	if s, _ := st.Queue().Stats(); s.Accepted.Count != 4 || s.Pending.Count != 0 || s.Sent.Count != 0 || s.Exposure != 0 {
		t.Fatalf("stats after forwarding %+v", s)
	}
}

// mustRecord finds the stored record of an idempotency key (ids start at 1).
func mustRecord(t *testing.T, st *offline.Store, key string) offline.Record {
	t.Helper()
	for id := uint64(1); id < 100; id++ {
		r, err := st.Queue().Get(id)
		if err != nil {
			break
		}
		if r.IdempotencyKey == key {
			r.Attempts = 0 // as first sent
			return r
		}
	}
	t.Fatalf("no record for %s", key)
	return offline.Record{}
}

// TestTerminalAdviceRepeatedAfterUnknownOutcome stores an advice whose
// send timed out: it goes again as a 1221 with the terminal's data, and
// a center rejection puts it on the rejected list with the terminal's
// approval code.
func TestTerminalAdviceRepeatedAfterUnknownOutcome(t *testing.T) {
	st := openStore(t, true, standin.Policy{})
	f := &Forwarder{Uplink: outcomeUnknown, Logger: quiet(), Advices: st}
	raw := terminalAdvice(t, "000091", nil)
	resp, err := f.Handle(t.Context(), raw)
	if err != nil || actionOf(t, resp) != "000" {
		t.Fatalf("advice answered %v", err)
	}
	center := &gatewaytest.AdviceCenter{Reject: map[string]bool{"T0000001-000091": true}}
	a := &advice.Forwarder{Queue: st.Queue(), Uplink: center, Window: 4, Rate: 10_000, Logger: quiet()}
	if n, err := a.Pass(t.Context()); err != nil || n != 1 {
		t.Fatalf("pass: %d, %v", n, err)
	}
	if len(center.MTIs) != 1 || center.MTIs[0] != iso93.MTIAdviceRepeat || center.Seen[0].ReasonCode != "1005" {
		t.Fatalf("center saw %v", center.MTIs)
	}
	rej, err := st.Queue().Rejected()
	if err != nil || len(rej) != 1 || rej[0].Origin != offline.OriginTerminal || rej[0].ApprovalCode != "Y10091" || rej[0].Action != "208" {
		t.Fatalf("rejected %v, %v", rej, err)
	}
	if o := rej[0].Origin.String(); o != "terminal" { // the admin record's origin
		t.Fatalf("admin record origin %q", o)
	}
}

// FuzzTerminalAdviceFrom feeds arbitrary bytes to the reader of terminals'
// offline approval advices. Whatever it accepts is a 1220/1221 that passes
// the message rules, carries the encrypted card block and no clear PAN,
// a DE 55 that de55.ParseRequest accepts and that is no AAC, and is kept
// byte for byte: the advice the forwarder builds from the stored record
// is the same bytes with the record's MTI.
func FuzzTerminalAdviceFrom(f *testing.F) {
	tc := mustAdvice(f, "000001", nil)
	if _, err := terminalAdviceFrom(tc); err != nil {
		f.Fatalf("the TC seed is refused: %v", err)
	}
	f.Add(tc)
	f.Add(mustAdvice(f, "000002", func(a *iso93.Advice) { a.ICCData = nil }))
	f.Add(mustAdvice(f, "000003", func(a *iso93.Advice) { a.ICCData = []byte{0x9F, 0x27, 0x01, 0x00} }))
	f.Add(mustAdvice(f, "000004", func(a *iso93.Advice) { a.PAN, a.CardData, a.KSN, a.Fingerprint = "4111111111111111", nil, nil, "" }))
	f.Add(append([]byte("1221"), tc[4:]...))
	f.Add([]byte("1220"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		adv, err := terminalAdviceFrom(raw)
		if err != nil {
			return
		}
		var m iso93.Advice
		if err := iso93.UnpackInto(raw, &m); err != nil {
			t.Fatalf("accepted an advice that does not unpack: %v", err)
		}
		if m.PAN != "" || len(m.CardData) == 0 || m.FunctionCode != iso93.FunctionPreviousApproval {
			t.Fatalf("accepted an advice with DE 2 %v, DE 120 %d bytes, DE 24 %s", m.PAN != "", len(m.CardData), m.FunctionCode)
		}
		if len(m.ICCData) > 0 {
			if chip, err := gwstandin.Chip(m.ICCData); err != nil || chip == standin.ChipAAC {
				t.Fatalf("accepted DE 55 (%v, chip %d)", err, chip)
			}
		}
		if !bytes.Equal(adv.Message, raw) || adv.IdempotencyKey != m.IdempotencyKey || adv.ApprovalCode != m.ApprovalCode || adv.Amount != m.Amount {
			t.Fatal("the advice read does not describe the message")
		}
		for _, attempts := range []int{0, 1} {
			rec := offline.Record{Origin: offline.OriginTerminal, Attempts: attempts, Message: adv.Message}
			out, err := advice.Build(rec)
			if err != nil {
				t.Fatalf("stored advice does not rebuild: %v", err)
			}
			want := append([]byte(rec.MTI()), raw[4:]...)
			if !bytes.Equal(out, want) {
				t.Fatalf("rebuilt %s differs from the terminal's bytes", rec.MTI())
			}
		}
	})
}

// mustAdvice packs a fuzz seed like terminalAdvice: a 1220 with DE 55
// holding a TC (de55.Build).
func mustAdvice(f *testing.F, stan string, change func(*iso93.Advice)) []byte {
	icc, err := de55.Build(dol.Values{
		tags.ApplicationCryptogram: {0xC2, 0xC1, 0x2B, 0x1A, 0xD1, 0xA3, 0xA5, 0xBC}, tags.CID: {0x40},
		tags.IssuerApplicationData: {0x01, 0x10, 0xA0, 0x00, 0x03, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF},
		tags.UnpredictableNumber:   {0xBB, 0xA4, 0xCD, 0x5B}, tags.ATC: {0, 1}, tags.TVR: {0, 0, 0, 0, 0},
		tags.TransactionDate: {0x26, 0x01, 0x21}, tags.TransactionType: {0}, tags.AmountAuthorised: {0, 0, 0, 0, 0x12, 0},
		tags.TransactionCurrencyCode: {0x03, 0x92}, tags.AIP: {0x39, 0}, tags.TerminalCountryCode: {0x03, 0x92},
	})
	if err != nil {
		f.Fatal(err)
	}
	adv := iso93.Advice{
		Trace: iso93.Trace{TransmissionTime: "1124120000", STAN: stan, LocalTime: "261124120000",
			FunctionCode: iso93.FunctionPreviousApproval, ReasonCode: "1005", AcquirerID: "99000001",
			TerminalID: "T0000001", MerchantID: "MERCHANT0000001", IdempotencyKey: "T0000001-" + stan},
		Payment: iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 1200, POSDataCode: "510101513001", Currency: "392"},
		Card: iso93.Card{CardData: bytes.Repeat([]byte{0xAA}, 48), KSN: bytes.Repeat([]byte{0x01}, 12),
			Fingerprint: "00112233445566778899aabbccddeeff", MaskedPAN: "411111******1111", ICCData: icc},
		ApprovalCode: "Y1" + stan[2:],
	}
	if change != nil {
		change(&adv)
	}
	b, err := iso93.Pack(&adv, iso93.MTIAdvice)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
