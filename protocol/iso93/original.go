package iso93

import (
	"fmt"
	"strconv"
)

// OriginalData is the content of DE 56, original data elements: the MTI,
// STAN, local date and time and acquiring institution id of the message a
// reversal or repeat refers to.
type OriginalData struct {
	MTI        string // 4 digits
	STAN       string // 6 digits
	LocalTime  string // 12 digits, YYMMDDhhmmss
	AcquirerID string // up to 11 digits
}

// Encode returns the DE 56 form: MTI, STAN, local time, then the acquirer
// id with its two-digit length. It returns an error if a part has the wrong
// length or a non-digit.
func (o OriginalData) Encode() (string, error) {
	if err := digitsOf(o.MTI, 4, 4); err != nil {
		return "", invalid(FieldOriginalData, "original MTI: %v", err)
	}
	if err := digitsOf(o.STAN, 6, 6); err != nil {
		return "", invalid(FieldOriginalData, "original STAN: %v", err)
	}
	if err := digitsOf(o.LocalTime, 12, 12); err != nil {
		return "", invalid(FieldOriginalData, "original local time: %v", err)
	}
	if err := digitsOf(o.AcquirerID, 0, 11); err != nil {
		return "", invalid(FieldOriginalData, "original acquirer id: %v", err)
	}
	return fmt.Sprintf("%s%s%s%02d%s", o.MTI, o.STAN, o.LocalTime, len(o.AcquirerID), o.AcquirerID), nil
}

// ParseOriginalData parses a DE 56 value. Errors are *FieldError wrapping
// ErrInvalidField.
func ParseOriginalData(s string) (OriginalData, error) {
	if len(s) < 24 {
		return OriginalData{}, invalid(FieldOriginalData, "original data is %d digits, want at least 24", len(s))
	}
	if err := digitsOf(s, 24, 35); err != nil {
		return OriginalData{}, invalid(FieldOriginalData, "original data: %v", err)
	}
	n, _ := strconv.Atoi(s[22:24])
	if len(s) != 24+n {
		return OriginalData{}, invalid(FieldOriginalData, "original acquirer id length %d does not match %d remaining digits", n, len(s)-24)
	}
	return OriginalData{MTI: s[:4], STAN: s[4:10], LocalTime: s[10:22], AcquirerID: s[24:]}, nil
}

func digitsOf(s string, min, max int) error {
	if len(s) < min || len(s) > max {
		if min == max {
			return fmt.Errorf("%d characters, want %d", len(s), min)
		}
		return fmt.Errorf("%d characters, want %d..%d", len(s), min, max)
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return fmt.Errorf("character %d is not a digit", i)
		}
	}
	return nil
}

// FormatNetAmount returns the DE 97 form of a net reconciliation amount in
// minor units: 'C' and 16 digits when net >= 0 (credits exceed debits or
// balance), 'D' and 16 digits when net < 0. It returns an error when |net|
// does not fit in 16 digits.
func FormatNetAmount(net int64) (string, error) {
	sign, abs := byte('C'), net
	if net < 0 {
		sign, abs = 'D', -net
	}
	if abs < 0 || abs > 9999999999999999 {
		return "", invalid(FieldNetReconciliation, "net amount does not fit in 16 digits")
	}
	return fmt.Sprintf("%c%016d", sign, abs), nil
}

// ParseNetAmount parses a DE 97 value and returns the net amount, positive
// for 'C' and negative for 'D'. Errors are *FieldError wrapping
// ErrInvalidField.
func ParseNetAmount(s string) (int64, error) {
	if len(s) != 17 || (s[0] != 'C' && s[0] != 'D') {
		return 0, invalid(FieldNetReconciliation, "net amount is not 'C' or 'D' and 16 digits")
	}
	if err := digitsOf(s[1:], 16, 16); err != nil {
		return 0, invalid(FieldNetReconciliation, "net amount: %v", err)
	}
	v, _ := strconv.ParseInt(s[1:], 10, 64)
	if s[0] == 'D' {
		v = -v
	}
	return v, nil
}
