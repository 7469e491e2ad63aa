package deck_test

import (
	"testing"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/p2pe/card"
)

func TestDeckIsValid(t *testing.T) {
	seen := map[string]bool{}
	brands := map[string]bool{}
	for _, c := range deck.Cards() {
		if seen[c.Name] {
			t.Errorf("duplicate card name %s", c.Name)
		}
		seen[c.Name] = true
		brands[c.Brand] = true
		if _, err := c.ParsedPAN(); err != nil {
			t.Errorf("card %s (%s): %v", c.Name, c.Masked(), err)
		}
		if _, err := card.ParseExpiry(c.Expiry); err != nil {
			t.Errorf("card %s expiry: %v", c.Name, err)
		}
		if c.Issued && c.Product == "" {
			t.Errorf("card %s is issued without a product", c.Name)
		}
		if len(c.Expect) != 3 {
			t.Errorf("card %s: expected action %q is not a 1993 action code", c.Name, c.Expect)
		}
	}
	for _, b := range []string{"visa", "mastercard", "jcb", "amex", "unionpay", "house"} {
		if !brands[b] {
			t.Errorf("deck has no %s card", b)
		}
	}
	if _, err := deck.Lookup("visa-ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := deck.Lookup("nope"); err == nil {
		t.Fatal("lookup of a missing card succeeded")
	}
}
