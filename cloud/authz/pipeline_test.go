package authz_test

import (
	"context"
	"encoding/hex"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/protocol/iso93"
)

// tracer records the checks a switch runs.
type tracer struct {
	mu    sync.Mutex
	names []string
}

func trace(s *authz.Switch) *tracer {
	tr := &tracer{}
	authz.SetTrace(s, func(name string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.names = append(tr.names, name)
	})
	return tr
}

func (tr *tracer) take() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := tr.names
	tr.names = nil
	return n
}

func names(cs []authz.Check) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

// TestPipelineOrder proves that the checks run in the documented order
// (docs/authorization.md) and that the first decline ends the request:
// each request below fails exactly one check, and the trace of checks run
// is the pipeline up to that check, which gave the action code and audit
// kind. An approval runs every check.
func TestPipelineOrder(t *testing.T) {
	ctx := context.Background()
	plain := cloudtest.NewWorld(t, storetest.OpenSQLite(t))
	plain.Switch.Router = &routing.Router{Store: plain.Store}
	chip := newChipWorld(t, storetest.OpenSQLite(t))
	pin := newPINWorld(t, storetest.OpenSQLite(t), 0)
	type world struct {
		*cloudtest.World
		tr *tracer
	}
	worlds := map[string]world{"plain": {plain, trace(plain.Switch)}, "chip": {chip.World, trace(chip.Switch)}, "pin": {pin.World, trace(pin.Switch)}}
	setStatus := func(w *cloudtest.World, c cloudtest.Card, s store.CardStatus) {
		if err := w.Issuer.SetStatus(ctx, c.ID, s, "test"); err != nil {
			t.Fatalf("set status: %v", err)
		}
	}
	tests := []struct {
		name  string
		world string
		kind  store.ProductKind
		funds int64
		// edit makes the request fail one check.
		edit  func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request)
		check string
		want  iso93.ActionCode
		audit string
	}{
		{"validate", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) { r.Amount = 0 },
			"validate", iso93.ActionInvalidAmount, "request_invalid"},
		{"terminal", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) { r.TerminalID = "NOPE0001" },
			"terminal", iso93.ActionNotPermittedToTerminal, "terminal_refused"},
		{"card_block", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			r.CardBlock = []byte("garbage")
		},
			"card block", iso93.ActionFormatError, "card_block_invalid"},
		{"route", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			other := externalCard(t, "4540")
			r.CardBlock = cloudtest.Block(other.PAN, other.Expiry, "dev-route", 1)
			r.Fingerprint, _ = w.Vault.Fingerprint(other.PAN)
		}, "route", iso93.ActionInvalidCardNumber, "no_route"},
		{"replay", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			first := w.Request(iso93.MTIFinancialRequest, c, 100)
			wantCode(t, authorize(t, w, first), iso93.ActionApproved)
			r.CardBlock = first.CardBlock
		}, "replay", iso93.ActionDuplicateTransmission, "ksn_replay"},
		{"fingerprint", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			r.Fingerprint = strings.Repeat("0", 32)
		}, "fingerprint", iso93.ActionFormatError, "fingerprint_mismatch"},
		{"de55", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) { r.ICCData = []byte{0x9F} },
			"de55", iso93.ActionFormatError, "de55_invalid"},
		{"card", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			pan, _ := card.ParsePAN("4111999999999999")
			r.CardBlock = cloudtest.Block(pan, c.Expiry, "dev-unknown", 1)
			r.Fingerprint, _ = w.Vault.Fingerprint(pan)
		}, "card", iso93.ActionInvalidCardNumber, "declined"},
		{"card_status", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			setStatus(w, c, store.CardLost)
		},
			"card status", iso93.ActionLostCard, "declined"},
		{"expiry", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			r.LocalTime = "310101120000"
		},
			"expiry", iso93.ActionExpiredCard, "declined"},
		{"currency", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) { r.Currency = "840" },
			"currency", iso93.ActionNotPermittedToCardholder, "declined"},
		{"house_card", "plain", store.KindHouse, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			r.GatewayID, r.TerminalID = cloudtest.OtherGateway, cloudtest.OtherTerminal
		}, "house card", iso93.ActionNotPermittedToCardholder, "declined"},
		{"controls", "plain", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			k := store.DefaultControls(c.ID)
			k.PerTxnLimit = 50
			if err := w.Issuer.SetControls(ctx, k, "test"); err != nil {
				t.Fatalf("set controls: %v", err)
			}
		}, "controls", iso93.ActionExceedsAmountLimit, "declined"},
		{"fallback", "chip", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			setSecurity(t, w.Store, c, func(p *store.CardSecurity) { p.AllowFallback = false })
			r.Fallback = true
		}, "fallback", iso93.ActionNotPermittedToCardholder, "fallback_refused"},
		{"chip", "chip", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			d := arqc(t, chipCard(t, c), r.Amount, "")
			i := strings.Index(hex.EncodeToString(d), "9f2608") / 2
			d[i+3] ^= 0x01
			r.ICCData = d
		}, "chip", iso93.ActionSuspectedFraud, "arqc_invalid"},
		{"cvv", "chip", store.KindCredit, 0, func(t *testing.T, w *cloudtest.World, c cloudtest.Card, r *authz.Request) {
			setSecurity(t, w.Store, c, func(p *store.CardSecurity) { p.CVV2 = store.CVV2Required })
		}, "cvv", iso93.ActionDoNotHonour, "cvv2_missing"},
		{"pin", "pin", store.KindCredit, 0, nil, "pin", iso93.ActionIncorrectPIN, "pin_incorrect"},
		{"funds", "plain", store.KindPrepaid, 50, nil, "funds", iso93.ActionInsufficientFunds, "declined"},
		{"approved", "plain", store.KindCredit, 0, nil, "", iso93.ActionApproved, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := worlds[tt.world]
			c := w.NewCard(t, tt.kind, 100_000, tt.funds)
			var r authz.Request
			if tt.world == "pin" {
				pin.enrol(t, c)
				r = pin.request(t, c, "9999")
			} else {
				r = w.Request(iso93.MTIFinancialRequest, c, 100)
			}
			if tt.edit != nil {
				tt.edit(t, w.World, c, &r)
			}
			before := 0
			if tt.audit != "" {
				before = auditKinds(t, w.Store, tt.audit)
			}
			w.tr.take()
			wantCode(t, authorize(t, w.World, r), tt.want)
			checks := authz.PipelineOf(r)
			got, all := w.tr.take(), names(checks)
			want := all
			if tt.check != "" {
				i := slices.Index(all, tt.check)
				want = all[:i+1]
				if !slices.Contains(checks[i].Codes, string(tt.want)) {
					t.Errorf("check %q declined %s, not among its documented codes %q", tt.check, tt.want, checks[i].Codes)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("checks run %q\nwant %q", got, want)
			}
			if tt.audit != "" && auditKinds(t, w.Store, tt.audit) != before+1 {
				t.Fatalf("no new %s audit record", tt.audit)
			}
		})
	}
}

// TestPipelineApprovals proves that an approval of each kind of money
// request runs every check of its pipeline, in order.
func TestPipelineApprovals(t *testing.T) {
	w := cloudtest.NewWorld(t, storetest.OpenSQLite(t))
	tr := trace(w.Switch)
	c := w.NewCard(t, store.KindPrepaid, 0, 10_000)
	advice := w.Request(iso93.MTIAdvice, c, 100)
	advice.FunctionCode = iso93.FunctionPreviousApproval
	for _, tt := range []struct {
		name string
		r    authz.Request
	}{
		{"authorization_1100", w.Request(iso93.MTIAuthorizationRequest, c, 100)},
		{"financial_1200", w.Request(iso93.MTIFinancialRequest, c, 100)},
		{"refund_1200", refundOf(w, c, 100)},
		{"offline_advice_1220", advice},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr.take()
			wantCode(t, authorize(t, w, tt.r), iso93.ActionApproved)
			if got, want := tr.take(), names(authz.PipelineOf(tt.r)); !slices.Equal(got, want) || len(want) == 0 {
				t.Fatalf("checks run %q\nwant %q", got, want)
			}
		})
	}
	cloudtest.CheckLedger(t, w.Store)
}

// TestPipelineDocumented checks that docs/authorization.md lists every
// pipeline's checks in the order they run, with their phase and the
// action codes they decide: each pipeline's table (under a "### " heading
// naming the pipeline in backquotes) has one row per check: order, name
// in backquotes, "before" or "in", what it reads, the codes ("—" for
// none).
func TestPipelineDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/authorization.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| *\\d+ *\\| *`([^`]+)` *\\| *(before|in) *\\|[^|]*\\| *([^|]*?) *\\|$")
	for name, checks := range authz.Pipelines() {
		heading := regexp.MustCompile("(?m)^### .*`" + name + "`.*$").FindIndex(doc)
		if heading == nil {
			t.Errorf("docs/authorization.md has no section on the %s pipeline", name)
			continue
		}
		var listed, want []string
		for _, line := range strings.Split(string(doc[heading[1]:]), "\n") {
			if strings.HasPrefix(line, "### ") || strings.HasPrefix(line, "## ") {
				break
			}
			if m := row.FindStringSubmatch(line); m != nil {
				listed = append(listed, m[1]+" "+m[2]+" "+m[3])
			} else if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| #") {
				t.Errorf("docs/authorization.md, %s pipeline: row %q not in the form the test reads", name, line)
			}
		}
		for _, c := range checks {
			codes := strings.Join(c.Codes, ", ")
			if codes == "" {
				codes = "—"
			}
			want = append(want, c.Name+" "+strings.Fields(c.Phase)[0]+" "+codes)
		}
		if !slices.Equal(listed, want) {
			t.Errorf("docs/authorization.md lists the %s pipeline as\n %q\nthe code runs\n %q", name, listed, want)
		}
	}
}
