// Package card holds the clear card-data types a terminal reads and the
// center decrypts: PAN, expiry, track-2 equivalent data and security code.
//
// None of these types prints its secret through fmt or log/slog: a PAN shows
// its masked form (first six, last four), track data and security codes show
// "[redacted]". The clear value is reachable only through an explicit
// Digits or Data method, for the one place that must encrypt it. All types
// are immutable values and safe for concurrent use.
package card

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

var (
	// ErrPANLength is returned for a PAN with fewer than 12 or more than 19
	// digits.
	ErrPANLength = errors.New("card: PAN must have 12 to 19 digits")
	// ErrNotDigits is returned for a value that must be decimal digits and
	// is not.
	ErrNotDigits = errors.New("card: value is not all decimal digits")
	// ErrLuhn is returned for a PAN whose check digit is wrong.
	ErrLuhn = errors.New("card: PAN fails the Luhn check")
	// ErrExpiry is returned for an expiry that is not YYMM with month 01-12.
	ErrExpiry = errors.New("card: expiry must be YYMM with month 01 to 12")
	// ErrTrack2 is returned for malformed track-2 equivalent data.
	ErrTrack2 = errors.New("card: malformed track-2 data")
	// ErrSecurityCode is returned for a security code that is not 3 or 4
	// digits.
	ErrSecurityCode = errors.New("card: security code must have 3 or 4 digits")
)

// Redacted is what the secret types print instead of their value.
const Redacted = "[redacted]"

// isDigits reports whether s is non-empty and all ASCII decimal digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Luhn reports whether s is a string of decimal digits whose last digit is a
// valid Luhn (mod 10) check digit. It returns false for an empty string or
// any non-digit.
func Luhn(s string) bool {
	if len(s) < 2 || !isDigits(s) {
		return false
	}
	return luhnSum(s, false)%10 == 0
}

// luhnSum returns the Luhn sum of the digits of s; double says whether the
// rightmost digit is doubled (true when computing a check digit for s).
func luhnSum(s string, double bool) int {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum
}

// LuhnCheckDigit returns the check digit ('0'-'9') that makes s followed by
// it pass Luhn. s must be non-empty decimal digits.
func LuhnCheckDigit(s string) (byte, error) {
	if !isDigits(s) {
		return 0, ErrNotDigits
	}
	return byte('0' + (10-luhnSum(s, true)%10)%10), nil
}

// PAN is a primary account number of 12 to 19 digits that passed the Luhn
// check. The zero PAN is empty (IsZero). String, Format and LogValue show
// only the masked form; Digits returns the clear number.
type PAN struct {
	digits string
}

// ParsePAN checks that s is 12 to 19 decimal digits with a valid Luhn check
// digit. Errors never include s.
func ParsePAN(s string) (PAN, error) {
	if !isDigits(s) {
		return PAN{}, fmt.Errorf("parse PAN: %w", ErrNotDigits)
	}
	if len(s) < 12 || len(s) > 19 {
		return PAN{}, fmt.Errorf("parse PAN of %d digits: %w", len(s), ErrPANLength)
	}
	if !Luhn(s) {
		return PAN{}, fmt.Errorf("parse PAN: %w", ErrLuhn)
	}
	return PAN{digits: s}, nil
}

// IsZero reports whether p is the zero (absent) PAN.
func (p PAN) IsZero() bool { return p.digits == "" }

// Digits returns the clear PAN. Call it only to encrypt, fingerprint or
// build a PIN block; never log or store the result.
func (p PAN) Digits() string { return p.digits }

// Len returns the number of digits.
func (p PAN) Len() int { return len(p.digits) }

// BIN returns the first six digits (the issuer identification number
// prefix), or "" for the zero PAN.
func (p PAN) BIN() string {
	if len(p.digits) < 6 {
		return ""
	}
	return p.digits[:6]
}

// Last4 returns the last four digits, or "" for the zero PAN.
func (p PAN) Last4() string {
	if len(p.digits) < 4 {
		return ""
	}
	return p.digits[len(p.digits)-4:]
}

// Masked returns the first six and last four digits with '*' for every
// digit in between, keeping the length: 411111******1111. The zero PAN
// masks to "".
func (p PAN) Masked() string {
	if len(p.digits) < 10 {
		return strings.Repeat("*", len(p.digits))
	}
	return p.digits[:6] + strings.Repeat("*", len(p.digits)-10) + p.Last4()
}

// String returns the masked PAN.
func (p PAN) String() string { return p.Masked() }

// GoString returns the masked PAN in Go syntax, so %#v cannot leak it.
func (p PAN) GoString() string { return fmt.Sprintf("card.PAN(%q)", p.Masked()) }

// Format prints the masked PAN for every verb, so no fmt verb can leak it.
func (p PAN) Format(f fmt.State, verb rune) { formatSafe(f, verb, p.Masked(), p.GoString()) }

// LogValue returns the masked PAN.
func (p PAN) LogValue() slog.Value { return slog.StringValue(p.Masked()) }

// formatSafe writes safe for any verb (goSafe for %#v), ignoring flags that
// could reveal more.
func formatSafe(f fmt.State, verb rune, safe, goSafe string) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, goSafe)
		return
	}
	fmt.Fprint(f, safe)
}

// Expiry is a card expiry date as written on track 2 and in ISO 8583 DE 14:
// year and month, YYMM. The zero Expiry is absent (IsZero). It is not
// secret and prints as YYMM.
type Expiry struct {
	yymm string
}

// ParseExpiry parses four digits YYMM with month 01 to 12. Errors never
// include s.
func ParseExpiry(s string) (Expiry, error) {
	if len(s) != 4 || !isDigits(s) {
		return Expiry{}, fmt.Errorf("parse expiry: %w", ErrExpiry)
	}
	if m := (s[2]-'0')*10 + s[3] - '0'; m < 1 || m > 12 {
		return Expiry{}, fmt.Errorf("parse expiry: %w", ErrExpiry)
	}
	return Expiry{yymm: s}, nil
}

// IsZero reports whether e is the zero (absent) expiry.
func (e Expiry) IsZero() bool { return e.yymm == "" }

// String returns YYMM, or "" for the zero Expiry.
func (e Expiry) String() string { return e.yymm }

// Year returns the four-digit year (2000 + YY), or 0 for the zero Expiry.
func (e Expiry) Year() int {
	if e.IsZero() {
		return 0
	}
	return 2000 + int(e.yymm[0]-'0')*10 + int(e.yymm[1]-'0')
}

// Month returns the month, or 0 for the zero Expiry.
func (e Expiry) Month() time.Month {
	if e.IsZero() {
		return 0
	}
	return time.Month(int(e.yymm[2]-'0')*10 + int(e.yymm[3]-'0'))
}

// Expired reports whether the card is expired at now: a card is valid
// through the last day of its expiry month, in now's location. The zero
// Expiry is never expired.
func (e Expiry) Expired(now time.Time) bool {
	if e.IsZero() {
		return false
	}
	end := time.Date(e.Year(), e.Month()+1, 1, 0, 0, 0, 0, now.Location())
	return !now.Before(end)
}

// MaxTrack2Len is the longest track-2 equivalent data accepted, in
// characters (ISO/IEC 7813: 37 characters without sentinels and LRC).
const MaxTrack2Len = 37

// Track2 is track-2 equivalent data as ASCII: PAN, a separator ('=' or
// 'D'), expiry YYMM, service code (3 digits), then discretionary digits,
// optionally ending in one 'F' pad. The zero Track2 is absent. It prints as
// "[redacted]" through fmt and slog; Data returns the clear value.
type Track2 struct {
	data string
}

// ParseTrack2 checks the structure of track-2 equivalent data: a PAN of 12
// to 19 digits passing Luhn, separator '=' or 'D', a valid YYMM, a 3-digit
// service code, then digits; at most 37 characters, an optional trailing
// 'F'. Errors never include the data.
func ParseTrack2(s string) (Track2, error) {
	if len(s) > MaxTrack2Len {
		return Track2{}, fmt.Errorf("track 2 of %d characters, at most %d: %w", len(s), MaxTrack2Len, ErrTrack2)
	}
	sep := strings.IndexAny(s, "=D")
	if sep < 0 {
		return Track2{}, fmt.Errorf("track 2 without separator: %w", ErrTrack2)
	}
	if _, err := ParsePAN(s[:sep]); err != nil {
		return Track2{}, fmt.Errorf("track 2 PAN: %w", err)
	}
	rest := strings.TrimSuffix(s[sep+1:], "F")
	if len(rest) < 7 || !isDigits(rest) {
		return Track2{}, fmt.Errorf("track 2 after the separator: %w", ErrTrack2)
	}
	if _, err := ParseExpiry(rest[:4]); err != nil {
		return Track2{}, fmt.Errorf("track 2 expiry: %w", ErrTrack2)
	}
	return Track2{data: s}, nil
}

// IsZero reports whether t is the zero (absent) track.
func (t Track2) IsZero() bool { return t.data == "" }

// Data returns the clear track-2 data. Call it only to encrypt; never log
// or store the result.
func (t Track2) Data() string { return t.data }

// PAN returns the PAN on the track. It fails only for the zero Track2.
func (t Track2) PAN() (PAN, error) {
	sep := strings.IndexAny(t.data, "=D")
	if sep < 0 {
		return PAN{}, fmt.Errorf("track 2 PAN: %w", ErrTrack2)
	}
	return ParsePAN(t.data[:sep])
}

// Expiry returns the expiry on the track, or the zero Expiry for the zero
// Track2.
func (t Track2) Expiry() Expiry {
	sep := strings.IndexAny(t.data, "=D")
	if sep < 0 {
		return Expiry{}
	}
	return Expiry{yymm: t.data[sep+1 : sep+5]}
}

// ServiceCode returns the 3-digit service code on the track, or "" for the
// zero Track2.
func (t Track2) ServiceCode() string {
	sep := strings.IndexAny(t.data, "=D")
	if sep < 0 {
		return ""
	}
	return t.data[sep+5 : sep+8]
}

// String returns "[redacted]".
func (t Track2) String() string { return Redacted }

// GoString returns a redacted Go form, so %#v cannot leak the track.
func (t Track2) GoString() string { return "card.Track2(" + Redacted + ")" }

// Format prints "[redacted]" for every verb.
func (t Track2) Format(f fmt.State, verb rune) { formatSafe(f, verb, Redacted, t.GoString()) }

// LogValue returns "[redacted]".
func (t Track2) LogValue() slog.Value { return slog.StringValue(Redacted) }

// SecurityCode is a card security code (CVV2, CVC2, CID): 3 or 4 digits. The
// zero SecurityCode is absent. It prints as "[redacted]"; Digits returns the
// clear value.
type SecurityCode struct {
	digits string
}

// ParseSecurityCode checks that s is 3 or 4 decimal digits.
func ParseSecurityCode(s string) (SecurityCode, error) {
	if (len(s) != 3 && len(s) != 4) || !isDigits(s) {
		return SecurityCode{}, fmt.Errorf("parse security code: %w", ErrSecurityCode)
	}
	return SecurityCode{digits: s}, nil
}

// IsZero reports whether c is the zero (absent) code.
func (c SecurityCode) IsZero() bool { return c.digits == "" }

// Digits returns the clear code. Call it only to encrypt; never log or store
// the result.
func (c SecurityCode) Digits() string { return c.digits }

// String returns "[redacted]".
func (c SecurityCode) String() string { return Redacted }

// GoString returns a redacted Go form, so %#v cannot leak the code.
func (c SecurityCode) GoString() string { return "card.SecurityCode(" + Redacted + ")" }

// Format prints "[redacted]" for every verb.
func (c SecurityCode) Format(f fmt.State, verb rune) { formatSafe(f, verb, Redacted, c.GoString()) }

// LogValue returns "[redacted]".
func (c SecurityCode) LogValue() slog.Value { return slog.StringValue(Redacted) }
