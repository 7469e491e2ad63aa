package authz_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/firmware-sim/brandhost"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/brandspec"
	"github.com/posgate/posgate/protocol/iso93"
)

// brandWorld is a World whose switch routes BIN 45xxxxxx to the simulator
// "brand" (stand-in up to 5000 per transaction, 8000 per card and day) and
// BIN 46xxxxxx to "down", a host that refuses connections.
type brandWorld struct {
	*cloudtest.World
	sim    *brandhost.Server
	router *routing.Router
}

func newBrandWorld(t *testing.T, st *store.Store) *brandWorld {
	t.Helper()
	w := cloudtest.NewWorld(t, st)
	sim, err := brandhost.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- sim.Serve() }()
	// A port nobody listens on: dials fail at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := l.Addr().String()
	l.Close()
	hosts := map[string]*routing.Client{
		"brand": routing.NewClient(routing.HostConfig{Name: "brand", Addr: sim.Addr().String(), Timeout: 500 * time.Millisecond}, nil),
		"down":  routing.NewClient(routing.HostConfig{Name: "down", Addr: downAddr, Timeout: 500 * time.Millisecond}, nil),
	}
	r := &routing.Router{Store: st, Hosts: hosts, Sealer: cloudtest.SoftVault{}, RetryInterval: time.Millisecond, MaxAttempts: 3}
	t.Cleanup(func() {
		for _, c := range hosts {
			c.Close()
		}
		sim.Close()
		<-served
	})
	w.Switch.Router = r
	err = st.Update(context.Background(), func(tx *store.Tx) error {
		for _, rt := range []store.BINRoute{
			{BINLow: "45000000", BINHigh: "45999999", PANLength: 16, Destination: "brand", StandInTxnLimit: 5000, StandInDailyLimit: 8000},
			{BINLow: "46000000", BINHigh: "46999999", PANLength: 16, Destination: "down"},
		} {
			if _, err := tx.InsertBINRoute(context.Background(), rt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("insert routes: %v", err)
	}
	return &brandWorld{World: w, sim: sim, router: r}
}

// externalCard returns a card of another issuer with the prefix (not in the
// store): only its PAN and expiry exist.
func externalCard(t *testing.T, prefix string) cloudtest.Card {
	t.Helper()
	body := prefix + strings.Repeat("0", 15-len(prefix)-1) + "7"
	d, err := card.LuhnCheckDigit(body)
	if err != nil {
		t.Fatal(err)
	}
	pan, err := card.ParsePAN(body + string(d))
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := card.ParseExpiry(cloudtest.Expiry)
	return cloudtest.Card{PAN: pan, Expiry: exp}
}

func routed(t *testing.T, st *store.Store, rrn string) (store.Authorization, store.RoutedAuthorization, []store.OutboxMessage) {
	t.Helper()
	ctx := context.Background()
	var a store.Authorization
	var ra store.RoutedAuthorization
	var out []store.OutboxMessage
	err := st.View(ctx, func(tx *store.Tx) error {
		id := int64(0)
		for _, c := range rrn {
			id = id*10 + int64(c-'0')
		}
		var err error
		if a, err = tx.Authorization(ctx, id); err != nil {
			return err
		}
		if ra, err = tx.RoutedAuthorization(ctx, id); err != nil {
			return err
		}
		out, err = tx.OutboxFor(ctx, id)
		return err
	})
	if err != nil {
		t.Fatalf("read routed authorization: %v", err)
	}
	return a, ra, out
}

func waitFor(t *testing.T, sim *brandhost.Server, what string, match func(brandhost.Record) bool) brandhost.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := sim.WaitFor(ctx, match)
	if err != nil {
		t.Fatalf("simulator never received %s: %v", what, err)
	}
	return rec
}

// deliverUntil runs outbox passes until cond holds, at most 50 passes.
func deliverUntil(t *testing.T, r *routing.Router, cond func() bool) {
	t.Helper()
	for range 50 {
		if cond() {
			return
		}
		if _, err := r.DeliverDue(context.Background()); err != nil {
			t.Fatalf("deliver outbox: %v", err)
		}
	}
	if !cond() {
		t.Fatal("outbox condition not reached after 50 passes")
	}
}

func TestRoutingDecisions(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newBrandWorld(t, st)
		onUs := w.NewCard(t, store.KindPrepaid, 0, 10_000)
		tests := []struct {
			name   string
			card   cloudtest.Card
			amount int64
			want   iso93.ActionCode
			host   bool // the simulator must have seen it
		}{
			{"on_us_product_decided_here", onUs, 1000, iso93.ActionApproved, false},
			{"brand_host_approves", externalCard(t, "4512"), 1000, iso93.ActionApproved, true},
			{"brand_host_declines_amount_ending_51", externalCard(t, "4513"), 1051, iso93.ActionInsufficientFunds, true},
			{"no_route_is_invalid_card", externalCard(t, "5599"), 1000, iso93.ActionInvalidCardNumber, false},
			{"unavailable_host_without_standin", externalCard(t, "4612"), 1000, iso93.ActionIssuerInoperative, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := len(w.sim.Records())
				r := w.Request(iso93.MTIFinancialRequest, tt.card, tt.amount)
				resp := authorize(t, w.World, r)
				wantCode(t, resp, tt.want)
				if got := len(w.sim.Records()) > before; got != tt.host {
					t.Fatalf("host saw the request: %v, want %v", got, tt.host)
				}
				again := authorize(t, w.World, r)
				if !sameResponse(again, resp) {
					t.Fatalf("repeat answered %+v, first %+v", again, resp)
				}
			})
		}
		rec := w.sim.Records()[0]
		if rec.MaskedPAN != externalCard(t, "4512").PAN.Masked() || rec.Expiry != cloudtest.Expiry {
			t.Fatalf("host got PAN %s expiry %q, want %s %s", rec.MaskedPAN, rec.Expiry, externalCard(t, "4512").PAN.Masked(), cloudtest.Expiry)
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestTimeoutStandsInAndReverses(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newBrandWorld(t, st)
		w.sim.SetMode(brandhost.ModeSilentRequests)
		c := externalCard(t, "4520")
		resp := authorize(t, w.World, w.Request(iso93.MTIFinancialRequest, c, 4000))
		wantCode(t, resp, iso93.ActionApproved)
		a, ra, out := routed(t, st, resp.RRN)
		if !ra.StandIn || ra.HostAction != "" || a.Status != store.AuthCaptured {
			t.Fatalf("routing record %+v, status %s: want a captured stand-in approval", ra, a.Status)
		}
		if len(out) != 2 || out[0].Kind != store.OutboxReversal || out[1].Kind != store.OutboxAdvice {
			t.Fatalf("outbox %+v, want a reversal then an advice", out)
		}
		deliverUntil(t, w.router, func() bool {
			_, _, out := routed(t, st, resp.RRN)
			return out[0].State == store.OutboxDone && out[1].State == store.OutboxDone
		})
		rev := waitFor(t, w.sim, "the timeout reversal", func(r brandhost.Record) bool { return r.MTI == iso93.MTIReversal })
		if rev.ReasonCode != iso93.ReasonTimeoutReversal || rev.Answer != string(iso93.ActionReversalAccepted) ||
			!strings.HasPrefix(rev.OriginalData, iso93.MTIFinancialRequest) {
			t.Fatalf("reversal %+v: want reason 4021, DE 56 of the 1200, answered 400", rev)
		}
		adv := waitFor(t, w.sim, "the stand-in advice", func(r brandhost.Record) bool { return r.MTI == iso93.MTIAdvice })
		if adv.ReasonCode != iso93.ReasonStandIn || adv.ApprovalCode != resp.ApprovalCode || adv.MaskedPAN != c.PAN.Masked() {
			t.Fatalf("advice %+v: want reason 1003, approval %s, PAN %s", adv, resp.ApprovalCode, c.PAN.Masked())
		}

		t.Run("daily_limit_declines_911", func(t *testing.T) {
			resp := authorize(t, w.World, w.Request(iso93.MTIFinancialRequest, c, 4500))
			wantCode(t, resp, iso93.ActionIssuerTimedOut)
		})
		t.Run("transaction_limit_declines_911", func(t *testing.T) {
			resp := authorize(t, w.World, w.Request(iso93.MTIFinancialRequest, externalCard(t, "4521"), 5001))
			wantCode(t, resp, iso93.ActionIssuerTimedOut)
		})
		cloudtest.CheckLedger(t, st)
	})
}

func TestReversalRepeatsUntilAnswered(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		w := newBrandWorld(t, st)
		resp := authorize(t, w.World, w.Request(iso93.MTIAuthorizationRequest, externalCard(t, "4530"), 2000))
		wantCode(t, resp, iso93.ActionApproved)
		a, _, _ := routed(t, st, resp.RRN)

		// The terminal reverses; the host is silent at first.
		w.sim.SetMode(brandhost.ModeSilentAll)
		rev := w.Request(iso93.MTIReversal, cloudtest.Card{}, 2000)
		rev.CardBlock, rev.Fingerprint, rev.KSN = nil, "", nil
		rev.Original = &authz.OriginalData{IdempotencyKey: a.IdempotencyKey}
		wantCode(t, authorize(t, w.World, rev), iso93.ActionReversalAccepted)
		if _, err := w.router.DeliverDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, w.sim, "the first 1420", func(r brandhost.Record) bool { return r.MTI == iso93.MTIReversal && r.Answer == "" })
		w.sim.SetMode(brandhost.ModeAnswer)
		deliverUntil(t, w.router, func() bool {
			_, _, out := routed(t, st, resp.RRN)
			return len(out) == 2 && out[1].State == store.OutboxDone
		})
		got := waitFor(t, w.sim, "the 1421 repeat", func(r brandhost.Record) bool { return r.MTI == iso93.MTIReversalRepeat })
		if got.ReasonCode != iso93.ReasonCustomerCancel || got.Answer != string(iso93.ActionReversalAccepted) {
			t.Fatalf("repeat %+v: want reason 4000 answered 400", got)
		}
		_, _, out := routed(t, st, resp.RRN)
		if out[0].State != store.OutboxCancelled {
			t.Fatalf("safeguard reversal is %s, want cancelled (the host answered)", out[0].State)
		}
		cloudtest.CheckLedger(t, st)
	})
}

func TestOutboxGivesUpAfterMaxAttempts(t *testing.T) {
	st := storetest.OpenSQLite(t)
	w := newBrandWorld(t, st)
	w.sim.SetMode(brandhost.ModeSilentAll)
	resp := authorize(t, w.World, w.Request(iso93.MTIFinancialRequest, externalCard(t, "4540"), 100))
	wantCode(t, resp, iso93.ActionApproved) // stand-in
	deliverUntil(t, w.router, func() bool {
		_, _, out := routed(t, st, resp.RRN)
		return out[0].State == store.OutboxFailed && out[1].State == store.OutboxFailed
	})
	var audits []store.AuditRecord
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		audits, err = tx.Audit(context.Background(), "host_outbox_failed", 10)
		return err
	})
	if err != nil || len(audits) != 2 {
		t.Fatalf("audit records %d (%v), want 2", len(audits), err)
	}
	if strings.Contains(audits[0].Detail, externalCard(t, "4540").PAN.Digits()) {
		t.Fatal("audit record carries the clear PAN")
	}
}

func TestRouterTimeoutErrors(t *testing.T) {
	c := routing.NewClient(routing.HostConfig{Name: "x", Addr: "127.0.0.1:1", Timeout: time.Second}, nil)
	defer c.Close()
	_, err := c.Send(context.Background(), brandspec.NewMessage(iso93.MTIFinancialRequest))
	if !errors.Is(err, routing.ErrHostUnavailable) {
		t.Fatalf("send to a closed port: %v, want ErrHostUnavailable", err)
	}
}
