package tlink_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/posgate/posgate/terminal/tlink"
)

var sampleSig = tlink.Signature{Ref: "S1", STAN: "000123", Format: tlink.SignatureSignpadV1, Offset: 0, Total: 5, Data: []byte("SG\x01\x10\x20")}

func TestSignaturePayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   codec
		out  codec
	}{
		{"signature_first", &sampleSig, &tlink.Signature{}},
		{"signature_last", &tlink.Signature{Ref: "S1", STAN: "000123", Format: tlink.SignatureSignpadV1, Offset: 4096, Total: 4097, Data: []byte{0x02}}, &tlink.Signature{}},
		{"signature_max_chunk", &tlink.Signature{Ref: "S1", STAN: "999999", Format: tlink.SignatureSignpadV1, Offset: tlink.MaxSignature - tlink.MaxChunk, Total: tlink.MaxSignature, Data: bytes.Repeat([]byte{0x10}, tlink.MaxChunk)}, &tlink.Signature{}},
		{"ack_ok", &tlink.SignatureAck{Ref: "S1", Status: tlink.SignatureOK, NextOffset: 4096}, &tlink.SignatureAck{}},
		{"ack_resend_zero", &tlink.SignatureAck{Ref: "S1", Status: tlink.SignatureResend}, &tlink.SignatureAck{}},
		{"ack_complete", &tlink.SignatureAck{Ref: "S1", Status: tlink.SignatureComplete, NextOffset: 5}, &tlink.SignatureAck{}},
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
		})
	}
}

func TestSignaturePayloadExample(t *testing.T) {
	// The example of docs/terminal-link.md, section 5.
	want := []byte{0x01, 0x00, 0x02, 'S', '1', 0x13, 0x00, 0x06, '0', '0', '0', '1', '2', '3', 0x50, 0x00, 0x01, 0x01,
		0x51, 0x00, 0x04, 0, 0, 0, 0, 0x52, 0x00, 0x04, 0, 0, 0, 5, 0x53, 0x00, 0x05, 'S', 'G', 0x01, 0x10, 0x20}
	got, err := sampleSig.MarshalBinary()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary = % X, %v; want % X", got, err, want)
	}
}

func TestSignaturePayloadRejects(t *testing.T) {
	good, _ := sampleSig.MarshalBinary()
	tests := []struct {
		name string
		out  codec
		in   []byte
		want error
	}{
		{"missing_stan", &tlink.Signature{}, []byte{0x01, 0x00, 0x01, 'a', 0x50, 0x00, 0x01, 1, 0x51, 0x00, 0x04, 0, 0, 0, 0, 0x52, 0x00, 0x04, 0, 0, 0, 1, 0x53, 0x00, 0x01, 9}, tlink.ErrMissingField},
		{"missing_offset", &tlink.Signature{}, []byte{0x01, 0x00, 0x01, 'a', 0x13, 0x00, 0x06, '0', '0', '0', '0', '0', '1', 0x50, 0x00, 0x01, 1, 0x52, 0x00, 0x04, 0, 0, 0, 1, 0x53, 0x00, 0x01, 9}, tlink.ErrMissingField},
		{"unknown_format", &tlink.Signature{}, bytes.Replace(good, []byte{0x50, 0x00, 0x01, 0x01}, []byte{0x50, 0x00, 0x01, 0x02}, 1), tlink.ErrPayload},
		{"past_total", &tlink.Signature{}, bytes.Replace(good, []byte{0x52, 0x00, 0x04, 0, 0, 0, 5}, []byte{0x52, 0x00, 0x04, 0, 0, 0, 4}, 1), tlink.ErrPayload},
		{"total_over_max", &tlink.Signature{}, bytes.Replace(good, []byte{0x52, 0x00, 0x04, 0, 0, 0, 5}, []byte{0x52, 0x00, 0x04, 0, 1, 0, 1}, 1), tlink.ErrPayload},
		{"stan_letters", &tlink.Signature{}, bytes.Replace(good, []byte("000123"), []byte("00012A"), 1), tlink.ErrPayload},
		{"foreign_tag", &tlink.Signature{}, append(bytes.Clone(good), 0x60, 0x00, 0x01, 1), tlink.ErrPayload},
		{"trailing_byte", &tlink.Signature{}, append(bytes.Clone(good), 0x60), tlink.ErrPayload},
		{"ack_missing_ref", &tlink.SignatureAck{}, []byte{0x54, 0x00, 0x01, 1, 0x55, 0x00, 0x04, 0, 0, 0, 0}, tlink.ErrMissingField},
		{"ack_missing_next", &tlink.SignatureAck{}, []byte{0x01, 0x00, 0x01, 'a', 0x54, 0x00, 0x01, 1}, tlink.ErrMissingField},
		{"ack_status_range", &tlink.SignatureAck{}, []byte{0x01, 0x00, 0x01, 'a', 0x54, 0x00, 0x01, 5, 0x55, 0x00, 0x04, 0, 0, 0, 0}, tlink.ErrPayload},
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

func TestSignatureKinds(t *testing.T) {
	if rk, ok := tlink.ResponseKind(tlink.KindSignature); !ok || rk != tlink.KindSignatureAck {
		t.Fatalf("ResponseKind(signature) = %v, %v", rk, ok)
	}
	if tlink.KindSignature.String() != "signature" || tlink.KindSignatureAck.String() != "signature-ack" {
		t.Fatalf("names %q %q", tlink.KindSignature, tlink.KindSignatureAck)
	}
}
