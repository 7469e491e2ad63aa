package iso93

import (
	"slices"

	"github.com/moov-io/iso8583"
)

// mtiRule is what Validate requires of one MTI.
type mtiRule struct {
	mandatory []int
	functions []string // allowed DE 24 values
	check     func(f fields, mti string) error
}

var (
	financialRequest = []int{3, 4, 7, 11, 12, 22, 24, 32, 41, 42, 49}
	financialAnswer  = []int{3, 4, 7, 11, 24, 39, 41, 49}
	adviceRequest    = []int{3, 4, 7, 11, 12, 22, 24, 25, 32, 38, 41, 42, 49, 123}
	adviceAnswer     = []int{3, 4, 7, 11, 24, 39, 41, 49, 123}
	reversalRequest  = []int{3, 4, 7, 11, 12, 24, 25, 32, 41, 42, 49, 56, 123}
	networkRequest   = []int{7, 11, 24}
	networkAnswer    = []int{7, 11, 24, 39}
)

var mtiRules = map[string]mtiRule{
	MTIAuthorizationRequest:      {financialRequest, []string{FunctionOriginalAuthorization}, checkCardData},
	MTIAuthorizationResponse:     {financialAnswer, []string{FunctionOriginalAuthorization}, checkApproval},
	MTIFinancialRequest:          {financialRequest, []string{FunctionOriginalFinancial}, checkCardData},
	MTIFinancialResponse:         {financialAnswer, []string{FunctionOriginalFinancial}, checkApproval},
	MTIAdvice:                    {adviceRequest, []string{FunctionPreviousApproval}, checkCardData},
	MTIAdviceRepeat:              {adviceRequest, []string{FunctionPreviousApproval}, checkCardData},
	MTIAdviceResponse:            {adviceAnswer, []string{FunctionPreviousApproval}, nil},
	MTIReversal:                  {reversalRequest, []string{FunctionFullReversal}, nil},
	MTIReversalRepeat:            {reversalRequest, []string{FunctionFullReversal}, nil},
	MTIReversalResponse:          {adviceAnswer, []string{FunctionFullReversal}, nil},
	MTIFileAction:                {[]int{7, 11, 24, 101, 123}, []string{FunctionAddRecord, FunctionDeleteRecord, FunctionReplaceFile}, checkFileAction},
	MTIFileActionResponse:        {[]int{7, 11, 24, 39, 101}, []string{FunctionAddRecord, FunctionDeleteRecord, FunctionReplaceFile}, nil},
	MTIReconciliation:            {[]int{7, 11, 24, 49, 74, 76, 86, 88, 97}, []string{FunctionReconciliation}, nil},
	MTIReconciliationResponse:    {networkAnswer, []string{FunctionReconciliation}, nil},
	MTINetworkManagement:         {networkRequest, []string{FunctionSignOn, FunctionSignOff, FunctionEchoTest, FunctionNegativeFileUpdate}, nil},
	MTINetworkManagementResponse: {networkAnswer, []string{FunctionSignOn, FunctionSignOff, FunctionEchoTest, FunctionNegativeFileUpdate}, nil},
}

// fields is read access to the fields of a message, by number. get returns
// nil for an absent field.
type fields interface {
	has(id int) bool
	get(id int) []byte
}

type msgFields struct{ m *iso8583.Message }

func (f msgFields) has(id int) bool { return f.m.GetField(id) != nil }
func (f msgFields) get(id int) []byte {
	fl := f.m.GetField(id)
	if fl == nil {
		return nil
	}
	b, err := fl.Bytes()
	if err != nil {
		return nil
	}
	return b
}

// rawFields reads fields from a walked raw message without allocating.
type rawFields struct {
	raw []byte
	l   *layout
}

func (f rawFields) has(id int) bool   { return f.l.present[id] }
func (f rawFields) get(id int) []byte { return f.l.value(f.raw, id) }

// Validate checks msg against the protocol rules of its MTI: the MTI is
// one posgate uses, every mandatory field is present, the function code is
// one the MTI allows, the conditional rules hold (card data, KSN, PIN
// block, approval code), and the private fields have their exact formats.
// It returns a *FieldError wrapping ErrUnknownMTI, ErrMissingField or
// ErrInvalidField; a receiver answers it with 904. Validate does not modify
// msg.
func Validate(msg *iso8583.Message) error {
	mti, err := msg.GetMTI()
	if err != nil {
		return &FieldError{Field: FieldMTI, Reason: "cannot be read", Err: ErrMalformed}
	}
	return validate(mti, msgFields{msg})
}

func validate(mti string, f fields) error {
	rule, ok := mtiRules[mti]
	if !ok {
		return &FieldError{Field: FieldMTI, Reason: "MTI is not used by this protocol", Err: ErrUnknownMTI}
	}
	for _, id := range rule.mandatory {
		if !f.has(id) {
			return missing(id, mti)
		}
	}
	if fc := string(f.get(FieldFunctionCode)); !slices.Contains(rule.functions, fc) {
		return invalid(FieldFunctionCode, "function code not allowed in %s", mti)
	}
	if err := checkFormats(f); err != nil {
		return err
	}
	if rule.check != nil {
		return rule.check(f, mti)
	}
	return nil
}

// checkFormats checks the fields whose format is narrower than their codec.
func checkFormats(f fields) error {
	if f.has(FieldProcessingCode) {
		switch string(f.get(FieldProcessingCode)) {
		case ProcessingPurchase, ProcessingRefund, ProcessingBalance:
		default:
			return invalid(FieldProcessingCode, "processing code not supported")
		}
	}
	if f.has(FieldKSN) {
		if n := len(f.get(FieldKSN)); n != 10 && n != 12 {
			return invalid(FieldKSN, "KSN is %d bytes, want 10 (TDES) or 12 (AES)", n)
		}
	}
	if f.has(FieldFingerprint) {
		fp := f.get(FieldFingerprint)
		if len(fp) != 32 {
			return invalid(FieldFingerprint, "fingerprint is %d characters, want 32", len(fp))
		}
		for i, c := range fp {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return invalid(FieldFingerprint, "character %d is not a lower-case hex digit", i)
			}
		}
	}
	if f.has(FieldIdempotencyKey) && len(f.get(FieldIdempotencyKey)) == 0 {
		return invalid(FieldIdempotencyKey, "idempotency key is empty")
	}
	if f.has(FieldPINBlock) {
		if n := len(f.get(FieldPINBlock)); n != 16 {
			return invalid(FieldPINBlock, "PIN block is %d bytes, want 16", n)
		}
	}
	if f.has(FieldNetReconciliation) {
		if _, err := ParseNetAmount(string(f.get(FieldNetReconciliation))); err != nil {
			return err
		}
	}
	if f.has(FieldOriginalData) {
		if _, err := ParseOriginalData(string(f.get(FieldOriginalData))); err != nil {
			return err
		}
	}
	return nil
}

// checkCardData enforces the card-data rules of 1100, 1200, 1220 and 1221:
// exactly one of DE 2 (center-to-center) and DE 120 (encrypted block);
// DE 120 needs DE 121 and DE 122; DE 52 needs DE 2; DE 125 needs DE 120;
// DE 52 and DE 125 are exclusive.
func checkCardData(f fields, mti string) error {
	pan, block := f.has(FieldPAN), f.has(FieldCardData)
	switch {
	case pan && block:
		return invalid(FieldCardData, "DE 2 and DE 120 are exclusive")
	case !pan && !block:
		return missing(FieldCardData, mti)
	}
	if block {
		if !f.has(FieldKSN) {
			return missing(FieldKSN, mti)
		}
		if !f.has(FieldFingerprint) {
			return missing(FieldFingerprint, mti)
		}
	}
	if f.has(FieldPINData) && !pan {
		return invalid(FieldPINData, "DE 52 (format 0 PIN block) needs DE 2")
	}
	if f.has(FieldPINBlock) && !block {
		return invalid(FieldPINBlock, "DE 125 needs DE 120 and DE 121")
	}
	return nil
}

// checkApproval requires DE 38 on an approved 1110 or 1210.
func checkApproval(f fields, _ string) error {
	if ActionCode(f.get(FieldActionCode)).Approved() && !f.has(FieldApprovalCode) {
		return invalid(FieldApprovalCode, "approval code missing on an approved response")
	}
	return nil
}

// checkFileAction requires DE 72 when records are added or deleted.
func checkFileAction(f fields, mti string) error {
	switch string(f.get(FieldFunctionCode)) {
	case FunctionAddRecord, FunctionDeleteRecord:
		if !f.has(FieldDataRecord) {
			return missing(FieldDataRecord, mti)
		}
	}
	return nil
}
