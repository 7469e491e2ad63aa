package authz_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/iso93"
)

func authorize(t *testing.T, w *cloudtest.World, r authz.Request) authz.Response {
	t.Helper()
	resp, err := w.Switch.Authorize(context.Background(), r)
	if err != nil {
		t.Fatalf("authorize %s: %v", r.MTI, err)
	}
	return resp
}

func wantCode(t *testing.T, resp authz.Response, code iso93.ActionCode) {
	t.Helper()
	if resp.ActionCode != code {
		t.Fatalf("action code = %s, want %s", resp.ActionCode, code)
	}
	if code == iso93.ActionApproved && len(resp.ApprovalCode) != 6 {
		t.Fatalf("approval code %q, want 6 characters", resp.ApprovalCode)
	}
	if code != iso93.ActionApproved && resp.ApprovalCode != "" {
		t.Fatalf("decline carries approval code %q", resp.ApprovalCode)
	}
	if len(resp.RRN) != 12 {
		t.Fatalf("RRN %q, want 12 characters", resp.RRN)
	}
}

func count(t *testing.T, st *store.Store, table string) int64 {
	t.Helper()
	var n int64
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		n, err = tx.Count(context.Background(), table)
		return err
	})
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestApproveAndDeclinePerProduct(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		tests := []struct {
			name         string
			kind         store.ProductKind
			limit, funds int64
			mti          string
			amount       int64
			want         iso93.ActionCode
			available    int64 // after
		}{
			{"credit_within_line_1100", store.KindCredit, 10000, 0, "1100", 4000, iso93.ActionApproved, 6000},
			{"credit_within_line_1200", store.KindCredit, 10000, 0, "1200", 10000, iso93.ActionApproved, 0},
			{"credit_over_line", store.KindCredit, 10000, 0, "1100", 10001, iso93.ActionInsufficientFunds, 10000},
			{"debit_within_balance_and_overdraft", store.KindDebit, 500, 1000, "1200", 1500, iso93.ActionApproved, 0},
			{"debit_over_overdraft", store.KindDebit, 500, 1000, "1100", 1501, iso93.ActionInsufficientFunds, 1500},
			{"prepaid_within_balance", store.KindPrepaid, 0, 3000, "1100", 3000, iso93.ActionApproved, 0},
			{"prepaid_over_balance", store.KindPrepaid, 0, 3000, "1200", 3001, iso93.ActionInsufficientFunds, 3000},
			{"house_at_allowed_merchant", store.KindHouse, 5000, 0, "1200", 100, iso93.ActionApproved, 4900},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, tt.kind, tt.limit, tt.funds)
				resp := authorize(t, w, w.Request(tt.mti, c, tt.amount))
				wantCode(t, resp, tt.want)
				if got := w.Available(t, c.AccountID); got != tt.available {
					t.Fatalf("available = %d, want %d", got, tt.available)
				}
				cloudtest.CheckLedger(t, st)
			})
		}
	})
}

func TestDeclines(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		ctx := context.Background()
		tests := []struct {
			name  string
			setup func(t *testing.T, c cloudtest.Card, r *authz.Request)
			want  iso93.ActionCode
			audit string
		}{
			{"zero_amount", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.Amount = 0 }, iso93.ActionInvalidAmount, "request_invalid"},
			{"unknown_currency", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.Currency = "999" }, iso93.ActionFormatError, "request_invalid"},
			{"bad_stan", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.STAN = "12x" }, iso93.ActionFormatError, "request_invalid"},
			{"refund_by_1100_not_supported", func(t *testing.T, c cloudtest.Card, r *authz.Request) {
				r.MTI, r.ProcessingCode = iso93.MTIAuthorizationRequest, iso93.ProcessingRefund
			}, iso93.ActionInvalidTransaction, "request_invalid"},
			{"unknown_terminal", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.TerminalID = "NOPE0001" }, iso93.ActionNotPermittedToTerminal, "terminal_refused"},
			{"terminal_of_other_gateway", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.TerminalID = cloudtest.OtherTerminal }, iso93.ActionNotPermittedToTerminal, "terminal_refused"},
			{"malformed_block", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.CardBlock = []byte("garbage") }, iso93.ActionFormatError, "card_block_invalid"},
			{"fingerprint_mismatch", func(t *testing.T, c cloudtest.Card, r *authz.Request) {
				r.Fingerprint = "00000000000000000000000000000000"
			}, iso93.ActionFormatError, "fingerprint_mismatch"},
			{"unknown_card", func(t *testing.T, c cloudtest.Card, r *authz.Request) {
				pan, _ := card.ParsePAN("4000000000000002")
				r.CardBlock = cloudtest.Block(pan, c.Expiry, "dev-unknown", 1)
				r.Fingerprint, _ = w.Vault.Fingerprint(pan)
			}, iso93.ActionInvalidCardNumber, "declined"},
			{"lost", status(w, store.CardLost), iso93.ActionLostCard, "declined"},
			{"stolen", status(w, store.CardStolen), iso93.ActionStolenCard, "declined"},
			{"suspended", status(w, store.CardSuspended), iso93.ActionRestrictedCard, "declined"},
			{"closed", status(w, store.CardClosed), iso93.ActionCardNotEffective, "declined"},
			{"expired_by_transaction_date", func(t *testing.T, c cloudtest.Card, r *authz.Request) { r.LocalTime = "310101120000" }, iso93.ActionExpiredCard, "declined"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindCredit, 10000, 0)
				r := w.Request("1200", c, 100)
				tt.setup(t, c, &r)
				before := count(t, st, "transfers")
				resp := authorize(t, w, r)
				wantCode(t, resp, tt.want)
				if n := count(t, st, "transfers"); n != before {
					t.Fatalf("a decline posted money: %d transfers, was %d", n, before)
				}
				if got := w.Available(t, c.AccountID); got != 10000 {
					t.Fatalf("available = %d, want 10000", got)
				}
				var recs []store.AuditRecord
				if err := st.View(ctx, func(tx *store.Tx) error {
					var err error
					recs, err = tx.Audit(ctx, tt.audit, 1)
					return err
				}); err != nil || len(recs) == 0 {
					t.Fatalf("no %s audit record: %v", tt.audit, err)
				}
				// A repeat gets the same answer.
				if again := authorize(t, w, r); !sameResponse(again, resp) {
					t.Fatalf("repeat = %+v, first = %+v", again, resp)
				}
				cloudtest.CheckLedger(t, st)
			})
		}
	})
}

func status(w *cloudtest.World, s store.CardStatus) func(t *testing.T, c cloudtest.Card, r *authz.Request) {
	return func(t *testing.T, c cloudtest.Card, r *authz.Request) {
		if err := w.Issuer.SetStatus(context.Background(), c.ID, s, "test"); err != nil {
			t.Fatalf("set status: %v", err)
		}
	}
}

func TestHouseCardRefusedAtOtherMerchant(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindHouse, 5000, 0)
		r := w.Request("1200", c, 100)
		r.GatewayID, r.TerminalID = cloudtest.OtherGateway, cloudtest.OtherTerminal
		wantCode(t, authorize(t, w, r), iso93.ActionNotPermittedToCardholder)
		cloudtest.CheckLedger(t, st)
	})
}

func TestReplayedKSNCounter(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindCredit, 10000, 0)
		first := w.Request("1100", c, 100)
		wantCode(t, authorize(t, w, first), iso93.ActionApproved)
		// Same block (same counter) under a new key and STAN: a replay.
		replay := w.Request("1100", c, 100)
		replay.CardBlock = first.CardBlock
		wantCode(t, authorize(t, w, replay), iso93.ActionDuplicateTransmission)
		if got := w.Available(t, c.AccountID); got != 9900 {
			t.Fatalf("available = %d, want 9900", got)
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestIdempotentRepeats(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		for _, mti := range []string{"1100", "1200"} {
			t.Run("mti_"+mti, func(t *testing.T) {
				c := w.NewCard(t, store.KindPrepaid, 0, 1000)
				r := w.Request(mti, c, 300)
				first := authorize(t, w, r)
				wantCode(t, first, iso93.ActionApproved)
				auths, transfers, holds := count(t, st, "authorizations"), count(t, st, "transfers"), count(t, st, "holds")
				calls := w.Decrypter.Calls.Load()
				for range 3 {
					if again := authorize(t, w, r); !sameResponse(again, first) {
						t.Fatalf("repeat = %+v, first = %+v", again, first)
					}
				}
				if count(t, st, "authorizations") != auths || count(t, st, "transfers") != transfers || count(t, st, "holds") != holds {
					t.Fatal("a repeat added rows")
				}
				if w.Decrypter.Calls.Load() != calls {
					t.Fatal("a repeat decrypted the block again")
				}
				if got := w.Available(t, c.AccountID); got != 700 {
					t.Fatalf("available = %d, want 700", got)
				}
				cloudtest.CheckLedger(t, st)
			})
		}
		t.Run("other_gateway_cannot_read_answer", func(t *testing.T) {
			c := w.NewCard(t, store.KindPrepaid, 0, 1000)
			r := w.Request("1100", c, 300)
			wantCode(t, authorize(t, w, r), iso93.ActionApproved)
			r.GatewayID = cloudtest.OtherGateway
			resp := authorize(t, w, r)
			if resp.ActionCode != iso93.ActionFormatError || resp.RRN != "" || resp.ApprovalCode != "" {
				t.Fatalf("other gateway got %+v", resp)
			}
		})
	})
}

func TestConcurrentRepeatsOfOneKey(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindPrepaid, 0, 1000)
		r := w.Request("1200", c, 300)
		const n = 8
		out := make(chan authz.Response, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				resp, err := w.Switch.Authorize(context.Background(), r)
				if err != nil {
					t.Errorf("authorize: %v", err)
				}
				out <- resp
			})
		}
		wg.Wait()
		close(out)
		var first authz.Response
		for resp := range out {
			if sameResponse(first, authz.Response{}) {
				first = resp
			}
			if !sameResponse(resp, first) {
				t.Fatalf("answers differ: %+v and %+v", resp, first)
			}
		}
		wantCode(t, first, iso93.ActionApproved)
		if got := w.Available(t, c.AccountID); got != 700 {
			t.Fatalf("available = %d, want 700 (posted once)", got)
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestReversal(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		tests := []struct {
			name   string
			mti    string
			byData bool
		}{
			{"hold_by_key", "1100", false},
			{"hold_by_data_elements", "1100", true},
			{"posting_by_key", "1200", false},
			{"posting_by_data_elements", "1200", true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindCredit, 10000, 0)
				orig := w.Request(tt.mti, c, 2500)
				wantCode(t, authorize(t, w, orig), iso93.ActionApproved)
				if got := w.Available(t, c.AccountID); got != 7500 {
					t.Fatalf("available after original = %d", got)
				}
				rev := reversalOf(w, orig, tt.byData)
				resp := authorize(t, w, rev)
				wantCode(t, resp, iso93.ActionReversalAccepted)
				if got := w.Available(t, c.AccountID); got != 10000 {
					t.Fatalf("available after reversal = %d, want 10000", got)
				}
				// A repeat (1421) changes nothing; a second reversal under a
				// new key is accepted but undoes nothing more.
				rev.MTI = iso93.MTIReversalRepeat
				if again := authorize(t, w, rev); !sameResponse(again, resp) {
					t.Fatalf("repeat = %+v, first = %+v", again, resp)
				}
				wantCode(t, authorize(t, w, reversalOf(w, orig, tt.byData)), iso93.ActionReversalAccepted)
				if got := w.Available(t, c.AccountID); got != 10000 {
					t.Fatalf("available after second reversal = %d, want 10000", got)
				}
				cloudtest.CheckLedger(t, st)
			})
		}
		t.Run("unknown_original", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			orig := w.Request("1100", c, 100) // never sent
			wantCode(t, authorize(t, w, reversalOf(w, orig, false)), iso93.ActionOriginalNotFound)
			wantCode(t, authorize(t, w, reversalOf(w, orig, true)), iso93.ActionOriginalNotFound)
		})
		t.Run("other_terminal_cannot_reverse", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			orig := w.Request("1200", c, 100)
			wantCode(t, authorize(t, w, orig), iso93.ActionApproved)
			rev := reversalOf(w, orig, false)
			rev.GatewayID, rev.TerminalID = cloudtest.OtherGateway, cloudtest.OtherTerminal
			wantCode(t, authorize(t, w, rev), iso93.ActionOriginalNotFound)
			if got := w.Available(t, c.AccountID); got != 9900 {
				t.Fatalf("available = %d, want 9900", got)
			}
			cloudtest.CheckLedger(t, st)
		})
	})
}

func reversalOf(w *cloudtest.World, orig authz.Request, byData bool) authz.Request {
	r := w.Request(iso93.MTIReversal, cloudtest.Card{}, orig.Amount)
	r.CardBlock, r.Fingerprint, r.KSN = nil, "", nil
	r.FunctionCode = iso93.FunctionFullReversal
	r.Original = &authz.OriginalData{IdempotencyKey: orig.IdempotencyKey}
	if byData {
		r.Original = &authz.OriginalData{MTI: orig.MTI, STAN: orig.STAN, LocalTime: orig.LocalTime}
	}
	return r
}

func TestCompletionAdvice(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		tests := []struct {
			name      string
			hold, amt int64
			want      iso93.ActionCode
			available int64
		}{
			{"exact", 3000, 3000, iso93.ActionApproved, 7000},
			{"less_than_hold", 3000, 2000, iso93.ActionApproved, 8000},
			{"more_than_hold_within_line", 3000, 4000, iso93.ActionApproved, 6000},
			{"more_than_line", 3000, 10001, iso93.ActionInsufficientFunds, 7000},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := w.NewCard(t, store.KindCredit, 10000, 0)
				orig := w.Request("1100", c, tt.hold)
				wantCode(t, authorize(t, w, orig), iso93.ActionApproved)
				adv := w.Request(iso93.MTIAdvice, cloudtest.Card{}, tt.amt)
				adv.CardBlock, adv.Fingerprint = nil, ""
				adv.Original = &authz.OriginalData{IdempotencyKey: orig.IdempotencyKey}
				resp := authorize(t, w, adv)
				wantCode(t, resp, tt.want)
				if got := w.Available(t, c.AccountID); got != tt.available {
					t.Fatalf("available = %d, want %d", got, tt.available)
				}
				adv.MTI = iso93.MTIAdviceRepeat
				if again := authorize(t, w, adv); !sameResponse(again, resp) {
					t.Fatalf("1221 repeat = %+v, first = %+v", again, resp)
				}
				if got := w.Available(t, c.AccountID); got != tt.available {
					t.Fatalf("available after repeat = %d, want %d", got, tt.available)
				}
				cloudtest.CheckLedger(t, st)
			})
		}
		t.Run("reversal_after_completion_undoes_the_posting", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			orig := w.Request("1100", c, 3000)
			wantCode(t, authorize(t, w, orig), iso93.ActionApproved)
			adv := w.Request(iso93.MTIAdvice, cloudtest.Card{}, 2500)
			adv.CardBlock, adv.Fingerprint = nil, ""
			adv.Original = &authz.OriginalData{IdempotencyKey: orig.IdempotencyKey}
			wantCode(t, authorize(t, w, adv), iso93.ActionApproved)
			wantCode(t, authorize(t, w, reversalOf(w, adv, false)), iso93.ActionReversalAccepted)
			wantCode(t, authorize(t, w, reversalOf(w, orig, false)), iso93.ActionReversalAccepted)
			if got := w.Available(t, c.AccountID); got != 10000 {
				t.Fatalf("available = %d, want 10000", got)
			}
			cloudtest.CheckLedger(t, st)
		})
		t.Run("second_completion_is_refused", func(t *testing.T) {
			c := w.NewCard(t, store.KindCredit, 10000, 0)
			orig := w.Request("1100", c, 3000)
			wantCode(t, authorize(t, w, orig), iso93.ActionApproved)
			for i, want := range []iso93.ActionCode{iso93.ActionApproved, iso93.ActionDuplicateTransmission} {
				adv := w.Request(iso93.MTIAdvice, cloudtest.Card{}, 3000)
				adv.CardBlock, adv.Fingerprint = nil, ""
				adv.Original = &authz.OriginalData{IdempotencyKey: orig.IdempotencyKey}
				if got := authorize(t, w, adv); got.ActionCode != want {
					t.Fatalf("completion %d = %s, want %s", i, got.ActionCode, want)
				}
			}
			if got := w.Available(t, c.AccountID); got != 7000 {
				t.Fatalf("available = %d, want 7000", got)
			}
			cloudtest.CheckLedger(t, st)
		})
	})
}

func TestOfflineAdvice(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := cloudtest.NewWorld(t, st)
		t.Run("posted", func(t *testing.T) {
			c := w.NewCard(t, store.KindPrepaid, 0, 1000)
			adv := w.Request(iso93.MTIAdvice, c, 400)
			adv.FunctionCode = iso93.FunctionPreviousApproval
			resp := authorize(t, w, adv)
			wantCode(t, resp, iso93.ActionApproved)
			adv.MTI = iso93.MTIAdviceRepeat
			if again := authorize(t, w, adv); !sameResponse(again, resp) {
				t.Fatalf("1221 = %+v, 1220 = %+v", again, resp)
			}
			if got := w.Available(t, c.AccountID); got != 600 {
				t.Fatalf("available = %d, want 600", got)
			}
			cloudtest.CheckLedger(t, st)
		})
		t.Run("older_counter_still_accepted", func(t *testing.T) {
			c := w.NewCard(t, store.KindPrepaid, 0, 1000)
			adv := w.Request(iso93.MTIAdvice, c, 100) // encrypted first (offline)
			wantCode(t, authorize(t, w, w.Request("1200", c, 100)), iso93.ActionApproved)
			wantCode(t, authorize(t, w, adv), iso93.ActionApproved)
			cloudtest.CheckLedger(t, st)
		})
		t.Run("blocked_card_recorded_not_dropped", func(t *testing.T) {
			c := w.NewCard(t, store.KindPrepaid, 0, 1000)
			if err := w.Issuer.SetStatus(context.Background(), c.ID, store.CardStolen, "test"); err != nil {
				t.Fatal(err)
			}
			adv := w.Request(iso93.MTIAdvice, c, 100)
			before := count(t, st, "authorizations")
			wantCode(t, authorize(t, w, adv), iso93.ActionStolenCard)
			if count(t, st, "authorizations") != before+1 {
				t.Fatal("the refused advice was not recorded")
			}
			cloudtest.CheckLedger(t, st)
		})
	})
}

func TestTokenFaultIsAnErrorAndRecordsNothing(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := cloudtest.NewWorld(t, st)
	c := w.NewCard(t, store.KindCredit, 1000, 0)
	fault := errors.New("token unavailable")
	w.Decrypter.Err = fault
	r := w.Request("1100", c, 100)
	if _, err := w.Switch.Authorize(context.Background(), r); !errors.Is(err, fault) {
		t.Fatalf("err = %v, want the token fault", err)
	}
	if n := count(t, st, "authorizations"); n != 0 {
		t.Fatalf("%d authorization rows after a fault", n)
	}
	w.Decrypter.Err = nil
	wantCode(t, authorize(t, w, r), iso93.ActionApproved)
}

// sameResponse compares two answers field by field (Response holds a
// byte slice, so it is not comparable with ==).
func sameResponse(a, b authz.Response) bool {
	return a.ActionCode == b.ActionCode && a.ApprovalCode == b.ApprovalCode && a.RRN == b.RRN && bytes.Equal(a.ICCData, b.ICCData)
}
