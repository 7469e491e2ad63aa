package iso93

import (
	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/padding"
	"github.com/moov-io/iso8583/prefix"
)

// Data element numbers used by posgate (ISO 8583:1993 numbering). The
// format of each is fixed by Spec and described in docs/message-spec.md.
const (
	FieldMTI                   = 0
	FieldBitmap                = 1
	FieldPAN                   = 2
	FieldProcessingCode        = 3
	FieldAmount                = 4
	FieldTransmissionTime      = 7
	FieldSTAN                  = 11
	FieldLocalTime             = 12
	FieldPOSDataCode           = 22
	FieldFunctionCode          = 24
	FieldReasonCode            = 25
	FieldAcquirerID            = 32
	FieldRRN                   = 37
	FieldApprovalCode          = 38
	FieldActionCode            = 39
	FieldTerminalID            = 41
	FieldMerchantID            = 42
	FieldCurrency              = 49
	FieldPINData               = 52
	FieldICCData               = 55
	FieldOriginalData          = 56
	FieldDataRecord            = 72
	FieldCreditsNumber         = 74
	FieldDebitsNumber          = 76
	FieldCreditsAmount         = 86
	FieldDebitsAmount          = 88
	FieldNetReconciliation     = 97
	FieldDestinationID         = 93
	FieldOriginatorID          = 94
	FieldReceivingID           = 100
	FieldFileName              = 101
	FieldCardData              = 120
	FieldKSN                   = 121
	FieldFingerprint           = 122
	FieldIdempotencyKey        = 123
	FieldMaskedPAN             = 124
	FieldPINBlock              = 125
	FieldOriginatorGatewayID   = 126
	FieldStandInData           = 127
	FieldMAC                   = 128
	maxField                   = 128
	secondaryBitmapPresenceBit = 65
)

// Spec is the posgate ISO 8583:1993 message specification: a 4-digit ASCII
// MTI, a binary bitmap (8 bytes, 16 when any of fields 65-128 is present),
// numeric and text fields in ASCII, binary fields raw, and ASCII decimal
// LL/LLL length prefixes. Fields not listed here are not part of the protocol
// and make a message malformed.
//
// Numeric fields that carry codes or identifiers (MTI, STAN, dates, function
// and action codes, institution ids) are field.String values restricted to
// decimal digits, so leading zeros are kept exactly as sent; amounts and
// counts are field.Numeric. Text fields accept printable ASCII (0x20-0x7E)
// only.
//
// Spec must not be modified; it is shared by every message in the process.
var Spec = &iso8583.MessageSpec{
	Name: "posgate ISO 8583:1993",
	Fields: map[int]field.Field{
		FieldMTI: digitsFixed(4, "Message Type Indicator"),
		FieldBitmap: field.NewBitmap(&field.Spec{
			Length:      8,
			Description: "Bitmap",
			Enc:         encoding.Binary,
			Pref:        prefix.Binary.Fixed,
		}),
		FieldPAN:                 digitsVar(prefix.ASCII.LL, 19, "Primary Account Number"),
		FieldProcessingCode:      digitsFixed(6, "Processing Code"),
		FieldAmount:              amount(12, "Amount, Transaction"),
		FieldTransmissionTime:    digitsFixed(10, "Date and Time, Transmission"),
		FieldSTAN:                digitsFixed(6, "Systems Trace Audit Number"),
		FieldLocalTime:           digitsFixed(12, "Date and Time, Local Transaction"),
		FieldPOSDataCode:         textFixed(12, "Point of Service Data Code"),
		FieldFunctionCode:        digitsFixed(3, "Function Code"),
		FieldReasonCode:          digitsFixed(4, "Message Reason Code"),
		FieldAcquirerID:          digitsVar(prefix.ASCII.LL, 11, "Acquiring Institution Identification Code"),
		FieldRRN:                 textFixed(12, "Retrieval Reference Number"),
		FieldApprovalCode:        textFixed(6, "Approval Code"),
		FieldActionCode:          digitsFixed(3, "Action Code"),
		FieldTerminalID:          textFixed(8, "Card Acceptor Terminal Identification"),
		FieldMerchantID:          textFixed(15, "Card Acceptor Identification Code"),
		FieldCurrency:            digitsFixed(3, "Currency Code, Transaction"),
		FieldPINData:             binaryFixed(8, "PIN Data"),
		FieldICCData:             binaryVar(prefix.ASCII.LLL, 255, "Integrated Circuit Card System Related Data"),
		FieldOriginalData:        digitsVar(prefix.ASCII.LL, 35, "Original Data Elements"),
		FieldDataRecord:          textVar(prefix.ASCII.LLL, 999, "Data Record"),
		FieldCreditsNumber:       amount(10, "Credits, Number"),
		FieldDebitsNumber:        amount(10, "Debits, Number"),
		FieldCreditsAmount:       amount(16, "Credits, Amount"),
		FieldDebitsAmount:        amount(16, "Debits, Amount"),
		FieldDestinationID:       digitsVar(prefix.ASCII.LL, 11, "Transaction Destination Institution Identification Code"),
		FieldOriginatorID:        digitsVar(prefix.ASCII.LL, 11, "Transaction Originator Institution Identification Code"),
		FieldNetReconciliation:   textFixed(17, "Amount, Net Reconciliation"),
		FieldReceivingID:         digitsVar(prefix.ASCII.LL, 11, "Receiving Institution Identification Code"),
		FieldFileName:            textVar(prefix.ASCII.LL, 17, "File Name"),
		FieldCardData:            binaryVar(prefix.ASCII.LLL, 999, "Encrypted Card Data Block (private)"),
		FieldKSN:                 binaryVar(prefix.ASCII.LL, 12, "Key Serial Number (private)"),
		FieldFingerprint:         textVar(prefix.ASCII.LL, 32, "PAN Fingerprint (private)"),
		FieldIdempotencyKey:      textVar(prefix.ASCII.LL, 64, "Idempotency Key (private)"),
		FieldMaskedPAN:           textVar(prefix.ASCII.LL, 19, "Masked PAN (private)"),
		FieldPINBlock:            binaryVar(prefix.ASCII.LL, 16, "PIN Block, ISO 9564 Format 4 (private)"),
		FieldOriginatorGatewayID: textVar(prefix.ASCII.LL, 32, "Originator Gateway Identification (private)"),
		FieldStandInData:         textVar(prefix.ASCII.LLL, 999, "Offline/Stand-in Data (private, reserved)"),
		FieldMAC:                 binaryFixed(8, "Message Authentication Code (reserved)"),
	},
}

func digitsFixed(n int, desc string) *field.String {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: digitsEncoding, Pref: prefix.ASCII.Fixed})
}

func digitsVar(pref prefix.Prefixer, max int, desc string) *field.String {
	return field.NewString(&field.Spec{Length: max, Description: desc, Enc: digitsEncoding, Pref: pref})
}

func amount(n int, desc string) *field.Numeric {
	return field.NewNumeric(&field.Spec{Length: n, Description: desc, Enc: digitsEncoding, Pref: prefix.ASCII.Fixed, Pad: padding.Left('0')})
}

func textFixed(n int, desc string) *field.String {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: textEncoding, Pref: prefix.ASCII.Fixed})
}

func textVar(pref prefix.Prefixer, max int, desc string) *field.String {
	return field.NewString(&field.Spec{Length: max, Description: desc, Enc: textEncoding, Pref: pref})
}

func binaryFixed(n int, desc string) *field.Binary {
	return field.NewBinary(&field.Spec{Length: n, Description: desc, Enc: encoding.Binary, Pref: prefix.Binary.Fixed})
}

func binaryVar(pref prefix.Prefixer, max int, desc string) *field.Binary {
	return field.NewBinary(&field.Spec{Length: max, Description: desc, Enc: encoding.Binary, Pref: pref})
}
