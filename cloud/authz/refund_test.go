package authz_test

import (
	"context"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/iso93"
)

func refundOf(w *cloudtest.World, c cloudtest.Card, amount int64) authz.Request {
	r := w.Request(iso93.MTIFinancialRequest, c, amount)
	r.ProcessingCode = iso93.ProcessingRefund
	return r
}

func TestRefund(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		tests := []struct {
			name      string
			purchases []int64 // approved 1200s before the refunds
			refunds   []int64
			want      []iso93.ActionCode
			available int64 // after, of a 10000 credit line
		}{
			{"full_refund", []int64{3000}, []int64{3000}, []iso93.ActionCode{iso93.ActionApproved}, 10000},
			{"partial_refunds_up_to_the_purchase", []int64{3000}, []int64{1000, 2000, 1},
				[]iso93.ActionCode{iso93.ActionApproved, iso93.ActionApproved, iso93.ActionExceedsAmountLimit}, 10000},
			{"more_than_purchased", []int64{3000}, []int64{3001}, []iso93.ActionCode{iso93.ActionExceedsAmountLimit}, 7000},
			{"across_purchases", []int64{1000, 2000}, []int64{2500}, []iso93.ActionCode{iso93.ActionApproved}, 9500},
			{"no_purchase", nil, []int64{100}, []iso93.ActionCode{iso93.ActionOriginalNotFound}, 10000},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindCredit, 10000, 0)
				for _, p := range tt.purchases {
					wantCode(t, authorize(t, w, w.Request(iso93.MTIFinancialRequest, c, p)), iso93.ActionApproved)
				}
				for i, amt := range tt.refunds {
					wantCode(t, authorize(t, w, refundOf(w, c, amt)), tt.want[i])
				}
				if got := w.Available(t, c.AccountID); got != tt.available {
					t.Fatalf("available = %d, want %d", got, tt.available)
				}
				cloudtest.CheckLedger(t, st)
			})
		}

		t.Run("repeat_is_answered_once", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			wantCode(t, authorize(t, w, w.Request(iso93.MTIFinancialRequest, c, 3000)), iso93.ActionApproved)
			r := refundOf(w, c, 1000)
			first := authorize(t, w, r)
			wantCode(t, first, iso93.ActionApproved)
			transfers := count(t, st, "transfers")
			if again := authorize(t, w, r); !sameResponse(again, first) {
				t.Fatalf("repeat = %+v, first = %+v", again, first)
			}
			if n := count(t, st, "transfers"); n != transfers {
				t.Fatalf("repeat posted: %d transfers, was %d", n, transfers)
			}
			if got := w.Available(t, c.AccountID); got != 8000 {
				t.Fatalf("available = %d, want 8000", got)
			}
			cloudtest.CheckLedger(t, st)
		})

		t.Run("merchant_clearing_pays_the_refund", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			before := clearing(t, st)
			wantCode(t, authorize(t, w, w.Request(iso93.MTIFinancialRequest, c, 3000)), iso93.ActionApproved)
			wantCode(t, authorize(t, w, refundOf(w, c, 1200)), iso93.ActionApproved)
			if got := clearing(t, st) - before; got != 1800 {
				t.Fatalf("merchant clearing moved by %d, want 1800", got)
			}
			cloudtest.CheckLedger(t, st)
		})

		t.Run("void_of_refund_takes_it_back", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			wantCode(t, authorize(t, w, w.Request(iso93.MTIFinancialRequest, c, 3000)), iso93.ActionApproved)
			r := refundOf(w, c, 3000)
			wantCode(t, authorize(t, w, r), iso93.ActionApproved)
			wantCode(t, authorize(t, w, reversalOf(w, r, true)), iso93.ActionReversalAccepted)
			if got := w.Available(t, c.AccountID); got != 7000 {
				t.Fatalf("available after void of refund = %d, want 7000", got)
			}
			// The voided refund no longer uses the purchase.
			wantCode(t, authorize(t, w, refundOf(w, c, 3000)), iso93.ActionApproved)
			cloudtest.CheckLedger(t, st)
		})

		t.Run("reversed_purchase_does_not_count", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			p := w.Request(iso93.MTIFinancialRequest, c, 3000)
			wantCode(t, authorize(t, w, p), iso93.ActionApproved)
			wantCode(t, authorize(t, w, reversalOf(w, p, false)), iso93.ActionReversalAccepted)
			wantCode(t, authorize(t, w, refundOf(w, c, 100)), iso93.ActionOriginalNotFound)
			cloudtest.CheckLedger(t, st)
		})

		t.Run("completed_preauth_counts_what_was_captured", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			orig := w.Request(iso93.MTIAuthorizationRequest, c, 5000)
			wantCode(t, authorize(t, w, orig), iso93.ActionApproved)
			adv := w.Request(iso93.MTIAdvice, cloudtest.Card{}, 2000)
			adv.CardBlock, adv.Fingerprint = nil, ""
			adv.Original = &authz.OriginalData{IdempotencyKey: orig.IdempotencyKey}
			wantCode(t, authorize(t, w, adv), iso93.ActionApproved)
			wantCode(t, authorize(t, w, refundOf(w, c, 2001)), iso93.ActionExceedsAmountLimit)
			wantCode(t, authorize(t, w, refundOf(w, c, 2000)), iso93.ActionApproved)
			if got := w.Available(t, c.AccountID); got != 10000 {
				t.Fatalf("available = %d, want 10000", got)
			}
			cloudtest.CheckLedger(t, st)
		})

		t.Run("purchase_at_other_merchant_does_not_count", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			p := w.RequestOn("dev-"+cloudtest.OtherTerminal, iso93.MTIFinancialRequest, c, 3000)
			p.GatewayID, p.TerminalID = cloudtest.OtherGateway, cloudtest.OtherTerminal
			wantCode(t, authorize(t, w, p), iso93.ActionApproved)
			wantCode(t, authorize(t, w, refundOf(w, c, 100)), iso93.ActionOriginalNotFound)
			cloudtest.CheckLedger(t, st)
		})
	})
}

func TestRefundDeclines(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		tests := []struct {
			name  string
			setup func(t *testing.T, c cloudtest.Card, r *authz.Request)
			want  iso93.ActionCode
		}{
			{"unknown_card", func(t *testing.T, c cloudtest.Card, r *authz.Request) {
				pan, _ := card.ParsePAN("4000000000000002")
				r.CardBlock = cloudtest.Block(pan, c.Expiry, "dev-unknown-refund", 1)
				r.Fingerprint, _ = w.Vault.Fingerprint(pan)
			}, iso93.ActionInvalidCardNumber},
			{"lost", status(w, store.CardLost), iso93.ActionLostCard},
			{"stolen", status(w, store.CardStolen), iso93.ActionStolenCard},
			{"closed", status(w, store.CardClosed), iso93.ActionCardNotEffective},
			{"expired_by_transaction_date", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.LocalTime = "310101120000" }, iso93.ActionExpiredCard},
			{"zero_amount", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.Amount = 0 }, iso93.ActionInvalidAmount},
			{"other_currency", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.Currency = "840" }, iso93.ActionNotPermittedToCardholder},
			{"unknown_terminal", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.TerminalID = "NOPE0001" }, iso93.ActionNotPermittedToTerminal},
			{"malformed_block", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.CardBlock = []byte("garbage") }, iso93.ActionFormatError},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindCredit, 10000, 0)
				wantCode(t, authorize(t, w, w.Request(iso93.MTIFinancialRequest, c, 3000)), iso93.ActionApproved)
				r := refundOf(w, c, 1000)
				tt.setup(t, c, &r)
				before := count(t, st, "transfers")
				wantCode(t, authorize(t, w, r), tt.want)
				if n := count(t, st, "transfers"); n != before {
					t.Fatalf("a declined refund posted money: %d transfers, was %d", n, before)
				}
				if got := w.Available(t, c.AccountID); got != 7000 {
					t.Fatalf("available = %d, want 7000", got)
				}
				cloudtest.CheckLedger(t, st)
			})
		}
	})
}

// clearing returns the world merchant's clearing balance in its currency.
func clearing(t *testing.T, st *store.Store) int64 {
	t.Helper()
	var sum int64
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		sum, err = ledger.MerchantClearingBalance(context.Background(), tx, cloudtest.Merchant, cloudtest.Currency)
		return err
	})
	if err != nil {
		t.Fatalf("read merchant clearing balance: %v", err)
	}
	return sum
}
