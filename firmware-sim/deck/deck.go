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
	// Expect is the 1993 action code a sale of Amount should get when the
	// card is swiped or sent without chip data (termsim's direct sales).
	Expect string

	// Chip is true for a card with a contact EMV chip, Contactless for one
	// that can also be tapped. A chip read of a card without the interface
	// asked for is a magnetic-stripe read.
	Chip, Contactless bool
	// PSN is the PAN sequence number (5F34, one BCD byte).
	PSN byte
	// AID is the card application's identifier (84), upper-case hex.
	AID string
	// Fault is what is wrong with the card's chip, ChipWorking when
	// nothing is.
	Fault ChipFault
	// ChipExpect is the action code a chip or contactless sale of Amount
	// should get, when it differs from Expect.
	ChipExpect string
}

// ChipFault is a defect of a deck card's chip.
type ChipFault string

// Chip faults.
const (
	// ChipWorking: the chip answers normally.
	ChipWorking ChipFault = ""
	// ChipDead: the chip does not answer; the terminal falls back to the
	// magnetic stripe (DE 22 position 7 '2' at a chip-capable terminal),
	// which the center recognises as a fallback.
	ChipDead ChipFault = "dead"
	// ChipCloned: the chip was personalised under a key the issuer does
	// not hold (a counterfeit): its ARQC does not verify at the center,
	// which declines 102, and its ARPC check fails.
	ChipCloned ChipFault = "cloned"
)

// Application identifiers of the deck's brands (tag 84).
const (
	AIDVisa       = "A0000000031010"
	AIDMastercard = "A0000000041010"
	AIDJCB        = "A0000000651010"
	AIDAmex       = "A00000002501"
	AIDUnionPay   = "A000000333010101"
	AIDHouse      = "F0000009990001"
)

// AIDForBrand returns the application identifier a deck card of brand
// carries, "" for an unknown brand.
func AIDForBrand(brand string) string {
	switch brand {
	case "visa":
		return AIDVisa
	case "mastercard":
		return AIDMastercard
	case "jcb":
		return AIDJCB
	case "amex":
		return AIDAmex
	case "unionpay":
		return AIDUnionPay
	case "house":
		return AIDHouse
	}
	return ""
}

// ExpectFor returns the action code a sale read with a chip (chip true)
// or not should get.
func (c Card) ExpectFor(chip bool) string {
	if chip && c.ChipExpect != "" {
		return c.ChipExpect
	}
	return c.Expect
}

// Cards returns a fresh copy of the deck. Every card has a contact chip
// with its brand's AID and PSN 01; all but the American Express card can
// be tapped.
func Cards() []Card {
	cards := []Card{
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
		// Chip scenarios: a cloned chip (the stripe is the genuine card's,
		// so a direct sale is approved) and a dead chip read by fallback.
		{Name: "visa-cloned", Brand: "visa", PAN: "4111110000000039", Expiry: "3012", ServiceCode: "201", SecurityCode: "123", Issued: true, Product: ProductCredit, Funds: 500000, Status: "active", Expect: "000", Fault: ChipCloned, ChipExpect: "102"},
		{Name: "mc-chipdead", Brand: "mastercard", PAN: "5555550000000051", Expiry: "3012", ServiceCode: "201", SecurityCode: "456", Issued: true, Product: ProductDebit, Funds: 300000, Status: "active", Expect: "000", Fault: ChipDead},
	}
	for i := range cards {
		c := &cards[i]
		c.Chip, c.Contactless, c.PSN, c.AID = true, c.Brand != "amex", 0x01, AIDForBrand(c.Brand)
	}
	return cards
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
