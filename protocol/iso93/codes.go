package iso93

// Message type indicators (ISO 8583:1993, version digit 1).
const (
	MTIAuthorizationRequest      = "1100"
	MTIAuthorizationResponse     = "1110"
	MTIFinancialRequest          = "1200"
	MTIFinancialResponse         = "1210"
	MTIAdvice                    = "1220"
	MTIAdviceRepeat              = "1221"
	MTIAdviceResponse            = "1230"
	MTIFileAction                = "1304"
	MTIFileActionResponse        = "1314"
	MTIReversal                  = "1420"
	MTIReversalRepeat            = "1421"
	MTIReversalResponse          = "1430"
	MTIReconciliation            = "1520"
	MTIReconciliationResponse    = "1530"
	MTINetworkManagement         = "1804"
	MTINetworkManagementResponse = "1814"
)

// Processing codes (DE 3): transaction type in the first two digits, from
// and to account types 00 (default).
const (
	ProcessingPurchase = "000000"
	ProcessingRefund   = "200000"
	ProcessingBalance  = "300000"
)

// Function codes (DE 24).
const (
	FunctionOriginalAuthorization = "100"
	FunctionOriginalFinancial     = "200"
	FunctionPreviousApproval      = "201" // advice of an offline/stand-in approval
	FunctionAddRecord             = "301"
	FunctionDeleteRecord          = "303"
	FunctionReplaceFile           = "304"
	FunctionFullReversal          = "400"
	FunctionReconciliation        = "500"
	FunctionSignOn                = "801"
	FunctionSignOff               = "802"
	FunctionEchoTest              = "831"
	FunctionNegativeFileUpdate    = "881"
)

// Message reason codes (DE 25) used by posgate.
const (
	ReasonStandIn         = "1003" // approved by the gateway in stand-in
	ReasonTimeoutReversal = "4021" // reversal because the response timed out
	ReasonCustomerCancel  = "4000" // reversal requested by the customer or POS
	// ReasonICCProcessed is the reason of a terminal's 1220 advice of an
	// offline chip approval: ISO 8583:1993's "ICC processed" (the card
	// approved the transaction offline with a TC). The center does not
	// branch on it.
	ReasonICCProcessed = "1005"
	// ReasonCompletion is the reason of a completion advice: ISO
	// 8583:1993's completion of a previously authorized transaction. The
	// center does not branch on it.
	ReasonCompletion = "1376"
)

// ActionCode is the DE 39 action code of a response: three decimal digits.
// Its zero value is not a valid code.
type ActionCode string

// Action codes used by posgate (ISO 8583:1993 Annex; the meaning in the
// comment is the one Description returns).
const (
	ActionApproved                 ActionCode = "000"
	ActionHonourWithID             ActionCode = "001"
	ActionDoNotHonour              ActionCode = "100"
	ActionExpiredCard              ActionCode = "101"
	ActionSuspectedFraud           ActionCode = "102"
	ActionRestrictedCard           ActionCode = "104"
	ActionPINTriesExceeded         ActionCode = "106"
	ActionInvalidAmount            ActionCode = "110"
	ActionInvalidCardNumber        ActionCode = "111"
	ActionInsufficientFunds        ActionCode = "116"
	ActionIncorrectPIN             ActionCode = "117"
	ActionNotPermittedToCardholder ActionCode = "119"
	ActionNotPermittedToTerminal   ActionCode = "120"
	ActionExceedsAmountLimit       ActionCode = "121"
	ActionExceedsFrequencyLimit    ActionCode = "123"
	ActionCardNotEffective         ActionCode = "125"
	ActionPickUp                   ActionCode = "200"
	ActionLostCard                 ActionCode = "208"
	ActionStolenCard               ActionCode = "209"
	ActionReversalAccepted         ActionCode = "400"
	ActionNetworkAccepted          ActionCode = "800"
	ActionInvalidTransaction       ActionCode = "902"
	ActionReenter                  ActionCode = "903"
	ActionFormatError              ActionCode = "904"
	ActionCutover                  ActionCode = "906"
	ActionIssuerInoperative        ActionCode = "907"
	ActionSystemMalfunction        ActionCode = "909"
	ActionIssuerTimedOut           ActionCode = "911"
	ActionDuplicateTransmission    ActionCode = "913"
	ActionOriginalNotFound         ActionCode = "914"
	ActionMACIncorrect             ActionCode = "916"
	ActionMACKeySyncError          ActionCode = "917"
	ActionRequestInProgress        ActionCode = "923"
)

var actionDescriptions = map[ActionCode]string{
	ActionApproved:                 "approved",
	ActionHonourWithID:             "honour with identification",
	ActionDoNotHonour:              "do not honour",
	ActionExpiredCard:              "expired card",
	ActionSuspectedFraud:           "suspected fraud",
	ActionRestrictedCard:           "restricted card",
	ActionPINTriesExceeded:         "allowable PIN tries exceeded",
	ActionInvalidAmount:            "invalid amount",
	ActionInvalidCardNumber:        "invalid card number (no such card)",
	ActionInsufficientFunds:        "not sufficient funds",
	ActionIncorrectPIN:             "incorrect PIN",
	ActionNotPermittedToCardholder: "transaction not permitted to cardholder",
	ActionNotPermittedToTerminal:   "transaction not permitted to terminal",
	ActionExceedsAmountLimit:       "exceeds withdrawal amount limit",
	ActionExceedsFrequencyLimit:    "exceeds withdrawal frequency limit",
	ActionCardNotEffective:         "card not effective",
	ActionPickUp:                   "pick up (do not honour)",
	ActionLostCard:                 "lost card, pick up",
	ActionStolenCard:               "stolen card, pick up",
	ActionReversalAccepted:         "accepted (reversal)",
	ActionNetworkAccepted:          "accepted (network management)",
	ActionInvalidTransaction:       "invalid transaction",
	ActionReenter:                  "re-enter transaction",
	ActionFormatError:              "format error",
	ActionCutover:                  "cutover in process",
	ActionIssuerInoperative:        "card issuer or switch inoperative",
	ActionSystemMalfunction:        "system malfunction",
	ActionIssuerTimedOut:           "card issuer timed out",
	ActionDuplicateTransmission:    "duplicate transmission",
	ActionOriginalNotFound:         "not able to trace back to original transaction",
	ActionMACIncorrect:             "MAC incorrect",
	ActionMACKeySyncError:          "MAC key sync error",
	ActionRequestInProgress:        "request in progress",
}

// Approved reports whether the code approves the request: 000 and 001 for
// authorizations and financial messages, 400 for reversals and 800 for
// network management.
func (c ActionCode) Approved() bool {
	switch c {
	case ActionApproved, ActionHonourWithID, ActionReversalAccepted, ActionNetworkAccepted:
		return true
	}
	return false
}

// Description returns the meaning of a code posgate uses, or "action code
// NNN" for any other three-digit code and "invalid action code" otherwise.
// It is safe to log.
func (c ActionCode) Description() string {
	if d, ok := actionDescriptions[c]; ok {
		return d
	}
	if len(c) == 3 && isDigit(c[0]) && isDigit(c[1]) && isDigit(c[2]) {
		return "action code " + string(c)
	}
	return "invalid action code"
}

// String returns the code itself.
func (c ActionCode) String() string { return string(c) }

// ResponseMTI returns the response MTI for a request MTI (1100 -> 1110,
// 1221 -> 1230, 1421 -> 1430, 1804 -> 1814) and false when mti is not a
// request posgate answers.
func ResponseMTI(mti string) (string, bool) {
	switch mti {
	case MTIAuthorizationRequest:
		return MTIAuthorizationResponse, true
	case MTIFinancialRequest:
		return MTIFinancialResponse, true
	case MTIAdvice, MTIAdviceRepeat:
		return MTIAdviceResponse, true
	case MTIFileAction:
		return MTIFileActionResponse, true
	case MTIReversal, MTIReversalRepeat:
		return MTIReversalResponse, true
	case MTIReconciliation:
		return MTIReconciliationResponse, true
	case MTINetworkManagement:
		return MTINetworkManagementResponse, true
	}
	return "", false
}

// IsResponse reports whether mti is one of the response MTIs of the
// protocol.
func IsResponse(mti string) bool {
	switch mti {
	case MTIAuthorizationResponse, MTIFinancialResponse, MTIAdviceResponse, MTIFileActionResponse,
		MTIReversalResponse, MTIReconciliationResponse, MTINetworkManagementResponse:
		return true
	}
	return false
}
