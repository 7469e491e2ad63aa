package ledger

// currencies maps the ISO 4217 numeric codes the center accepts to their
// minor-unit exponent. Extend it when a new currency is enabled.
var currencies = map[string]int{
	"036": 2, // AUD
	"124": 2, // CAD
	"156": 2, // CNY
	"344": 2, // HKD
	"392": 0, // JPY
	"410": 0, // KRW
	"458": 2, // MYR
	"554": 2, // NZD
	"702": 2, // SGD
	"756": 2, // CHF
	"764": 2, // THB
	"826": 2, // GBP
	"840": 2, // USD
	"901": 2, // TWD
	"978": 2, // EUR
}

// ValidCurrency reports whether code is an ISO 4217 numeric currency code
// the center accepts ("392" JPY, "840" USD, ...).
func ValidCurrency(code string) bool {
	_, ok := currencies[code]
	return ok
}

// MinorUnits returns the number of decimal places of the currency's minor
// unit (0 for JPY, 2 for USD) and whether the currency is known.
func MinorUnits(code string) (int, bool) {
	e, ok := currencies[code]
	return e, ok
}
