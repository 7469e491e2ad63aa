package iso93_test

import (
	"bytes"
	"time"

	"github.com/posgate/posgate/protocol/iso93"
)

// Fixed test values. The PAN is a well-known test number (Luhn-valid);
// tests print only its masked form.
const (
	testPAN         = "4761739001010119"
	testFingerprint = "0123456789abcdef0123456789abcdef"
)

var (
	testKSN      = []byte{0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0x00, 0x00, 0x00, 0x01}
	testCardData = bytes.Repeat([]byte{0xA5, 0x5A, 0x00, 0xFF}, 16) // 64 bytes
	testNow      = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
)

func testTrace() iso93.Trace {
	return iso93.Trace{
		TransmissionTime: "0304050607",
		STAN:             "000123",
		LocalTime:        "260304140607",
		AcquirerID:       "12345678901",
		RRN:              "606314000123",
		TerminalID:       "TERM0001",
		MerchantID:       "MERCHANT0000001",
		IdempotencyKey:   "gw-0001/TERM0001/000123",
		GatewayID:        "gw-0001",
	}
}

func testPayment() iso93.Payment {
	return iso93.Payment{ProcessingCode: iso93.ProcessingPurchase, Amount: 12345, POSDataCode: "510101513344", Currency: "392"}
}

func testCard() iso93.Card {
	return iso93.Card{
		CardData:    testCardData,
		KSN:         testKSN,
		Fingerprint: testFingerprint,
		MaskedPAN:   iso93.MaskPAN(testPAN),
	}
}

// typical1100 is the message of the benchmarks: 3,4,7,11,12,22,24,32,41,
// 42,49,120 (64 bytes),121,122,123,124 (and 126).
func typical1100() *iso93.AuthorizationRequest {
	tr := testTrace()
	tr.FunctionCode = iso93.FunctionOriginalAuthorization
	tr.RRN = ""
	return &iso93.AuthorizationRequest{Trace: tr, Payment: testPayment(), Card: testCard()}
}

func sale1200() *iso93.FinancialRequest {
	tr := testTrace()
	tr.FunctionCode = iso93.FunctionOriginalFinancial
	return &iso93.FinancialRequest{Trace: tr, Payment: testPayment(), Card: testCard()}
}

func sale1210() *iso93.FinancialResponse {
	r := sale1200().Response(iso93.ActionApproved)
	r.ApprovalCode = "A1B2C3"
	r.MaskedPAN = iso93.MaskPAN(testPAN)
	return r
}
