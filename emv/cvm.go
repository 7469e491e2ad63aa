package emv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// CVMMethod is a cardholder verification method code: bits 6-1 of the
// first byte of a CVM rule (EMV Book 3 Annex C3).
type CVMMethod byte

// CVM methods.
const (
	CVMFail                     CVMMethod = 0x00
	CVMPlaintextPIN             CVMMethod = 0x01
	CVMOnlinePIN                CVMMethod = 0x02
	CVMPlaintextPINAndSignature CVMMethod = 0x03
	CVMEncipheredPIN            CVMMethod = 0x04
	CVMEncipheredPINAndSig      CVMMethod = 0x05
	CVMSignature                CVMMethod = 0x1E
	CVMNoCVMRequired            CVMMethod = 0x1F
	CVMNotPerformed             CVMMethod = 0x3F
)

// String names the method.
func (m CVMMethod) String() string {
	switch m {
	case CVMFail:
		return "fail CVM processing"
	case CVMPlaintextPIN:
		return "plaintext PIN verified by ICC"
	case CVMOnlinePIN:
		return "enciphered PIN verified online"
	case CVMPlaintextPINAndSignature:
		return "plaintext PIN verified by ICC and signature"
	case CVMEncipheredPIN:
		return "enciphered PIN verified by ICC"
	case CVMEncipheredPINAndSig:
		return "enciphered PIN verified by ICC and signature"
	case CVMSignature:
		return "signature (paper)"
	case CVMNoCVMRequired:
		return "no CVM required"
	case CVMNotPerformed:
		return "no CVM performed"
	}
	return fmt.Sprintf("CVM method %02X (proprietary or RFU)", byte(m))
}

// CVMCondition is the condition code, the second byte of a CVM rule.
type CVMCondition byte

// String names the condition.
func (c CVMCondition) String() string {
	switch c {
	case 0x00:
		return "always"
	case 0x01:
		return "if unattended cash"
	case 0x02:
		return "if not unattended cash and not manual cash and not purchase with cashback"
	case 0x03:
		return "if terminal supports the CVM"
	case 0x04:
		return "if manual cash"
	case 0x05:
		return "if purchase with cashback"
	case 0x06:
		return "if transaction is in the application currency and under X"
	case 0x07:
		return "if transaction is in the application currency and over X"
	case 0x08:
		return "if transaction is in the application currency and under Y"
	case 0x09:
		return "if transaction is in the application currency and over Y"
	}
	return fmt.Sprintf("condition %02X (proprietary or RFU)", byte(c))
}

// CVMRule is one rule of a CVM List.
type CVMRule struct {
	Method CVMMethod
	// ApplyNext is bit 7 of the method byte: apply the next rule if this
	// one fails.
	ApplyNext bool
	Condition CVMCondition
}

// String describes the rule.
func (r CVMRule) String() string {
	next := "fail cardholder verification if unsuccessful"
	if r.ApplyNext {
		next = "apply succeeding rule if unsuccessful"
	}
	return fmt.Sprintf("%v, %v, %s", r.Method, r.Condition, next)
}

// CVMList is a decoded CVM List (tag 8E).
type CVMList struct {
	X, Y  uint32 // amounts in the application currency, minor units
	Rules []CVMRule
}

// ErrCVMList means CVM List bytes are malformed: shorter than 10 bytes or
// with an odd number of rule bytes.
var ErrCVMList = errors.New("emv: malformed CVM list")

// ParseCVMList decodes a CVM List value: amount X (4 bytes), amount Y (4
// bytes), then two-byte rules.
func ParseCVMList(b []byte) (CVMList, error) {
	if len(b) < 10 || (len(b)-8)%2 != 0 {
		return CVMList{}, fmt.Errorf("parse CVM list of %d bytes: %w", len(b), ErrCVMList)
	}
	l := CVMList{X: binary.BigEndian.Uint32(b), Y: binary.BigEndian.Uint32(b[4:])}
	for i := 8; i < len(b); i += 2 {
		l.Rules = append(l.Rules, CVMRule{Method: CVMMethod(b[i] & 0x3F), ApplyNext: b[i]&0x40 != 0, Condition: CVMCondition(b[i+1])})
	}
	return l, nil
}

// Encode returns the CVM List value bytes.
func (l CVMList) Encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, l.X)
	b = binary.BigEndian.AppendUint32(b, l.Y)
	for _, r := range l.Rules {
		m := byte(r.Method) & 0x3F
		if r.ApplyNext {
			m |= 0x40
		}
		b = append(b, m, byte(r.Condition))
	}
	return b
}

// CVMResult is the third byte of CVM Results.
type CVMResult byte

// CVM results.
const (
	CVMResultUnknown    CVMResult = 0x00
	CVMResultFailed     CVMResult = 0x01
	CVMResultSuccessful CVMResult = 0x02
)

// String names the result.
func (r CVMResult) String() string {
	switch r {
	case CVMResultUnknown:
		return "unknown"
	case CVMResultFailed:
		return "failed"
	case CVMResultSuccessful:
		return "successful"
	}
	return fmt.Sprintf("result %02X (RFU)", byte(r))
}

// CVMResults is CVM Results (tag 9F34): the method performed (first byte
// of the rule, or 3F when none), its condition and the result.
type CVMResults [3]byte

// Method returns the CVM performed.
func (c CVMResults) Method() CVMMethod { return CVMMethod(c[0] & 0x3F) }

// Condition returns the condition of the rule applied.
func (c CVMResults) Condition() CVMCondition { return CVMCondition(c[1]) }

// Result returns the outcome.
func (c CVMResults) Result() CVMResult { return CVMResult(c[2]) }

// Flags describes the three bytes: "method: ...", "condition: ...",
// "result: ...".
func (c CVMResults) Flags() []string {
	return []string{"method: " + c.Method().String(), "condition: " + c.Condition().String(), "result: " + c.Result().String()}
}
