package authz_test

import (
	"context"
	"testing"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	"github.com/posgate/posgate/p2pe/dukpt"
	"github.com/posgate/posgate/p2pe/pinblock"
	"github.com/posgate/posgate/protocol/iso93"

	"github.com/posgate/posgate/cloud/authz"
)

// Test keys: the X9.24-3 AES-128 BDK and Initial Key ID of
// CRYPTO_VECTORS.md, and psec's PVV test PVK.
const (
	pinBDKHex = "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	pinIKID   = "1234567890123456"
	pinPVKHex = "0123456789ABCDEFFEDCBA9876543210"
	pinPVKI   = 1
	rightPIN  = "1234"
)

// pinWorld is a World whose switch verifies PINs on the test token.
type pinWorld struct {
	*cloudtest.World
	pvk string
	ik  []byte // the terminal's AES DUKPT initial key
}

func newPINWorld(t testing.TB, st *store.Store, maxTries int) *pinWorld {
	t.Helper()
	tok := hsmtest.Token(t)
	bdk, pvk := hsmtest.Label(t, "pin-bdk"), hsmtest.Label(t, "pvk")
	if err := tok.ImportAES(bdk, unhexT(t, pinBDKHex), hsm.UsageBDK); err != nil {
		t.Fatalf("import BDK: %v", err)
	}
	if err := tok.ImportPVK(pvk, unhexT(t, pinPVKHex)); err != nil {
		t.Fatalf("import PVK: %v", err)
	}
	ik, err := dukpt.AESInitialKey(unhexT(t, pinBDKHex), [8]byte(unhexT(t, pinIKID)))
	if err != nil {
		t.Fatalf("initial key: %v", err)
	}
	w := &pinWorld{World: cloudtest.NewWorld(t, st), pvk: pvk, ik: ik}
	w.Switch.PIN = authz.PINConfig{Verifier: tok, BDKLabel: bdk, MaxTries: maxTries}
	return w
}

// enrol gives card c a PVV for rightPIN and its product the test PVK.
func (w *pinWorld) enrol(t testing.TB, c cloudtest.Card) {
	t.Helper()
	pvv, err := hsm.SoftwarePVV(unhexT(t, pinPVKHex), c.PAN.Digits(), pinPVKI, mustPIN(t, rightPIN))
	if err != nil {
		t.Fatalf("PVV: %v", err)
	}
	ctx := context.Background()
	err = w.Store.Update(ctx, func(tx *store.Tx) error {
		sc, err := tx.Card(ctx, c.ID)
		if err != nil {
			return err
		}
		if err := tx.SetProductPVKLabel(ctx, sc.ProductID, w.pvk); err != nil {
			return err
		}
		return tx.SetCardPVV(ctx, c.ID, pinPVKI, pvv)
	})
	if err != nil {
		t.Fatalf("enrol card %d for PIN verification: %v", c.ID, err)
	}
}

// request builds a 1200 for c with the terminal's format 4 PIN block of
// pin under the DUKPT PIN key of the request's KSN ("" sends no PIN block;
// "garbled" sends a block that does not decipher to a PIN field).
func (w *pinWorld) request(t testing.TB, c cloudtest.Card, pin string) authz.Request {
	t.Helper()
	r := w.RequestOn(pinIKID, iso93.MTIFinancialRequest, c, 100)
	if pin == "" {
		return r
	}
	_, _, ctr, err := w.Decrypter.OpenCardBlock(context.Background(), r.CardBlock)
	if err != nil {
		t.Fatalf("open test block: %v", err)
	}
	ksn := dukpt.NewAESKSN([8]byte(unhexT(t, pinIKID)), uint32(ctr))
	pk, err := dukpt.AESWorkingKey(w.ik, ksn, dukpt.UsagePINEncryption, dukpt.AlgAES128)
	if err != nil {
		t.Fatalf("PIN key: %v", err)
	}
	if pin == "garbled" {
		r.PINBlock = make([]byte, 16)
		return r
	}
	r.PINBlock, err = pinblock.EncryptFormat4(pk, mustPIN(t, pin), c.PAN.Digits(), nil)
	if err != nil {
		t.Fatalf("PIN block: %v", err)
	}
	return r
}

func mustPIN(t testing.TB, s string) pinblock.PIN {
	t.Helper()
	p, err := pinblock.ParsePIN(s)
	if err != nil {
		t.Fatalf("parse PIN: %v", err)
	}
	return p
}

func pinTries(t *testing.T, st *store.Store, cardID int64) int {
	t.Helper()
	var p store.CardPIN
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		p, err = tx.CardPIN(context.Background(), cardID)
		return err
	})
	if err != nil {
		t.Fatalf("read PIN data: %v", err)
	}
	return p.Tries
}

func TestPINVerification(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newPINWorld(t, st, 0)
		type step struct {
			pin   string
			want  iso93.ActionCode
			tries int
		}
		tests := []struct {
			name  string
			steps []step
		}{
			{"right_pin_approved", []step{{rightPIN, iso93.ActionApproved, 0}}},
			{"wrong_pin_declined_117", []step{{"4321", iso93.ActionIncorrectPIN, 1}}},
			{"right_pin_resets_count", []step{
				{"4321", iso93.ActionIncorrectPIN, 1},
				{"5678", iso93.ActionIncorrectPIN, 2},
				{rightPIN, iso93.ActionApproved, 0},
				{"0000", iso93.ActionIncorrectPIN, 1},
			}},
			{"third_wrong_pin_106_then_blocked", []step{
				{"4321", iso93.ActionIncorrectPIN, 1},
				{"4321", iso93.ActionIncorrectPIN, 2},
				{"4321", iso93.ActionPINTriesExceeded, 3},
				{rightPIN, iso93.ActionPINTriesExceeded, 3},
				{"4321", iso93.ActionPINTriesExceeded, 3},
			}},
			{"garbled_block_904_not_counted", []step{{"garbled", iso93.ActionFormatError, 0}}},
			{"no_pin_block_not_checked", []step{{"", iso93.ActionApproved, 0}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindPrepaid, 0, 5000)
				w.enrol(t, c)
				approved := int64(0)
				for i, s := range tt.steps {
					resp := authorize(t, w.World, w.request(t, c, s.pin))
					if resp.ActionCode != s.want {
						t.Fatalf("step %d: action code %s, want %s", i, resp.ActionCode, s.want)
					}
					wantCode(t, resp, s.want)
					if got := pinTries(t, st, c.ID); got != s.tries {
						t.Fatalf("step %d: wrong-PIN count %d, want %d", i, got, s.tries)
					}
					if s.want == iso93.ActionApproved {
						approved++
					}
				}
				if got, want := w.Available(t, c.AccountID), 5000-100*approved; got != want {
					t.Fatalf("available %d, want %d", got, want)
				}
			})
		}
		if n := auditKinds(t, st, "pin_incorrect"); n != 6 {
			t.Fatalf("pin_incorrect audit records %d, want 6", n)
		}
		if n := auditKinds(t, st, "pin_tries_exceeded"); n != 3 {
			t.Fatalf("pin_tries_exceeded audit records %d, want 3", n)
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestPINNotVerifiedWithoutProductPVK(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newPINWorld(t, st, 0)
		tests := []struct {
			name      string
			enrol     bool
			clearPVK  bool
			want      iso93.ActionCode
			wantTries bool
		}{
			{"card_without_pvv", false, false, iso93.ActionApproved, false},
			{"product_without_pvk", true, true, iso93.ActionApproved, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindPrepaid, 0, 5000)
				if tt.enrol {
					w.enrol(t, c)
				}
				if tt.clearPVK {
					ctx := context.Background()
					if err := st.Update(ctx, func(tx *store.Tx) error {
						sc, err := tx.Card(ctx, c.ID)
						if err != nil {
							return err
						}
						return tx.SetProductPVKLabel(ctx, sc.ProductID, "")
					}); err != nil {
						t.Fatalf("clear PVK label: %v", err)
					}
				}
				wantCode(t, authorize(t, w.World, w.request(t, c, "4321")), tt.want)
				if tt.wantTries && pinTries(t, st, c.ID) != 0 {
					t.Fatal("wrong-PIN count moved for a product without PVK")
				}
			})
		}
	})
}

func TestPINWithoutVerifierIsAFault(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newPINWorld(t, st, 0)
		c := w.NewCard(t, store.KindPrepaid, 0, 5000)
		w.enrol(t, c)
		w.Switch.PIN.Verifier = nil
		before := count(t, st, "authorizations")
		if _, err := w.Switch.Authorize(context.Background(), w.request(t, c, rightPIN)); err == nil {
			t.Fatal("PIN request without a verifier: no error")
		}
		if after := count(t, st, "authorizations"); after != before {
			t.Fatalf("a fault recorded %d authorizations", after-before)
		}
	})
}

func BenchmarkPINAuthorization(b *testing.B) {
	st := storetest.OpenSQLite(b)
	w := newPINWorld(b, st, 0)
	c := w.NewCard(b, store.KindCredit, 1_000_000_000, 0)
	w.enrol(b, c)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := w.Switch.Authorize(context.Background(), w.request(b, c, rightPIN))
		if err != nil || resp.ActionCode != iso93.ActionApproved {
			b.Fatalf("authorize: %s %v", resp.ActionCode, err)
		}
	}
}
