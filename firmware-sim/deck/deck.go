// Package deck is the simulator's deck of test cards: Luhn-valid PANs for
// Visa, Mastercard, JCB, American Express, UnionPay and a house-card BIN, each
// with the scenario it exists for (approved, unknown card, short balance,
// expired, lost). The center's demo seed issues the cards marked Issued, so a
// simulated sale has a known expected outcome.
//
// These PANs are test numbers and appear nowhere but here, in the terminal
// simulator's secure side, and in the center's token-sealed vault.
package deck

import (
	"fmt"

	"github.com/posgate/posgate/p2pe/card"
)

// Product kinds a deck card is issued under at the center.
const (
	ProductCredit  = "credit"
	ProductDebit   = "debit"
	ProductPrepaid = "prepaid"
	ProductHouse   = "house"
)

// Card is one test card and the state the center is seeded with for it.
type Card struct {
	Name         string // short handle used by scripts: "visa-ok", "unknown", ...
	Brand        string
	PAN          string
	Expiry       string // YYMM
	ServiceCode  string
	SecurityCode string
	// Issued cards exist at the center; the others are unknown there.
	Issued bool
	// Product is the kind of card product the center issues it under.
	Product string
	// Funds is the starting credit line, balance or top-up, in minor units
	// of the product currency (JPY has none).
	Funds int64
	// Status at the center after seeding: "active", "lost", ...
	Status string
	// Expect is the 1993 action code a sale of Amount should get.
	Expect string
}

// Cards returns a fresh copy of the deck.
func Cards() []Card {
	return []Card{
		{Name: "visa-ok", Brand: "visa", PAN: "4111111111111111", Expiry: "3012", ServiceCode: "201", SecurityCode: "123", Issued: true, Product: ProductCredit, Funds: 500000, Status: "active", Expect: "000"},
		{Name: "mc-ok", Brand: "mastercard", PAN: "5555555555554444", Expiry: "3012", ServiceCode: "201", SecurityCode: "456", Issued: true, Product: ProductDebit, Funds: 300000, Status: "active", Expect: "000"},
		{Name: "jcb-ok", Brand: "jcb", PAN: "3530111333300000", Expiry: "3012", ServiceCode: "201", SecurityCode: "789", Issued: true, Product: ProductPrepaid, Funds: 200000, Status: "active", Expect: "000"},
		{Name: "amex-ok", Brand: "amex", PAN: "378282246310005", Expiry: "3012", ServiceCode: "201", SecurityCode: "1234", Issued: true, Product: ProductCredit, Funds: 500000, Status: "active", Expect: "000"},
		{Name: "unionpay-ok", Brand: "unionpay", PAN: "6200000000000005", Expiry: "3012", ServiceCode: "201", SecurityCode: "321", Issued: true, Product: ProductDebit, Funds: 300000, Status: "active", Expect: "000"},
		{Name: "house-ok", Brand: "house", PAN: "9990010000000010", Expiry: "3012", ServiceCode: "201", SecurityCode: "555", Issued: true, Product: ProductHouse, Funds: 100000, Status: "active", Expect: "000"},
		{Name: "unknown", Brand: "visa", PAN: "4111111111111129", Expiry: "3012", ServiceCode: "201", SecurityCode: "111", Issued: false, Expect: "111"},
		{Name: "low-balance", Brand: "jcb", PAN: "3530111333300018", Expiry: "3012", ServiceCode: "201", SecurityCode: "222", Issued: true, Product: ProductPrepaid, Funds: 100, Status: "active", Expect: "116"},
		{Name: "expired", Brand: "mastercard", PAN: "5400000000000013", Expiry: "2001", ServiceCode: "201", SecurityCode: "333", Issued: true, Product: ProductDebit, Funds: 300000, Status: "active", Expect: "101"},
		{Name: "lost", Brand: "house", PAN: "9990010000000028", Expiry: "3012", ServiceCode: "201", SecurityCode: "444", Issued: true, Product: ProductHouse, Funds: 100000, Status: "lost", Expect: "208"},
	}
}

// Lookup returns the deck card with the given name.
func Lookup(name string) (Card, error) {
	for _, c := range Cards() {
		if c.Name == name {
			return c, nil
		}
	}
	return Card{}, fmt.Errorf("deck: no card named %q", name)
}

// ParsedPAN returns the card's PAN as a card.PAN.
func (c Card) ParsedPAN() (card.PAN, error) { return card.ParsePAN(c.PAN) }

// Masked returns the card's masked PAN (first six, last four).
func (c Card) Masked() string {
	p, err := card.ParsePAN(c.PAN)
	if err != nil {
		return "[invalid PAN]"
	}
	return p.Masked()
}
