package iso93

// echoTrace returns the Trace fields a response copies from its request
// (DE 7, 11, 12, 24, 32, 37, 41, 42, 123), the same list NewResponse uses.
func echoTrace(t Trace) Trace {
	return Trace{
		TransmissionTime: t.TransmissionTime,
		STAN:             t.STAN,
		LocalTime:        t.LocalTime,
		FunctionCode:     t.FunctionCode,
		AcquirerID:       t.AcquirerID,
		RRN:              t.RRN,
		TerminalID:       t.TerminalID,
		MerchantID:       t.MerchantID,
		IdempotencyKey:   t.IdempotencyKey,
	}
}

// echoPayment returns the Payment fields a response copies (DE 3, 4, 49).
func echoPayment(p Payment) Payment {
	return Payment{ProcessingCode: p.ProcessingCode, Amount: p.Amount, Currency: p.Currency}
}

// Response returns the 1110 skeleton answering r with action; the caller
// sets ApprovalCode (mandatory when approved), ICCData and MaskedPAN.
func (r *AuthorizationRequest) Response(action ActionCode) *AuthorizationResponse {
	return &AuthorizationResponse{Trace: echoTrace(r.Trace), Payment: echoPayment(r.Payment), ActionCode: action}
}

// Response returns the 1210 skeleton answering r with action; the caller
// sets ApprovalCode (mandatory when approved), ICCData and MaskedPAN.
func (r *FinancialRequest) Response(action ActionCode) *FinancialResponse {
	return &FinancialResponse{Trace: echoTrace(r.Trace), Payment: echoPayment(r.Payment), ActionCode: action}
}

// Response returns the 1230 answering r (a 1220 or 1221) with action.
func (r *Advice) Response(action ActionCode) *AdviceResponse {
	return &AdviceResponse{Trace: echoTrace(r.Trace), Payment: echoPayment(r.Payment), ActionCode: action}
}

// Response returns the 1430 answering r (a 1420 or 1421) with action,
// echoing DE 56.
func (r *Reversal) Response(action ActionCode) *ReversalResponse {
	return &ReversalResponse{Trace: echoTrace(r.Trace), Payment: echoPayment(r.Payment), ActionCode: action, OriginalData: r.OriginalData}
}

// Response returns the 1314 answering r with action, echoing DE 101.
func (r *FileAction) Response(action ActionCode) *FileActionResponse {
	return &FileActionResponse{Trace: echoTrace(r.Trace), ActionCode: action, FileName: r.FileName}
}

// Response returns the 1530 answering r with action, echoing its totals.
func (r *Reconciliation) Response(action ActionCode) *ReconciliationResponse {
	return &ReconciliationResponse{
		Trace: echoTrace(r.Trace), Currency: r.Currency, ActionCode: action,
		CreditsNumber: r.CreditsNumber, DebitsNumber: r.DebitsNumber,
		CreditsAmount: r.CreditsAmount, DebitsAmount: r.DebitsAmount, NetAmount: r.NetAmount,
	}
}

// Response returns the 1814 answering r with action.
func (r *NetworkManagement) Response(action ActionCode) *NetworkManagementResponse {
	return &NetworkManagementResponse{Trace: echoTrace(r.Trace), ActionCode: action}
}
