package tlink

import "fmt"

// Kind is the message kind carried in a data frame's kind byte. Values below
// 0x40 are control messages with TLV payloads (see payload.go); 0x40 and
// 0x41 carry opaque ISO 8583:1993 messages. The endpoint acknowledges and
// delivers kinds it does not know (see Known), so that a newer peer does not
// stall an older one; the layer above decides what to do with them.
type Kind uint8

// Message kinds. "G→T" is gateway to terminal, "T→G" terminal to gateway.
const (
	KindSale        Kind = 0x10 // G→T start a sale; answered by KindTxnResult
	KindRefund      Kind = 0x11 // G→T start a refund; answered by KindTxnResult
	KindVoid        Kind = 0x12 // G→T void an earlier transaction; answered by KindTxnResult
	KindPreAuth     Kind = 0x13 // G→T start a pre-authorization; answered by KindTxnResult
	KindCapture     Kind = 0x14 // G→T capture a pre-authorization; answered by KindTxnResult
	KindCancel      Kind = 0x15 // G→T cancel the command in progress; no response
	KindDisplay     Kind = 0x16 // G→T show text on the terminal display; no response
	KindPrint       Kind = 0x17 // G→T print a receipt; answered by KindPrintResult
	KindTxnResult   Kind = 0x18 // T→G outcome of a transaction command
	KindPrintResult Kind = 0x19 // T→G outcome of a print

	KindStatusRequest     Kind = 0x20 // G→T ask for device status
	KindStatusResponse    Kind = 0x21 // T→G device status
	KindLastTxnQuery      Kind = 0x22 // G→T ask for the last transaction
	KindLastTxnResponse   Kind = 0x23 // T→G the last transaction and its state
	KindKeyStatusRequest  Kind = 0x24 // G→T ask for key status (KCVs, KSNs)
	KindKeyStatusResponse Kind = 0x25 // T→G key status
	KindFirmwareChunk     Kind = 0x26 // G→T one chunk of a firmware image
	KindFirmwareAck       Kind = 0x27 // T→G acknowledgement of a firmware chunk
	KindSignature         Kind = 0x28 // T→G one chunk of a captured signature; answered by KindSignatureAck
	KindSignatureAck      Kind = 0x29 // G→T acknowledgement of a signature chunk

	KindFinancialRequest  Kind = 0x40 // T→G ISO 8583:1993 request (1100, 1200, 1220, 1420 …)
	KindFinancialResponse Kind = 0x41 // G→T ISO 8583:1993 response (1110, 1210, 1230, 1430 …)
)

var kindNames = map[Kind]string{
	KindSale:              "sale",
	KindRefund:            "refund",
	KindVoid:              "void",
	KindPreAuth:           "pre-auth",
	KindCapture:           "capture",
	KindCancel:            "cancel",
	KindDisplay:           "display",
	KindPrint:             "print",
	KindTxnResult:         "txn-result",
	KindPrintResult:       "print-result",
	KindStatusRequest:     "status-request",
	KindStatusResponse:    "status-response",
	KindLastTxnQuery:      "last-txn-query",
	KindLastTxnResponse:   "last-txn-response",
	KindKeyStatusRequest:  "key-status-request",
	KindKeyStatusResponse: "key-status-response",
	KindFirmwareChunk:     "firmware-chunk",
	KindFirmwareAck:       "firmware-ack",
	KindSignature:         "signature",
	KindSignatureAck:      "signature-ack",
	KindFinancialRequest:  "financial-request",
	KindFinancialResponse: "financial-response",
}

// String returns the kind's name, or "kind(0xNN)" for an unknown kind.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(0x%02X)", uint8(k))
}

// Known reports whether k is a kind this version of the protocol defines.
func (k Kind) Known() bool {
	_, ok := kindNames[k]
	return ok
}

// ResponseKind returns the kind that answers k, and false when k has no
// response (one-way kinds and responses themselves).
func ResponseKind(k Kind) (Kind, bool) {
	switch k {
	case KindSale, KindRefund, KindVoid, KindPreAuth, KindCapture:
		return KindTxnResult, true
	case KindPrint:
		return KindPrintResult, true
	case KindStatusRequest:
		return KindStatusResponse, true
	case KindLastTxnQuery:
		return KindLastTxnResponse, true
	case KindKeyStatusRequest:
		return KindKeyStatusResponse, true
	case KindFirmwareChunk:
		return KindFirmwareAck, true
	case KindSignature:
		return KindSignatureAck, true
	case KindFinancialRequest:
		return KindFinancialResponse, true
	}
	return 0, false
}

// IsTxnCommand reports whether k starts or changes a card transaction
// (sale, refund, void, pre-auth, capture): the kinds that are never resent
// blindly after a lost acknowledgement or result.
func IsTxnCommand(k Kind) bool {
	switch k {
	case KindSale, KindRefund, KindVoid, KindPreAuth, KindCapture:
		return true
	}
	return false
}

// isTLV reports whether k's payload is a TLV sequence (every control kind).
func isTLV(k Kind) bool { return k.Known() && k < KindFinancialRequest }
