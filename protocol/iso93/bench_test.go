package iso93_test

import (
	"testing"

	"github.com/posgate/posgate/protocol/iso93"
)

func BenchmarkPack1100(b *testing.B) {
	b.ReportAllocs()
	req := typical1100()
	for b.Loop() {
		if _, err := iso93.Pack(req, iso93.MTIAuthorizationRequest); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnpack1110(b *testing.B) {
	b.ReportAllocs()
	resp := typical1100().Response(iso93.ActionApproved)
	resp.ApprovalCode = "123456"
	resp.MaskedPAN = iso93.MaskPAN(testPAN)
	raw, err := iso93.Pack(resp, iso93.MTIAuthorizationResponse)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var v iso93.AuthorizationResponse
		if err := iso93.UnpackInto(raw, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPackUnpack1100(b *testing.B) {
	b.ReportAllocs()
	req := typical1100()
	for b.Loop() {
		raw, err := iso93.Pack(req, iso93.MTIAuthorizationRequest)
		if err != nil {
			b.Fatal(err)
		}
		var v iso93.AuthorizationRequest
		if err := iso93.UnpackInto(raw, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPeek1100 is the gateway's forward path: read the header of a
// typical 1100 without unpacking it.
func BenchmarkPeek1100(b *testing.B) {
	b.ReportAllocs()
	raw, err := iso93.Pack(typical1100(), iso93.MTIAuthorizationRequest)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := iso93.Peek(raw); err != nil {
			b.Fatal(err)
		}
	}
}
