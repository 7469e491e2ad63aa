package ecr

import (
	"fmt"
	"strings"
)

// currencies maps ISO 4217 numeric codes to their letters and minor-unit
// exponent, for receipts. Other codes print as minor units.
var currencies = map[string]struct {
	alpha string
	exp   int
}{
	"392": {"JPY", 0}, "840": {"USD", 2}, "978": {"EUR", 2}, "826": {"GBP", 2},
	"156": {"CNY", 2}, "410": {"KRW", 0}, "036": {"AUD", 2}, "124": {"CAD", 2},
	"344": {"HKD", 2}, "702": {"SGD", 2}, "901": {"TWD", 2}, "764": {"THB", 2},
}

// FormatAmount renders minor units of an ISO 4217 numeric currency for a
// receipt: "JPY 1,000", "USD 12.34", or "1234 (minor units, currency 999)".
func FormatAmount(minor uint64, currency string) string {
	c, ok := currencies[currency]
	if !ok {
		return fmt.Sprintf("%d (minor units, currency %s)", minor, currency)
	}
	digits := fmt.Sprint(minor)
	var whole, frac string
	if c.exp > 0 {
		for len(digits) <= c.exp {
			digits = "0" + digits
		}
		whole, frac = digits[:len(digits)-c.exp], digits[len(digits)-c.exp:]
	} else {
		whole = digits
	}
	var b strings.Builder
	for i, ch := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return c.alpha + " " + b.String()
}

// Receipt renders the text receipt of a settled transaction: merchant,
// terminal, transaction, type, masked PAN, amount, approval and action
// codes and the result. Only the masked PAN appears; a value that is not
// masked is masked again here.
func Receipt(merchant string, tx Transaction) string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-15s %s\n", k+":", v)
		}
	}
	b.WriteString(merchant + "\n")
	b.WriteString(strings.Repeat("-", 32) + "\n")
	b.WriteString(strings.ToUpper(tx.Type) + "\n")
	line("Terminal", tx.TerminalID)
	line("Transaction", tx.ID)
	if tx.OriginalID != "" {
		line("Original", tx.OriginalID)
	}
	when := tx.CreatedAt.Format("2006-01-02 15:04:05 UTC")
	if t := tx.TerminalTime; len(t) == 14 {
		when = t[0:4] + "-" + t[4:6] + "-" + t[6:8] + " " + t[8:10] + ":" + t[10:12] + ":" + t[12:14]
	}
	line("Date", when)
	line("Card", maskAgain(tx.MaskedPAN))
	if tx.Amount != 0 {
		line("Amount", FormatAmount(tx.Amount, tx.Currency))
	}
	line("Approval code", tx.ApprovalCode)
	line("Action code", tx.ActionCode)
	line("STAN", tx.STAN)
	line("RRN", tx.RRN)
	b.WriteString(strings.Repeat("-", 32) + "\n")
	b.WriteString(strings.ToUpper(strings.ReplaceAll(tx.Status, "_", " ")) + "\n")
	return b.String()
}

// maskAgain keeps at most the first six and last four characters.
func maskAgain(p string) string {
	if len(p) <= 10 {
		return strings.Repeat("*", len(p))
	}
	return p[:6] + strings.Repeat("*", len(p)-10) + p[len(p)-4:]
}
