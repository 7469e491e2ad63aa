package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

// authReads is what the switch's transaction reads for one card, in the
// order it reads it, without Prefetch's help.
type authReads struct {
	Auth     error
	Terminal store.Terminal
	Fresh    bool
	Card     store.Card
	Account  store.Account
	Controls store.Controls
	Total    int64
	Allows   bool
	Country  string
	Clearing int64
}

func readAll(ctx context.Context, tx *store.Tx, r store.AuthReads, productID int64) (authReads, error) {
	var out authReads
	var err error
	_, out.Auth = tx.AuthorizationByKey(ctx, r.Key)
	if out.Terminal, err = tx.Terminal(ctx, r.TerminalID); err != nil {
		return out, err
	}
	if out.Fresh, err = tx.AdvanceDeviceCounter(ctx, r.Device, r.Counter); err != nil {
		return out, err
	}
	if out.Card, err = tx.CardByFingerprint(ctx, r.Fingerprint); err != nil {
		return out, err
	}
	if out.Account, err = tx.LockAccount(ctx, out.Card.AccountID); err != nil {
		return out, err
	}
	if out.Controls, err = tx.CardControls(ctx, out.Card.ID); err != nil {
		return out, err
	}
	if out.Total, err = tx.ApprovedTotal(ctx, out.Card.ID, r.DayFrom, r.DayTo); err != nil {
		return out, err
	}
	if out.Allows, err = tx.ProductAllowsMerchant(ctx, productID, r.MerchantID); err != nil {
		return out, err
	}
	if out.Country, err = tx.MerchantCountry(ctx, r.MerchantID); err != nil {
		return out, err
	}
	out.Clearing, err = tx.LockFreeAccountByRef(ctx, r.ClearingRefs)
	return out, err
}

// TestPrefetchAnswersAsTheDatabase checks that every method Prefetch
// answers for gives what the database gives, for a card with and without
// stored controls, and that the reserved ids are used by the inserts.
func TestPrefetchAnswersAsTheDatabase(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		for _, withControls := range []bool{false, true} {
			c := w.NewCard(t, store.KindCredit, 50_000, 0)
			if withControls {
				if err := st.Update(ctx, func(tx *store.Tx) error {
					k := store.DefaultControls(c.ID)
					k.DailyLimit, k.BlockedMCCs = 40_000, []string{"5999", "7995"}
					return tx.PutCardControls(ctx, k)
				}); err != nil {
					t.Fatal(err)
				}
			}
			// One sale so the day's total and the clearing shards exist.
			if resp, err := w.Switch.Authorize(ctx, w.Request("1200", c, 700)); err != nil || resp.ActionCode != "000" {
				t.Fatalf("first sale: %+v, %v", resp, err)
			}
			fp, _ := w.Vault.Fingerprint(c.PAN)
			day := time.Now().UTC().Truncate(24 * time.Hour)
			var product int64
			if err := st.View(ctx, func(tx *store.Tx) error {
				sc, err := tx.Card(ctx, c.ID)
				product = sc.ProductID
				return err
			}); err != nil {
				t.Fatal(err)
			}
			r := store.AuthReads{Key: "no-such-key", TerminalID: cloudtest.Terminal, Device: "prefetch-dev", Counter: 7,
				Fingerprint: fp, DayFrom: day, DayTo: day.AddDate(0, 0, 1), MerchantID: cloudtest.Merchant,
				ClearingRefs: ledger.ClearingRefs(cloudtest.Merchant, cloudtest.Currency)}
			var direct, fetched authReads
			for i, pre := range []bool{false, true} {
				r.Device = []string{"direct-dev", "prefetch-dev"}[i]
				var got authReads
				err := st.Update(ctx, func(tx *store.Tx) error {
					if pre {
						if err := tx.Prefetch(ctx, r); err != nil {
							return err
						}
					}
					var err error
					got, err = readAll(ctx, tx, r, product)
					return err
				})
				if err != nil {
					t.Fatalf("prefetch=%v: %v", pre, err)
				}
				if pre {
					fetched = got
				} else {
					direct = got
				}
			}
			if !errors.Is(direct.Auth, store.ErrNotFound) || !errors.Is(fetched.Auth, store.ErrNotFound) {
				t.Fatalf("unknown key: direct %v, prefetched %v", direct.Auth, fetched.Auth)
			}
			direct.Auth, fetched.Auth = nil, nil
			if !reflect.DeepEqual(direct, fetched) {
				t.Fatalf("controls=%v: prefetched answers differ:\n direct   %+v\n prefetch %+v", withControls, direct, fetched)
			}
			if withControls && fetched.Total != 700 {
				t.Fatalf("day total = %d, want 700", fetched.Total)
			}
		}
		// Reserved ids are what the inserts return.
		c := w.NewCard(t, store.KindCredit, 50_000, 0)
		err := st.Update(ctx, func(tx *store.Tx) error {
			if err := tx.Prefetch(ctx, store.AuthReads{Reserve: []store.Table{store.TableHolds, store.TableAuthorizations}}); err != nil {
				return err
			}
			hold, err := ledger.Hold(ctx, tx, c.AccountID, 100, cloudtest.Currency, tx.Now().Add(time.Hour))
			if err != nil {
				return err
			}
			id, rrn, err := tx.InsertAuthorization(ctx, store.Authorization{IdempotencyKey: "reserved-ids", GatewayID: cloudtest.Gateway,
				TerminalID: cloudtest.Terminal, STAN: "000001", MTI: "1100", ProcessingCode: "000000", Amount: 100,
				Currency: cloudtest.Currency, CardID: c.ID, AccountID: c.AccountID, ActionCode: "000", HoldID: hold, Status: store.AuthHeld})
			if err != nil {
				return err
			}
			if rrn != store.RRN(id) {
				return errors.New("RRN " + rrn + " is not the id's")
			}
			a, err := tx.AuthorizationByKey(ctx, "reserved-ids")
			if err != nil {
				return err
			}
			if a.ID != id || a.HoldID != hold || a.RRN != rrn {
				t.Errorf("stored row %+v, want id %d hold %d rrn %s", a, id, hold, rrn)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		cloudtest.CheckLedger(t, st)
	})
}

// TestDeferredWriteFailureFailsTheTransaction checks that a deferred write
// that fails (a duplicate idempotency key, an update of a missing row)
// fails the statement or commit it is sent with, and nothing of the
// transaction stays.
func TestDeferredWriteFailureFailsTheTransaction(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := cloudtest.NewWorld(t, st)
		c := w.NewCard(t, store.KindCredit, 50_000, 0)
		resp, err := w.Switch.Authorize(ctx, w.Request("1100", c, 100))
		if err != nil || resp.ActionCode != "000" {
			t.Fatalf("first: %+v, %v", resp, err)
		}
		var key string
		if err := st.View(ctx, func(tx *store.Tx) error {
			as, err := tx.Authorizations(ctx, store.AuthFilter{Limit: 1})
			if len(as) == 1 {
				key = as[0].IdempotencyKey
			}
			return err
		}); err != nil || key == "" {
			t.Fatalf("read key: %v", err)
		}
		count := func() int64 {
			var n int64
			if err := st.View(ctx, func(tx *store.Tx) error {
				var err error
				n, err = tx.Count(ctx, "audit")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		for _, then := range []string{"commit", "read"} {
			err := st.Update(ctx, func(tx *store.Tx) error {
				if err := tx.Prefetch(ctx, store.AuthReads{Reserve: []store.Table{store.TableAuthorizations}}); err != nil {
					return err
				}
				if err := tx.AppendAudit(ctx, store.AuditRecord{Kind: "test", Actor: "test", Detail: "must not stay"}); err != nil {
					return err
				}
				if _, _, err := tx.InsertAuthorization(ctx, store.Authorization{IdempotencyKey: key, GatewayID: cloudtest.Gateway,
					TerminalID: cloudtest.Terminal, STAN: "000002", MTI: "1100", ProcessingCode: "000000", Amount: 1,
					Currency: cloudtest.Currency, ActionCode: "000", Status: store.AuthDeclined}); err != nil {
					return err
				}
				if then == "read" {
					_, err := tx.Terminal(ctx, cloudtest.Terminal)
					return err
				}
				return nil
			})
			if !errors.Is(err, store.ErrDuplicate) {
				t.Fatalf("%s: err = %v, want ErrDuplicate", then, err)
			}
		}
		err = st.Update(ctx, func(tx *store.Tx) error {
			if err := tx.AppendAudit(ctx, store.AuditRecord{Kind: "test", Actor: "test", Detail: "must not stay"}); err != nil {
				return err
			}
			return tx.SetAccountsAmounts(ctx, store.AccountAmounts{ID: 1 << 40})
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update of a missing account: err = %v, want ErrNotFound", err)
		}
		if got := count(); got != before {
			t.Fatalf("audit rows %d, want %d: a failed transaction left rows", got, before)
		}
		// The store keeps serving.
		if resp, err := w.Switch.Authorize(ctx, w.Request("1100", c, 100)); err != nil || resp.ActionCode != "000" {
			t.Fatalf("after: %+v, %v", resp, err)
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestReadRefusesWrites(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		err := st.Read(ctx, func(tx *store.Tx) error {
			return tx.InsertGateway(ctx, store.Gateway{ID: "GW-READ"})
		})
		if err == nil {
			t.Fatal("a write through Read succeeded")
		}
		if err := st.Read(ctx, func(tx *store.Tx) error {
			return tx.Prefetch(ctx, store.AuthReads{Device: "d", Counter: 1})
		}); err == nil && st.Dialect() == store.Postgres {
			t.Fatal("a prefetch that writes succeeded through Read")
		}
		if gatewayExists(t, st, "GW-READ") {
			t.Fatal("the gateway written through Read exists")
		}
	})
}
