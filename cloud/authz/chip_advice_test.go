package authz_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/protocol/iso93"
)

// offlineChipCard personalises a simulated chip card for the world's card
// that approves offline (answers a TC request with a TC).
func offlineChipCard(t *testing.T, c cloudtest.Card) *card.Card {
	t.Helper()
	cc, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testIMK, ATC: 0x40, Offline: true})
	if err != nil {
		t.Fatalf("new chip card: %v", err)
	}
	return cc
}

// firstAC runs the terminal's first GENERATE AC asking for want and
// returns the DE 55 the terminal would send (as firmware-sim/jets does
// for an offline approval: terminal data, the card's answer, AIP, PSN,
// AID).
func firstAC(t testing.TB, cc *card.Card, amount int64, want emv.CryptogramType) []byte {
	t.Helper()
	return generateAC(t, cc, amount, want, want, "0000000000", "5A17C3E9", "A0000000031010")
}

// editDE55 returns d with edit applied to its values, re-encoded.
func editDE55(t *testing.T, d []byte, edit func(v dol.Values)) []byte {
	t.Helper()
	req, err := de55.ParseRequest(d)
	if err != nil {
		t.Fatalf("parse DE 55: %v", err)
	}
	v := req.Values()
	for k, x := range v {
		v[k] = append([]byte(nil), x...)
	}
	edit(v)
	b, err := de55.Build(v)
	if err != nil {
		t.Fatalf("build DE 55: %v", err)
	}
	return b
}

// chipAdvice is the 1220 of an offline approval on c with d as DE 55, as
// firmware-sim/jets sends it (function 201, no original data).
func chipAdvice(w *chipWorld, c cloudtest.Card, amount int64, d []byte) authz.Request {
	r := w.Request(iso93.MTIAdvice, c, amount)
	r.FunctionCode, r.ICCData = iso93.FunctionPreviousApproval, d
	return r
}

// recorded returns the authorization row recorded under key.
func recorded(t *testing.T, st *store.Store, key string) store.Authorization {
	t.Helper()
	var a store.Authorization
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		a, err = tx.AuthorizationByKey(context.Background(), key)
		return err
	})
	if err != nil {
		t.Fatalf("read authorization: %v", err)
	}
	return a
}

// wantRefused checks that r was declined with code, recorded with nothing
// posted, its account untouched, and audited once more under kind
// without card data.
func wantRefused(t *testing.T, w *chipWorld, c cloudtest.Card, r authz.Request, code iso93.ActionCode, kind string) {
	t.Helper()
	before, avail := auditKinds(t, w.Store, kind), w.Available(t, c.AccountID)
	resp := authorize(t, w.World, r)
	wantCode(t, resp, code)
	if resp.ICCData != nil {
		t.Fatal("an advice's answer carries DE 55")
	}
	if a := recorded(t, w.Store, r.IdempotencyKey); a.Status != store.AuthDeclined || a.TransferID != 0 || a.HoldID != 0 {
		t.Fatalf("recorded %s with transfer %d hold %d, want declined with nothing posted", a.Status, a.TransferID, a.HoldID)
	}
	if got := w.Available(t, c.AccountID); got != avail {
		t.Fatalf("available %d after a refused advice, was %d", got, avail)
	}
	if got := auditKinds(t, w.Store, kind); got != before+1 {
		t.Fatalf("%s audit records %d, want %d", kind, got, before+1)
	}
	err := w.Store.View(context.Background(), func(tx *store.Tx) error {
		recs, err := tx.Audit(context.Background(), kind, 100)
		for _, rec := range recs {
			if strings.Contains(rec.Detail, c.PAN.Digits()) || strings.Contains(rec.Detail, c.PAN.Digits()[6:]) {
				t.Errorf("audit record %q carries card data", rec.Detail)
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("read audit: %v", err)
	}
}

// wantPosted checks that r was approved and its amount posted.
func wantPosted(t *testing.T, w *chipWorld, c cloudtest.Card, r authz.Request) authz.Response {
	t.Helper()
	avail := w.Available(t, c.AccountID)
	resp := authorize(t, w.World, r)
	wantCode(t, resp, iso93.ActionApproved)
	if a := recorded(t, w.Store, r.IdempotencyKey); a.Status != store.AuthCaptured || a.TransferID == 0 {
		t.Fatalf("recorded %s with transfer %d, want captured", a.Status, a.TransferID)
	}
	if got := w.Available(t, c.AccountID); got != avail-r.Amount {
		t.Fatalf("available %d after the advice, want %d", got, avail-r.Amount)
	}
	return resp
}

func TestChipAdvice(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		c := w.NewCard(t, store.KindPrepaid, 0, 100000)
		cc := offlineChipCard(t, c)

		t.Run("genuine_tc_posts_once", func(t *testing.T) {
			r := chipAdvice(w, c, 1500, firstAC(t, cc, 1500, emv.TC))
			first := wantPosted(t, w, c, r)
			avail := w.Available(t, c.AccountID)
			r.MTI = iso93.MTIAdviceRepeat // the 1221 of an advice whose answer was lost
			again := authorize(t, w.World, r)
			if again.ActionCode != first.ActionCode || again.RRN != first.RRN || w.Available(t, c.AccountID) != avail {
				t.Fatalf("repeat answered %s/%s, first %s/%s; posted twice?", again.ActionCode, again.RRN, first.ActionCode, first.RRN)
			}
		})
		t.Run("tampered_tc_refused", func(t *testing.T) {
			d := editDE55(t, firstAC(t, cc, 900, emv.TC), func(v dol.Values) { v[tags.ApplicationCryptogram][5] ^= 0x01 })
			wantRefused(t, w, c, chipAdvice(w, c, 900, d), iso93.ActionSuspectedFraud, "tc_invalid")
		})
		t.Run("tc_for_another_amount_refused", func(t *testing.T) {
			// The TC covers 9F02: an advice raising DE 4 and 9F02 does
			// not verify.
			d := editDE55(t, firstAC(t, cc, 100, emv.TC), func(v dol.Values) { v[tags.AmountAuthorised] = unhexT(t, amountBCD(9900)) })
			wantRefused(t, w, c, chipAdvice(w, c, 9900, d), iso93.ActionSuspectedFraud, "tc_invalid")
		})
		t.Run("tampered_tc_leaves_its_atc_unused", func(t *testing.T) {
			// A forged advice must not burn the ATC of the genuine one
			// still on its way.
			d := firstAC(t, cc, 700, emv.TC)
			bad := editDE55(t, d, func(v dol.Values) { v[tags.ApplicationCryptogram][0] ^= 0x80 })
			wantRefused(t, w, c, chipAdvice(w, c, 700, bad), iso93.ActionSuspectedFraud, "tc_invalid")
			wantPosted(t, w, c, chipAdvice(w, c, 700, d))
		})
		t.Run("replayed_tc_refused", func(t *testing.T) {
			d := firstAC(t, cc, 1100, emv.TC)
			wantPosted(t, w, c, chipAdvice(w, c, 1100, d))
			// The same TC under a new idempotency key, STAN and KSN.
			wantRefused(t, w, c, chipAdvice(w, c, 1100, d), iso93.ActionDoNotHonour, "atc_replayed")
		})
		t.Run("late_tc_below_an_online_atc_posts", func(t *testing.T) {
			// The card approves offline (ATC n), then goes online (n+1)
			// before the advice of n reaches the center.
			late := firstAC(t, cc, 400, emv.TC)
			online := w.Request(iso93.MTIFinancialRequest, c, 600)
			online.ICCData = firstAC(t, cc, 600, emv.ARQC)
			resp := authorize(t, w.World, online)
			wantCode(t, resp, iso93.ActionApproved)
			if typ, err := complete(t, cc, resp); err != nil || typ != emv.TC {
				t.Fatalf("card's second GENERATE AC = %v, %v; want TC", typ, err)
			}
			wantPosted(t, w, c, chipAdvice(w, c, 400, late))
			wantRefused(t, w, c, chipAdvice(w, c, 400, late), iso93.ActionDoNotHonour, "atc_replayed")
		})
		t.Run("online_arqc_reused_as_tc_refused", func(t *testing.T) {
			// An ARQC and a TC over the same data are the same MAC: an
			// online request's DE 55 with 9F27 set to TC must not post a
			// second time.
			d := firstAC(t, cc, 800, emv.ARQC)
			online := w.Request(iso93.MTIFinancialRequest, c, 800)
			online.ICCData = d
			wantCode(t, authorize(t, w.World, online), iso93.ActionApproved)
			tc := editDE55(t, d, func(v dol.Values) { v[tags.CID] = []byte{byte(emv.TC)} })
			wantRefused(t, w, c, chipAdvice(w, c, 800, tc), iso93.ActionDoNotHonour, "atc_replayed")
		})
		t.Run("declined_arqc_reused_as_tc_refused", func(t *testing.T) {
			// An online request declined by the card checks (here: card
			// suspended) after its ARQC verified still uses its ATC, so
			// its DE 55 relabelled as a TC cannot post once the card is
			// usable again.
			ctx := context.Background()
			d := firstAC(t, cc, 650, emv.ARQC)
			if err := w.Issuer.SetStatus(ctx, c.ID, store.CardSuspended, "test"); err != nil {
				t.Fatal(err)
			}
			online := w.Request(iso93.MTIFinancialRequest, c, 650)
			online.ICCData = d
			wantCode(t, authorize(t, w.World, online), iso93.ActionRestrictedCard)
			if err := w.Issuer.SetStatus(ctx, c.ID, store.CardActive, "test"); err != nil {
				t.Fatal(err)
			}
			tc := editDE55(t, d, func(v dol.Values) { v[tags.CID] = []byte{byte(emv.TC)} })
			wantRefused(t, w, c, chipAdvice(w, c, 650, tc), iso93.ActionDoNotHonour, "atc_replayed")
		})
		t.Run("advised_tc_reused_online_refused", func(t *testing.T) {
			d := firstAC(t, cc, 300, emv.TC)
			wantPosted(t, w, c, chipAdvice(w, c, 300, d))
			online := w.Request(iso93.MTIFinancialRequest, c, 300)
			online.ICCData = editDE55(t, d, func(v dol.Values) { v[tags.CID] = []byte{byte(emv.ARQC)} })
			avail := w.Available(t, c.AccountID)
			wantCode(t, authorize(t, w.World, online), iso93.ActionDoNotHonour)
			if w.Available(t, c.AccountID) != avail {
				t.Fatal("a TC replayed online moved money")
			}
		})
		t.Run("stand_in_arqc_advice_posts", func(t *testing.T) {
			// The gateway stood in for a chip sale whose 1200 never
			// reached the center: its advice carries the ARQC.
			d := firstAC(t, cc, 250, emv.ARQC)
			wantPosted(t, w, c, chipAdvice(w, c, 250, d))
			wantRefused(t, w, c, chipAdvice(w, c, 250, d), iso93.ActionDoNotHonour, "atc_replayed")
		})
		t.Run("tampered_stand_in_arqc_refused", func(t *testing.T) {
			d := editDE55(t, firstAC(t, cc, 250, emv.ARQC), func(v dol.Values) { v[tags.ApplicationCryptogram][7] ^= 0x10 })
			wantRefused(t, w, c, chipAdvice(w, c, 250, d), iso93.ActionSuspectedFraud, "arqc_invalid")
		})
		t.Run("aac_refused", func(t *testing.T) {
			d := firstAC(t, cc, 500, emv.AAC)
			wantRefused(t, w, c, chipAdvice(w, c, 500, d), iso93.ActionInvalidTransaction, "advice_aac")
		})
		t.Run("reserved_cryptogram_type_refused", func(t *testing.T) {
			d := editDE55(t, firstAC(t, cc, 500, emv.TC), func(v dol.Values) { v[tags.CID] = []byte{byte(emv.RFU)} })
			wantRefused(t, w, c, chipAdvice(w, c, 500, d), iso93.ActionFormatError, "de55_invalid")
		})
		valid := firstAC(t, cc, 100, emv.TC)
		malformed := []struct {
			name string
			de55 []byte
		}{
			{"truncated", valid[:len(valid)-2]},
			{"duplicate_tag", append(append([]byte{}, valid...), valid[:3+int(valid[2])]...)},
			{"pan_inside", append(append([]byte{}, valid...), 0x5A, 0x08, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x00, 0x10)},
			{"garbage", []byte{0xFF, 0x01, 0x02}},
		}
		for _, tt := range malformed {
			t.Run("malformed_de55_"+tt.name, func(t *testing.T) {
				wantRefused(t, w, c, chipAdvice(w, c, 100, tt.de55), iso93.ActionFormatError, "de55_invalid")
			})
		}
		t.Run("magstripe_advice_without_de55_posts", func(t *testing.T) {
			wantPosted(t, w, c, chipAdvice(w, c, 200, nil))
		})
		t.Run("tc_of_another_card_refused", func(t *testing.T) {
			other := w.NewCard(t, store.KindPrepaid, 0, 1000)
			d := firstAC(t, offlineChipCard(t, other), 100, emv.TC)
			r := w.Request(iso93.MTIAdvice, c, 100)
			r.ICCData = d
			// The TC is genuine for another card: under this card's PAN
			// it does not verify.
			wantRefused(t, w, c, r, iso93.ActionSuspectedFraud, "tc_invalid")
		})
		cloudtest.CheckLedger(t, st)
	})
}

// TestChipAdviceConcurrentReplays sends one genuine TC in several advices
// at once, each under its own idempotency key: exactly one posts.
func TestChipAdviceConcurrentReplays(t *testing.T) {
	const n = 6
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		c := w.NewCard(t, store.KindPrepaid, 0, 100000)
		d := firstAC(t, offlineChipCard(t, c), 1000, emv.TC)
		var approved, replayed atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			r := w.RequestOn("dev-replay-"+string(rune('a'+i)), iso93.MTIAdvice, c, 1000)
			r.ICCData = d
			wg.Go(func() {
				resp, err := w.Switch.Authorize(context.Background(), r)
				switch {
				case err != nil:
					t.Errorf("authorize: %v", err)
				case resp.ActionCode == iso93.ActionApproved:
					approved.Add(1)
				case resp.ActionCode == iso93.ActionDoNotHonour:
					replayed.Add(1)
				default:
					t.Errorf("action code %s", resp.ActionCode)
				}
			})
		}
		wg.Wait()
		if approved.Load() != 1 || replayed.Load() != n-1 {
			t.Fatalf("%d approved, %d refused as replays; want 1 and %d", approved.Load(), replayed.Load(), n-1)
		}
		if got := w.Available(t, c.AccountID); got != 100000-1000 {
			t.Fatalf("available %d, want %d", got, 100000-1000)
		}
		cloudtest.CheckLedger(t, st)
	})
}

// FuzzChipAdvice feeds the advice path arbitrary DE 55 bytes on an
// offline approval of a known chip card. Invariants: no fault; the answer
// is one of the advice's chip codes (000, 904, 902, 102, 100); money
// moves exactly on an approval; an approval's DE 55 is empty (a
// magnetic-stripe advice) or parses, holds a TC or an ARQC, and its ATC
// was never approved before; the ledger stays provable.
func FuzzChipAdvice(f *testing.F) {
	st := storetest.OpenSQLite(f)
	w := newChipWorld(f, st)
	c := w.NewCard(f, store.KindPrepaid, 0, 1_000_000)
	cc, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testIMK, ATC: 0x40, Offline: true})
	if err != nil {
		f.Fatal(err)
	}
	tc := firstAC(f, cc, 100, emv.TC)
	f.Add(tc)
	f.Add(firstAC(f, cc, 100, emv.ARQC))
	f.Add(firstAC(f, cc, 100, emv.AAC))
	f.Add(tc[:len(tc)-1])
	f.Add([]byte{0x9F, 0x27, 0x01, 0x40})
	approved := map[uint16]bool{}
	f.Fuzz(func(t *testing.T, d []byte) {
		avail := w.Available(t, c.AccountID)
		r := chipAdvice(w, c, 100, d)
		resp, err := w.Switch.Authorize(context.Background(), r)
		if err != nil {
			t.Fatalf("fault on outside DE 55: %v", err)
		}
		want := avail
		switch iso93.ActionCode(resp.ActionCode) {
		case iso93.ActionApproved:
			want -= 100
			if len(d) == 0 {
				break // no DE 55: a magnetic-stripe advice
			}
			req, err := de55.ParseRequest(d)
			if err != nil {
				t.Fatalf("approved an advice whose DE 55 does not parse: %v", err)
			}
			if typ := req.CID().Type(); typ != emv.TC && typ != emv.ARQC {
				t.Fatalf("approved an advice with a %v", typ)
			}
			if approved[req.ATC()] {
				t.Fatalf("approved ATC %d twice", req.ATC())
			}
			approved[req.ATC()] = true
		case iso93.ActionFormatError, iso93.ActionInvalidTransaction, iso93.ActionSuspectedFraud, iso93.ActionDoNotHonour:
		default:
			t.Fatalf("action code %s", resp.ActionCode)
		}
		if got := w.Available(t, c.AccountID); got != want {
			t.Fatalf("available %d after %s, want %d", got, resp.ActionCode, want)
		}
		cloudtest.CheckLedger(t, st)
	})
}
