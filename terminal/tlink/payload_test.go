package tlink_test

import (
	"bytes"
	"encoding"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/posgate/posgate/terminal/tlink"
)

var sampleResult = tlink.TxnResult{
	Ref: "S1", Amount: 1000, Currency: "392", Outcome: tlink.OutcomeApproved, ActionCode: "000",
	ApprovalCode: "A1B2C3", STAN: "000123", RRN: "532812345678", Time: "20250101123456",
}

var sampleStatus = tlink.Status{Ref: "q1", DeviceKind: 1, State: tlink.StateIdle, Model: "JET-S-SIM",
	Serial: "SN0001", Firmware: "2.1.0", Protocol: tlink.ProtocolVersion}

var sampleKeys = tlink.KeyStatus{Ref: "k1", Keys: []tlink.KeyInfo{
	{Slot: "dukpt-aes", Type: tlink.KeyAES128DUKPT, KCV: [3]byte{0x12, 0x34, 0x56}, KSN: bytes.Repeat([]byte{0xAB}, 12)},
	{Slot: "dukpt-tdes", Type: tlink.KeyTDESDUKPT, KCV: [3]byte{1, 2, 3}, KSN: bytes.Repeat([]byte{0xFF}, 10)},
	{Slot: "fingerprint", Type: tlink.KeyFingerprint, KCV: [3]byte{9, 9, 9}},
}}

type codec interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   codec
		out  codec // zero value of the same type
	}{
		{"sale", &tlink.TxnCommand{Ref: "S1", Amount: 1000, Currency: "392"}, &tlink.TxnCommand{}},
		{"void", &tlink.TxnCommand{Ref: "V1", OrigRef: "S1"}, &tlink.TxnCommand{}},
		{"txn_result", &sampleResult, &tlink.TxnResult{}},
		{"txn_result_minimal", &tlink.TxnResult{Ref: "S1", Outcome: tlink.OutcomeCancelled}, &tlink.TxnResult{}},
		{"ref_only_empty", &tlink.RefOnly{}, &tlink.RefOnly{}},
		{"ref_only", &tlink.RefOnly{Ref: "q-1"}, &tlink.RefOnly{}},
		{"display", &tlink.Display{Text: "Insert card\nカードを挿入", Seconds: 30}, &tlink.Display{}},
		{"print", &tlink.Print{Ref: "p1", Text: strings.Repeat("line\n", 100)}, &tlink.Print{}},
		{"print_result", &tlink.PrintResult{Status: tlink.PrintOK}, &tlink.PrintResult{}},
		{"status", &sampleStatus, &tlink.Status{}},
		{"last_txn_none", &tlink.LastTxn{Ref: "q1"}, &tlink.LastTxn{}},
		{"last_txn_pending", &tlink.LastTxn{Command: tlink.KindSale, Txn: &tlink.TxnResult{Ref: "S9", Amount: 5, Currency: "392", Outcome: tlink.OutcomePending}}, &tlink.LastTxn{}},
		{"key_status", &sampleKeys, &tlink.KeyStatus{}},
		{"key_status_empty", &tlink.KeyStatus{}, &tlink.KeyStatus{}},
		{"firmware_chunk", &tlink.FirmwareChunk{Image: "v2", Offset: 0, Total: 3, Data: []byte{1, 2, 3}}, &tlink.FirmwareChunk{}},
		{"firmware_ack", &tlink.FirmwareAck{Image: "v2", NextOffset: 0, Status: tlink.FirmwareResend}, &tlink.FirmwareAck{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.in.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if err := tt.out.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !reflect.DeepEqual(tt.in, tt.out) {
				t.Fatalf("round trip: got %+v, want %+v", tt.out, tt.in)
			}
			b2, _ := tt.out.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

func TestPayloadPinnedEncoding(t *testing.T) {
	b, err := (&tlink.TxnCommand{Ref: "S1", Amount: 1000, Currency: "392"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x01, 0x00, 0x02, 'S', '1', 0x02, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0xE8, 0x03, 0x00, 0x03, '3', '9', '2'}
	if !bytes.Equal(b, want) {
		t.Fatalf("sale payload = % X, want % X", b, want)
	}
}

func TestPayloadDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		out  codec
		in   []byte
		want error
	}{
		{"truncated_header", &tlink.TxnCommand{}, []byte{0x01, 0x00}, tlink.ErrPayload},
		{"value_past_end", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x05, 'a'}, tlink.ErrPayload},
		{"empty_value", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x00}, tlink.ErrPayload},
		{"out_of_order", &tlink.TxnCommand{}, []byte{0x03, 0x00, 0x03, '3', '9', '2', 0x01, 0x00, 0x01, 'a'}, tlink.ErrPayload},
		{"repeated_tag", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x01, 'a', 0x01, 0x00, 0x01, 'b'}, tlink.ErrPayload},
		{"unknown_tag", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x01, 'a', 0x7F, 0x00, 0x01, 0x00}, tlink.ErrPayload},
		{"missing_ref", &tlink.TxnCommand{}, []byte{0x04, 0x00, 0x01, 'a'}, tlink.ErrMissingField},
		{"ref_with_space", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x02, 'a', ' '}, tlink.ErrPayload},
		{"amount_width", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x01, 'a', 0x02, 0x00, 0x02, 0x03, 0xE8, 0x03, 0x00, 0x03, '3', '9', '2'}, tlink.ErrPayload},
		{"amount_without_currency", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x01, 'a', 0x02, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 1}, tlink.ErrPayload},
		{"currency_letters", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x01, 'a', 0x02, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 1, 0x03, 0x00, 0x03, 'J', 'P', 'Y'}, tlink.ErrPayload},
		{"zero_amount_present", &tlink.TxnCommand{}, []byte{0x01, 0x00, 0x01, 'a', 0x02, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}, tlink.ErrPayload},
		{"outcome_out_of_range", &tlink.TxnResult{}, []byte{0x01, 0x00, 0x01, 'a', 0x10, 0x00, 0x01, 9}, tlink.ErrPayload},
		{"result_missing_outcome", &tlink.TxnResult{}, []byte{0x01, 0x00, 0x01, 'a'}, tlink.ErrMissingField},
		{"display_bad_utf8", &tlink.Display{}, []byte{0x05, 0x00, 0x01, 0xFF}, tlink.ErrPayload},
		{"display_zero_seconds", &tlink.Display{}, []byte{0x05, 0x00, 0x01, 'a', 0x06, 0x00, 0x02, 0, 0}, tlink.ErrPayload},
		{"last_txn_command_without_txn", &tlink.LastTxn{}, []byte{0x16, 0x00, 0x01, 0x10}, tlink.ErrPayload},
		{"last_txn_not_a_txn_command", &tlink.LastTxn{}, []byte{0x16, 0x00, 0x01, 0x20, 0x17, 0x00, 0x08, 0x01, 0x00, 0x01, 'a', 0x10, 0x00, 0x01, 0x02}, tlink.ErrPayload},
		{"key_ksn_wrong_length", &tlink.KeyStatus{}, []byte{0x30, 0x00, 0x11, 0x31, 0x00, 0x01, 'k', 0x32, 0x00, 0x01, 0x02, 0x33, 0x00, 0x03, 1, 2, 3, 0x34, 0x00, 0x01, 0}, tlink.ErrPayload},
		{"key_missing_kcv", &tlink.KeyStatus{}, []byte{0x30, 0x00, 0x08, 0x31, 0x00, 0x01, 'k', 0x32, 0x00, 0x01, 0x04}, tlink.ErrMissingField},
		{"chunk_past_total", &tlink.FirmwareChunk{}, []byte{0x40, 0x00, 0x01, 'v', 0x41, 0x00, 0x04, 0, 0, 0, 2, 0x42, 0x00, 0x04, 0, 0, 0, 2, 0x43, 0x00, 0x01, 9}, tlink.ErrPayload},
		{"chunk_missing_offset", &tlink.FirmwareChunk{}, []byte{0x40, 0x00, 0x01, 'v', 0x42, 0x00, 0x04, 0, 0, 0, 2, 0x43, 0x00, 0x01, 9}, tlink.ErrMissingField},
		{"ack_missing_next", &tlink.FirmwareAck{}, []byte{0x40, 0x00, 0x01, 'v', 0x44, 0x00, 0x01, 1}, tlink.ErrMissingField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reflect.ValueOf(tt.out).Elem().Interface()
			err := tt.out.UnmarshalBinary(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !reflect.DeepEqual(before, reflect.ValueOf(tt.out).Elem().Interface()) {
				t.Fatal("value changed on error")
			}
		})
	}
}

func TestTxnCommandValidate(t *testing.T) {
	sale := tlink.TxnCommand{Ref: "S1", Amount: 100, Currency: "392"}
	void := tlink.TxnCommand{Ref: "V1", OrigRef: "S1"}
	capture := tlink.TxnCommand{Ref: "C1", Amount: 100, Currency: "392", OrigRef: "P1"}
	tests := []struct {
		name string
		k    tlink.Kind
		c    tlink.TxnCommand
		want error
	}{
		{"sale_ok", tlink.KindSale, sale, nil},
		{"sale_without_amount", tlink.KindSale, void, tlink.ErrMissingField},
		{"sale_with_orig_ref", tlink.KindSale, capture, tlink.ErrPayload},
		{"preauth_ok", tlink.KindPreAuth, sale, nil},
		{"refund_ok", tlink.KindRefund, capture, nil},
		{"refund_without_amount", tlink.KindRefund, void, tlink.ErrMissingField},
		{"void_ok", tlink.KindVoid, void, nil},
		{"void_without_orig_ref", tlink.KindVoid, sale, tlink.ErrMissingField},
		{"capture_ok", tlink.KindCapture, capture, nil},
		{"capture_without_amount", tlink.KindCapture, void, tlink.ErrMissingField},
		{"not_a_command", tlink.KindStatusRequest, sale, tlink.ErrPayload},
		{"bad_ref", tlink.KindSale, tlink.TxnCommand{Ref: strings.Repeat("x", 33), Amount: 1, Currency: "392"}, tlink.ErrPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate(tt.k)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Validate(%v) = %v, want %v", tt.k, err, tt.want)
			}
		})
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   encoding.BinaryMarshaler
	}{
		{"txn_no_ref", &tlink.TxnCommand{Amount: 1, Currency: "392"}},
		{"result_no_outcome", &tlink.TxnResult{Ref: "a"}},
		{"display_too_long", &tlink.Display{Text: strings.Repeat("a", tlink.MaxDisplayText+1)}},
		{"print_empty", &tlink.Print{}},
		{"status_no_protocol", &tlink.Status{DeviceKind: 1, State: tlink.StateIdle}},
		{"chunk_too_big", &tlink.FirmwareChunk{Image: "v", Total: tlink.MaxChunk + 1, Data: make([]byte, tlink.MaxChunk+1)}},
		{"key_aes_short_ksn", &tlink.KeyStatus{Keys: []tlink.KeyInfo{{Slot: "k", Type: tlink.KeyAES256DUKPT, KSN: make([]byte, 10)}}}},
		{"last_txn_bad_command", &tlink.LastTxn{Command: tlink.KindPrint, Txn: &sampleResult}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.in.MarshalBinary(); !errors.Is(err, tlink.ErrPayload) && !errors.Is(err, tlink.ErrMissingField) {
				t.Fatalf("MarshalBinary err = %v, want a payload error", err)
			}
		})
	}
}

func TestKinds(t *testing.T) {
	for k := range 256 {
		kind := tlink.Kind(k)
		rk, ok := tlink.ResponseKind(kind)
		if ok && (!kind.Known() || !rk.Known()) {
			t.Fatalf("%v answered by unknown %v", kind, rk)
		}
		if tlink.IsTxnCommand(kind) && rk != tlink.KindTxnResult {
			t.Fatalf("transaction command %v answered by %v", kind, rk)
		}
		if s := kind.String(); s == "" || (!kind.Known() && !strings.HasPrefix(s, "kind(0x")) {
			t.Fatalf("kind %d String = %q", k, s)
		}
	}
}
