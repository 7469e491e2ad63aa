package iso93

import (
	"log/slog"
)

// PAN is a clear primary account number as carried in DE 2 on the
// center-to-center port and towards brand hosts. It never appears at the
// edge. String, GoString and LogValue show only the first six and last four
// digits, so a PAN printed with fmt or slog (alone or inside a message
// struct) is masked; string(p) reveals it.
type PAN string

// String returns the masked form (first six, '*'s, last four).
func (p PAN) String() string { return MaskPAN(string(p)) }

// GoString returns the masked form, so %#v does not reveal the PAN.
func (p PAN) GoString() string { return `iso93.PAN("` + MaskPAN(string(p)) + `")` }

// LogValue returns the masked form.
func (p PAN) LogValue() slog.Value { return slog.StringValue(MaskPAN(string(p))) }

// MaskPAN returns pan with all but the first six and last four characters
// replaced by '*' (the DE 124 form). A value of ten characters or fewer is
// fully masked.
func MaskPAN(pan string) string {
	if len(pan) <= 10 {
		b := make([]byte, len(pan))
		for i := range b {
			b[i] = '*'
		}
		return string(b)
	}
	b := []byte(pan)
	for i := 6; i < len(b)-4; i++ {
		b[i] = '*'
	}
	return string(b)
}

// Trace groups the data elements that identify a message and its path:
// who sent it, when, and under which trace number. Every typed message
// embeds it; which of its fields are mandatory depends on the MTI (see
// Validate and docs/message-spec.md).
type Trace struct {
	TransmissionTime string `iso8583:"7"`   // MMDDhhmmss, UTC
	STAN             string `iso8583:"11"`  // 6 digits
	LocalTime        string `iso8583:"12"`  // YYMMDDhhmmss, terminal local time
	FunctionCode     string `iso8583:"24"`  // Function* constants
	ReasonCode       string `iso8583:"25"`  // Reason* constants
	AcquirerID       string `iso8583:"32"`  // up to 11 digits
	RRN              string `iso8583:"37"`  // 12 characters
	TerminalID       string `iso8583:"41"`  // 8 characters
	MerchantID       string `iso8583:"42"`  // 15 characters
	DestinationID    string `iso8583:"93"`  // up to 11 digits
	OriginatorID     string `iso8583:"94"`  // up to 11 digits
	ReceivingID      string `iso8583:"100"` // up to 11 digits
	IdempotencyKey   string `iso8583:"123"` // up to 64 characters
	GatewayID        string `iso8583:"126"` // informational only
}

// Payment groups the amount data elements of financial-class messages.
type Payment struct {
	ProcessingCode string `iso8583:"3"`          // Processing* constants
	Amount         int64  `iso8583:"4,keepzero"` // minor units of Currency
	POSDataCode    string `iso8583:"22"`         // 12 characters
	Currency       string `iso8583:"49"`         // ISO 4217 numeric
}

// Card groups the card data elements of a request. At the edge only the
// encrypted forms (CardData, KSN, PINBlock) with Fingerprint and MaskedPAN
// are used; PAN and PINData appear only between centers and towards brand
// hosts.
type Card struct {
	PAN         PAN    `iso8583:"2"`
	PINData     []byte `iso8583:"52"`  // 8 bytes, TDES ISO 9564 format 0
	ICCData     []byte `iso8583:"55"`  // BER-TLV, up to 255 bytes
	CardData    []byte `iso8583:"120"` // encrypted card-data block, docs/card-data-block.md
	KSN         []byte `iso8583:"121"` // 10 bytes (TDES) or 12 bytes (AES DUKPT)
	Fingerprint string `iso8583:"122"` // 32 lower-case hex digits
	MaskedPAN   string `iso8583:"124"` // first six, '*', last four
	PINBlock    []byte `iso8583:"125"` // 16 bytes, AES ISO 9564 format 4
}

// AuthorizationRequest is a 1100 authorization request.
type AuthorizationRequest struct {
	Trace
	Payment
	Card
}

// AuthorizationResponse is a 1110 authorization response.
type AuthorizationResponse struct {
	Trace
	Payment
	ApprovalCode string     `iso8583:"38"`
	ActionCode   ActionCode `iso8583:"39"`
	ICCData      []byte     `iso8583:"55"` // issuer authentication data and scripts
	MaskedPAN    string     `iso8583:"124"`
}

// FinancialRequest is a 1200 financial request (a sale or refund that is
// captured at once); it carries the same data elements as a 1100.
type FinancialRequest struct {
	Trace
	Payment
	Card
}

// FinancialResponse is a 1210 financial response.
type FinancialResponse struct {
	Trace
	Payment
	ApprovalCode string     `iso8583:"38"`
	ActionCode   ActionCode `iso8583:"39"`
	ICCData      []byte     `iso8583:"55"`
	MaskedPAN    string     `iso8583:"124"`
}

// Advice is a 1220 financial advice (1221 when repeated) that reports a
// transaction the gateway approved in stand-in (function code 201). Its
// IdempotencyKey is the same on every repeat.
type Advice struct {
	Trace
	Payment
	Card
	ApprovalCode string `iso8583:"38"`
	StandInData  string `iso8583:"127"` // reserved
}

// AdviceResponse is a 1230 advice response.
type AdviceResponse struct {
	Trace
	Payment
	ActionCode ActionCode `iso8583:"39"`
}

// Reversal is a 1420 reversal advice (1421 when repeated) of the original
// transaction named in OriginalData (DE 56, see OriginalData).
type Reversal struct {
	Trace
	Payment
	ApprovalCode string `iso8583:"38"`
	OriginalData string `iso8583:"56"`
	Fingerprint  string `iso8583:"122"`
	MaskedPAN    string `iso8583:"124"`
}

// ReversalResponse is a 1430 reversal advice response.
type ReversalResponse struct {
	Trace
	Payment
	ActionCode   ActionCode `iso8583:"39"`
	OriginalData string     `iso8583:"56"`
}

// FileAction is a 1304 file action request: negative-file records (DE 72)
// added, deleted or replaced in the file named by DE 101.
type FileAction struct {
	Trace
	DataRecord string `iso8583:"72"`
	FileName   string `iso8583:"101"`
}

// FileActionResponse is a 1314 file action response.
type FileActionResponse struct {
	Trace
	ActionCode ActionCode `iso8583:"39"`
	FileName   string     `iso8583:"101"`
}

// Reconciliation is a 1520 reconciliation advice with the totals of one
// currency since the previous reconciliation.
type Reconciliation struct {
	Trace
	Currency      string `iso8583:"49"`
	CreditsNumber int64  `iso8583:"74,keepzero"`
	DebitsNumber  int64  `iso8583:"76,keepzero"`
	CreditsAmount int64  `iso8583:"86,keepzero"`
	DebitsAmount  int64  `iso8583:"88,keepzero"`
	NetAmount     string `iso8583:"97"` // 'C' or 'D' and 16 digits; see NetAmount
}

// ReconciliationResponse is a 1530 reconciliation advice response; it
// echoes the totals the receiver agrees with.
type ReconciliationResponse struct {
	Trace
	Currency      string     `iso8583:"49"`
	CreditsNumber int64      `iso8583:"74"`
	DebitsNumber  int64      `iso8583:"76"`
	CreditsAmount int64      `iso8583:"86"`
	DebitsAmount  int64      `iso8583:"88"`
	NetAmount     string     `iso8583:"97"`
	ActionCode    ActionCode `iso8583:"39"`
}

// NetworkManagement is a 1804 network management request: sign-on (801),
// sign-off (802), echo test (831) or negative-file update notification
// (881).
type NetworkManagement struct {
	Trace
}

// NetworkManagementResponse is a 1814 network management response.
type NetworkManagementResponse struct {
	Trace
	ActionCode ActionCode `iso8583:"39"`
}

// mtisOf returns the MTIs a typed message may be packed as, or nil when v is
// not one of the package's message types.
func mtisOf(v any) []string {
	switch v.(type) {
	case *AuthorizationRequest, AuthorizationRequest:
		return []string{MTIAuthorizationRequest}
	case *AuthorizationResponse, AuthorizationResponse:
		return []string{MTIAuthorizationResponse}
	case *FinancialRequest, FinancialRequest:
		return []string{MTIFinancialRequest}
	case *FinancialResponse, FinancialResponse:
		return []string{MTIFinancialResponse}
	case *Advice, Advice:
		return []string{MTIAdvice, MTIAdviceRepeat}
	case *AdviceResponse, AdviceResponse:
		return []string{MTIAdviceResponse}
	case *Reversal, Reversal:
		return []string{MTIReversal, MTIReversalRepeat}
	case *ReversalResponse, ReversalResponse:
		return []string{MTIReversalResponse}
	case *FileAction, FileAction:
		return []string{MTIFileAction}
	case *FileActionResponse, FileActionResponse:
		return []string{MTIFileActionResponse}
	case *Reconciliation, Reconciliation:
		return []string{MTIReconciliation}
	case *ReconciliationResponse, ReconciliationResponse:
		return []string{MTIReconciliationResponse}
	case *NetworkManagement, NetworkManagement:
		return []string{MTINetworkManagement}
	case *NetworkManagementResponse, NetworkManagementResponse:
		return []string{MTINetworkManagementResponse}
	}
	return nil
}
