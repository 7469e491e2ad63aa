package authz_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cardsec"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/emv"
	"github.com/posgate/posgate/emv/card"
	"github.com/posgate/posgate/emv/de55"
	"github.com/posgate/posgate/emv/dol"
	"github.com/posgate/posgate/emv/tags"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/hsm/hsmtest"
	pcard "github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/protocol/iso93"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

// testIMK is a test issuer master key (the published EMV vectors' IMK).
var testIMK = []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10}

// chipWorld is a World whose switch serves chip and CVV2 checks on the
// test token, with one IMK and one CVK.
type chipWorld struct {
	*cloudtest.World
	tok      *hsm.Token
	imk, cvk string
	dec      *extraDecrypter
}

func newChipWorld(t testing.TB, st *store.Store, allowedAIDs ...string) *chipWorld {
	t.Helper()
	tok := hsmtest.Token(t)
	cw := &chipWorld{World: cloudtest.NewWorld(t, st), tok: tok, imk: hsmtest.Label(t, "imk"), cvk: hsmtest.Label(t, "cvk")}
	if err := tok.ImportTDES(cw.imk, testIMK, hsm.UseDerive); err != nil {
		t.Fatalf("import IMK: %v", err)
	}
	if err := tok.ImportCVK(cw.cvk, testIMK); err != nil {
		t.Fatalf("import CVK: %v", err)
	}
	keys, err := cardsec.New(tok, 0, 0)
	if err != nil {
		t.Fatalf("card security keys: %v", err)
	}
	t.Cleanup(func() { _ = keys.Close() })
	cw.dec = &extraDecrypter{inner: cw.Decrypter, extra: map[string]extra{}}
	cw.Switch.Decrypter = cw.dec
	cw.Switch.Chip = authz.ChipConfig{Keys: keys, IMKLabel: cw.imk, CVKLabel: cw.cvk, AllowedAIDs: allowedAIDs}
	return cw
}

// extra is what extraDecrypter adds to a block's clear data.
type extra struct {
	code        pcard.SecurityCode
	serviceCode string
}

// extraDecrypter adds a security code and service code to the blocks
// cloudtest.Block makes (which carry only PAN and expiry).
type extraDecrypter struct {
	inner authz.CardDecrypter
	mu    sync.Mutex
	extra map[string]extra
}

func (d *extraDecrypter) set(block []byte, e extra) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.extra[string(block)] = e
}

func (d *extraDecrypter) OpenCardBlock(ctx context.Context, block []byte) (cardblock.ClearData, string, uint64, error) {
	c, dev, ctr, err := d.inner.OpenCardBlock(ctx, block)
	d.mu.Lock()
	e := d.extra[string(block)]
	d.mu.Unlock()
	c.SecurityCode, c.ServiceCode = e.code, e.serviceCode
	return c, dev, ctr, err
}

func setSecurity(t *testing.T, st *store.Store, c cloudtest.Card, edit func(p *store.CardSecurity)) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx *store.Tx) error {
		sc, err := tx.Card(ctx, c.ID)
		if err != nil {
			return err
		}
		p, err := tx.ProductCardSecurity(ctx, sc.ProductID)
		if err != nil {
			return err
		}
		edit(&p)
		return tx.SetProductCardSecurity(ctx, p)
	})
	if err != nil {
		t.Fatalf("set product card security: %v", err)
	}
}

func unhexT(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// chipCard personalises a simulated chip card for the world's card.
func chipCard(t *testing.T, c cloudtest.Card) *card.Card {
	t.Helper()
	cc, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testIMK, ATC: 0x20})
	if err != nil {
		t.Fatalf("new chip card: %v", err)
	}
	return cc
}

// arqc runs the terminal's first GENERATE AC and returns the request DE 55.
func arqc(t testing.TB, cc *card.Card, amount int64, aid string) []byte {
	t.Helper()
	return generateAC(t, cc, amount, emv.TC, emv.ARQC, "0000048000", "BBA4CD5B", aid)
}

// generateAC is cloudtest.ChipDE55.
func generateAC(t testing.TB, cc *card.Card, amount int64, ask, want emv.CryptogramType, tvr, un, aid string) []byte {
	t.Helper()
	return cloudtest.ChipDE55(t, cc, amount, ask, want, tvr, un, aid)
}

func amountBCD(a int64) string {
	s := "000000000000" + strings.TrimLeft(strings.Repeat("0", 1)+itoa(a), "0")
	return s[len(s)-12:]
}

func itoa(a int64) string {
	if a == 0 {
		return "0"
	}
	var b []byte
	for ; a > 0; a /= 10 {
		b = append([]byte{byte('0' + a%10)}, b...)
	}
	return string(b)
}

// complete hands the response DE 55 to the card's second GENERATE AC and
// returns the card's final cryptogram type.
func complete(t *testing.T, cc *card.Card, resp authz.Response) (emv.CryptogramType, error) {
	t.Helper()
	if len(resp.ICCData) == 0 {
		t.Fatalf("response %s carries no DE 55", resp.ActionCode)
	}
	r, err := de55.ParseResponse(resp.ICCData)
	if err != nil {
		t.Fatalf("parse response DE 55: %v", err)
	}
	if len(r.IssuerAuthData) != 10 {
		t.Fatalf("issuer authentication data of %d bytes, want 10 (ARPC || ARC)", len(r.IssuerAuthData))
	}
	approved := resp.ActionCode == iso93.ActionApproved
	cdol2, _ := card.DefaultCDOL2().Build(dol.Values{tags.AuthorisationResponseCode: r.IssuerAuthData[8:], tags.TVR: unhexT(t, "0000048000"),
		tags.UnpredictableNumber: unhexT(t, "11223344")})
	final, err := cc.CompleteOnline(r.IssuerAuthData, approved, cdol2)
	return final.CID.Type(), err
}

func auditKinds(t *testing.T, st *store.Store, kind string) int {
	t.Helper()
	var n int
	err := st.View(context.Background(), func(tx *store.Tx) error {
		recs, err := tx.Audit(context.Background(), kind, 100)
		n = len(recs)
		return err
	})
	if err != nil {
		t.Fatalf("read audit: %v", err)
	}
	return n
}

func TestChipAuthorization(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		c := w.NewCard(t, store.KindCredit, 100000, 0)
		cc := chipCard(t, c)

		t.Run("approved_with_arpc_card_answers_tc", func(t *testing.T) {
			r := w.Request(iso93.MTIFinancialRequest, c, 1200)
			r.ICCData = arqc(t, cc, 1200, "")
			resp := authorize(t, w.World, r)
			wantCode(t, resp, iso93.ActionApproved)
			if typ, err := complete(t, cc, resp); err != nil || typ != emv.TC {
				t.Fatalf("card's second GENERATE AC = %v, %v; want TC", typ, err)
			}
			again := authorize(t, w.World, r)
			if again.ActionCode != resp.ActionCode || again.RRN != resp.RRN {
				t.Fatalf("repeat answered %s/%s, first %s/%s", again.ActionCode, again.RRN, resp.ActionCode, resp.RRN)
			}
		})
		t.Run("repeat_after_a_lost_answer_carries_the_arpc", func(t *testing.T) {
			r := w.Request(iso93.MTIFinancialRequest, c, 1300)
			r.ICCData = arqc(t, cc, 1300, "")
			first := authorize(t, w.World, r) // its answer is lost on the way
			wantCode(t, first, iso93.ActionApproved)
			again := authorize(t, w.World, r)
			if !sameResponse(again, first) || !bytes.Equal(again.ICCData, first.ICCData) {
				t.Fatalf("repeat %+v, first %+v", again, first)
			}
			if typ, err := complete(t, cc, again); err != nil || typ != emv.TC {
				t.Fatalf("card's second GENERATE AC on the repeat's answer = %v, %v; want TC", typ, err)
			}
		})
		t.Run("tampered_arqc_declined_with_arpc", func(t *testing.T) {
			before := auditKinds(t, st, "arqc_invalid")
			r := w.Request(iso93.MTIFinancialRequest, c, 1200)
			d := arqc(t, cc, 1200, "")
			i := strings.Index(hex.EncodeToString(d), "9f2608") / 2
			d[i+3] ^= 0x01
			r.ICCData = d
			resp := authorize(t, w.World, r)
			wantCode(t, resp, iso93.ActionSuspectedFraud)
			if got := auditKinds(t, st, "arqc_invalid"); got != before+1 {
				t.Fatalf("arqc_invalid audit records %d, want %d", got, before+1)
			}
			p, _ := de55.ParseResponse(resp.ICCData)
			if string(p.IssuerAuthData[8:]) != "59" {
				t.Fatalf("ARC %q, want 59", p.IssuerAuthData[8:])
			}
		})
		t.Run("replayed_atc_declined", func(t *testing.T) {
			d := arqc(t, cc, 700, "")
			first := w.Request(iso93.MTIFinancialRequest, c, 700)
			first.ICCData = d
			wantCode(t, authorize(t, w.World, first), iso93.ActionApproved)
			replay := w.Request(iso93.MTIFinancialRequest, c, 700) // new key and KSN, same chip data
			replay.ICCData = d
			resp := authorize(t, w.World, replay)
			wantCode(t, resp, iso93.ActionDoNotHonour)
			if auditKinds(t, st, "atc_replayed") == 0 {
				t.Fatal("no atc_replayed audit record")
			}
			if typ, _ := complete(t, cc, resp); typ != emv.AAC {
				t.Fatalf("card after a decline answered %v, want AAC", typ)
			}
		})
		t.Run("regressed_atc_declined", func(t *testing.T) {
			old, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testIMK, ATC: 0x01})
			if err != nil {
				t.Fatal(err)
			}
			r := w.Request(iso93.MTIFinancialRequest, c, 100)
			r.ICCData = arqc(t, old, 100, "")
			wantCode(t, authorize(t, w.World, r), iso93.ActionDoNotHonour)
		})
		valid := arqc(t, cc, 100, "")
		dup := append(append([]byte{}, valid...), valid[:3+int(valid[2])]...)
		tests := []struct {
			name string
			de55 []byte
		}{
			{"truncated", valid[:len(valid)-2]},
			{"duplicate_tag", dup},
			{"pan_inside", append(append([]byte{}, valid...), 0x5A, 0x08, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x00, 0x10)},
			{"garbage", []byte{0xFF, 0x01, 0x02}},
		}
		for _, tt := range tests {
			t.Run("malformed_de55_"+tt.name, func(t *testing.T) {
				r := w.Request(iso93.MTIFinancialRequest, c, 100)
				r.ICCData = tt.de55
				resp := authorize(t, w.World, r)
				wantCode(t, resp, iso93.ActionFormatError)
				if resp.ICCData != nil {
					t.Fatal("a refused DE 55 got an ARPC")
				}
			})
		}
		if auditKinds(t, st, "de55_invalid") < len(tests) {
			t.Fatal("malformed DE 55 not audited")
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestChipAID(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st, "A0000000031010")
		c := w.NewCard(t, store.KindCredit, 100000, 0)
		cc := chipCard(t, c)
		tests := []struct {
			name, aid string
			want      iso93.ActionCode
		}{
			{"listed_aid", "A0000000031010", iso93.ActionApproved},
			{"unlisted_aid", "A0000000041010", iso93.ActionInvalidTransaction},
			{"absent_aid", "", iso93.ActionInvalidTransaction},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := w.Request(iso93.MTIAuthorizationRequest, c, 500)
				r.ICCData = arqc(t, cc, 500, tt.aid)
				resp := authorize(t, w.World, r)
				wantCode(t, resp, tt.want)
				if len(resp.ICCData) == 0 {
					t.Fatal("no response DE 55")
				}
			})
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestFallback(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		allowed := w.NewCard(t, store.KindCredit, 100000, 0)
		refused := w.NewCard(t, store.KindCredit, 100000, 0)
		setSecurity(t, st, refused, func(p *store.CardSecurity) { p.AllowFallback = false })
		tests := []struct {
			name    string
			c       cloudtest.Card
			flag    bool
			pos, sc string
			want    iso93.ActionCode
		}{
			{"flagged_fallback_allowed", allowed, true, "", "", iso93.ActionApproved},
			{"flagged_fallback_refused", refused, true, "", "", iso93.ActionNotPermittedToCardholder},
			{"pos_code_chip_card_swiped_refused", refused, false, "510101253001", "201", iso93.ActionNotPermittedToCardholder},
			{"pos_code_magstripe_card_swiped", refused, false, "510101253001", "101", iso93.ActionApproved},
			{"no_fallback_refused_product", refused, false, "510101553001", "201", iso93.ActionApproved},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := w.Request(iso93.MTIFinancialRequest, tt.c, 300)
				r.Fallback, r.POSDataCode = tt.flag, tt.pos
				w.dec.set(r.CardBlock, extra{serviceCode: tt.sc})
				wantCode(t, authorize(t, w.World, r), tt.want)
			})
		}
		if auditKinds(t, st, "fallback_refused") != 2 {
			t.Fatal("want 2 fallback_refused audit records")
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestCVV2(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newChipWorld(t, st)
		tests := []struct {
			name   string
			policy store.CVV2Policy
			code   string // "right", "wrong" or "" (absent)
			want   iso93.ActionCode
		}{
			{"off_wrong_not_checked", store.CVV2Off, "wrong", iso93.ActionApproved},
			{"if_present_right", store.CVV2IfPresent, "right", iso93.ActionApproved},
			{"if_present_wrong", store.CVV2IfPresent, "wrong", iso93.ActionDoNotHonour},
			{"if_present_absent", store.CVV2IfPresent, "", iso93.ActionApproved},
			{"required_right", store.CVV2Required, "right", iso93.ActionApproved},
			{"required_wrong", store.CVV2Required, "wrong", iso93.ActionDoNotHonour},
			{"required_absent", store.CVV2Required, "", iso93.ActionDoNotHonour},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindPrepaid, 0, 5000)
				setSecurity(t, st, c, func(p *store.CardSecurity) { p.CVV2 = tt.policy })
				right, err := w.tok.CVV(w.cvk, c.PAN.Digits(), cloudtest.Expiry, hsm.ServiceCodeCVV2)
				if err != nil {
					t.Fatalf("CVV2 in the token: %v", err)
				}
				r := w.Request(iso93.MTIFinancialRequest, c, 1000)
				var e extra
				switch tt.code {
				case "right":
					e.code, _ = pcard.ParseSecurityCode(right)
				case "wrong":
					e.code, _ = pcard.ParseSecurityCode(string([]byte{'0' + (right[0]-'0'+1)%10}) + right[1:])
				}
				w.dec.set(r.CardBlock, e)
				wantCode(t, authorize(t, w.World, r), tt.want)
				want := int64(5000)
				if tt.want == iso93.ActionApproved {
					want = 4000
				}
				if got := w.Available(t, c.AccountID); got != want {
					t.Fatalf("available %d, want %d", got, want)
				}
			})
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestChipWithoutKeysRefused(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindCredit, 100000, 0)
		r := w.Request(iso93.MTIFinancialRequest, c, 100)
		r.ICCData = arqc(t, chipCard(t, c), 100, "")
		resp, err := w.Switch.Authorize(context.Background(), r)
		if err != nil {
			t.Fatalf("authorize: %v", err)
		}
		wantCode(t, resp, iso93.ActionInvalidTransaction)
	})
}

// BenchmarkChipAuthorization measures chip 1200s through the switch on
// SQLite: fake card-block decryption, ARQC verification and ARPC in
// SoftHSM, the ATC guard and the posting in the store. Each iteration is a
// new ATC of one card (its ICC master key stays cached in the token).
func BenchmarkChipAuthorization(b *testing.B) {
	st := storetest.OpenSQLite(b)
	w := newChipWorld(b, st)
	c := w.NewCard(b, store.KindCredit, 1_000_000_000, 0)
	cc, err := card.New(card.Config{PAN: c.PAN.Digits(), PSN: 0x01, Expiry: [3]byte{0x30, 0x12, 0x31}, IMK: testIMK})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := w.Request(iso93.MTIFinancialRequest, c, 100)
		r.ICCData = arqc(b, cc, 100, "")
		resp, err := w.Switch.Authorize(context.Background(), r)
		if err != nil || resp.ActionCode != iso93.ActionApproved || len(resp.ICCData) == 0 {
			b.Fatalf("authorize: %s %v", resp.ActionCode, err)
		}
	}
}
