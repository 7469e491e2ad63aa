package standin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/offline/standin"
)

const fpA = "0622241201382a45912fb22828b3f7db" // test vector fingerprint, not a PAN

func TestDecide(t *testing.T) {
	p := &standin.Policy{
		Default: standin.Rules{FloorLimit: 5000, CardCount: 2, CardAmount: 8000, MerchantExposure: 20000},
		Brands:  map[string]standin.Rules{"amex": {FloorLimit: 3000}},
		Merchants: map[string]standin.Rules{
			"M-BIG": {MerchantExposure: 100000, FloorLimit: 9000},
			"M-OFF": {Disabled: true},
		},
		MerchantBrands: map[string]standin.Rules{"M-BIG/amex": {FloorLimit: 4000}},
		Terminals:      map[string]standin.Rules{"T-KIOSK": {FloorLimit: 1000, CardCount: 1}},
		TotalExposure:  50000,
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	ok := standin.State{NegativeLoaded: true, NegativeAge: time.Hour}
	sale := func(mut func(*standin.Request)) standin.Request {
		r := standin.Request{Scope: standin.Scope{TerminalID: "T1", MerchantID: "M1", Brand: "visa"},
			Fingerprint: fpA, Amount: 1000, Currency: "392"}
		if mut != nil {
			mut(&r)
		}
		return r
	}
	with := func(mut func(*standin.State)) standin.State {
		s := ok
		mut(&s)
		return s
	}
	tests := []struct {
		name  string
		req   standin.Request
		state standin.State
		want  standin.Reason
	}{
		{"approved_under_floor", sale(nil), ok, standin.ReasonApproved},
		{"at_floor", sale(func(r *standin.Request) { r.Amount = 5000 }), ok, standin.ReasonApproved},
		{"over_floor", sale(func(r *standin.Request) { r.Amount = 5001 }), ok, standin.ReasonFloorLimit},
		{"brand_floor", sale(func(r *standin.Request) { r.Brand = "amex"; r.Amount = 3001 }), ok, standin.ReasonFloorLimit},
		{"merchant_floor", sale(func(r *standin.Request) { r.MerchantID = "M-BIG"; r.Amount = 8000 }), ok, standin.ReasonApproved},
		{"merchant_brand_floor", sale(func(r *standin.Request) { r.MerchantID = "M-BIG"; r.Brand = "amex"; r.Amount = 4001 }), ok, standin.ReasonFloorLimit},
		{"terminal_floor", sale(func(r *standin.Request) { r.TerminalID = "T-KIOSK"; r.Amount = 1001 }), ok, standin.ReasonFloorLimit},
		{"terminal_count", sale(func(r *standin.Request) { r.TerminalID = "T-KIOSK" }), with(func(s *standin.State) { s.CardCount = 1 }), standin.ReasonCardCount},
		{"merchant_disabled", sale(func(r *standin.Request) { r.MerchantID = "M-OFF" }), ok, standin.ReasonDisabled},
		{"velocity_count", sale(nil), with(func(s *standin.State) { s.CardCount = 2 }), standin.ReasonCardCount},
		{"velocity_count_below", sale(nil), with(func(s *standin.State) { s.CardCount = 1 }), standin.ReasonApproved},
		{"velocity_amount", sale(nil), with(func(s *standin.State) { s.CardCount = 1; s.CardAmount = 7001 }), standin.ReasonCardAmount},
		{"merchant_exposure", sale(nil), with(func(s *standin.State) { s.MerchantExposure = 19001 }), standin.ReasonMerchantExposure},
		{"total_exposure", sale(func(r *standin.Request) { r.MerchantID = "M-BIG" }), with(func(s *standin.State) { s.TotalExposure = 49500 }), standin.ReasonTotalExposure},
		{"refund", sale(func(r *standin.Request) { r.Refund = true }), ok, standin.ReasonRefund},
		{"other_currency", sale(func(r *standin.Request) { r.Currency = "840" }), ok, standin.ReasonCurrency},
		{"zero_amount", sale(func(r *standin.Request) { r.Amount = 0 }), ok, standin.ReasonInvalidAmount},
		{"negative_hit_first", sale(func(r *standin.Request) { r.Refund = true; r.Chip = standin.ChipTC }), with(func(s *standin.State) { s.Blocked = true; s.NegativeAge = 1000 * time.Hour }), standin.ReasonBlocked},
		{"no_negative_file", sale(nil), standin.State{}, standin.ReasonNoNegativeFile},
		{"negative_file_stale", sale(nil), with(func(s *standin.State) { s.NegativeAge = 25 * time.Hour }), standin.ReasonNegativeStale},
		{"chip_tc_over_floor", sale(func(r *standin.Request) { r.Chip = standin.ChipTC; r.Amount = 7000 }), ok, standin.ReasonApproved},
		{"chip_tc_still_velocity", sale(func(r *standin.Request) { r.Chip = standin.ChipTC }), with(func(s *standin.State) { s.CardCount = 2 }), standin.ReasonCardCount},
		{"chip_tc_still_exposure", sale(func(r *standin.Request) { r.Chip = standin.ChipTC; r.Amount = 7000 }), with(func(s *standin.State) { s.MerchantExposure = 15000 }), standin.ReasonMerchantExposure},
		{"chip_aac", sale(func(r *standin.Request) { r.Chip = standin.ChipAAC }), ok, standin.ReasonCardDeclined},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.req, tt.state)
			if d.Reason != tt.want || d.Approved != (tt.want == standin.ReasonApproved) {
				t.Fatalf("Decide = %+v (%s), want %s", d, d.Reason, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	var p standin.Policy
	r := p.Rules(standin.Scope{TerminalID: "T", MerchantID: "M", Brand: "B"})
	want := standin.Rules{FloorLimit: standin.DefaultFloorLimit, CardCount: standin.DefaultCardCount,
		CardAmount: standin.DefaultCardAmount, Window: standin.DefaultWindow, MerchantExposure: standin.DefaultMerchantExposure}
	if r != want {
		t.Fatalf("zero policy rules = %+v, want %+v", r, want)
	}
	if p.MaxAgeOrDefault() != standin.DefaultMaxAge || p.MaxStalenessOrDefault() != standin.DefaultMaxStaleness ||
		p.CurrencyCode() != "392" || p.TotalExposureOrDefault() != standin.DefaultTotalExposure {
		t.Fatal("zero policy does not apply the documented defaults")
	}
	p.Terminals = map[string]standin.Rules{"T": {Window: 7 * 24 * time.Hour}}
	if p.MaxWindow() != 7*24*time.Hour {
		t.Fatalf("MaxWindow = %s", p.MaxWindow())
	}
}

func TestHeadroom(t *testing.T) {
	p := &standin.Policy{Default: standin.Rules{FloorLimit: 5000, MerchantExposure: 20000}, TotalExposure: 30000,
		Terminals: map[string]standin.Rules{"T-OFF": {Disabled: true}}}
	sc := standin.Scope{TerminalID: "T1", MerchantID: "M1", Brand: "visa"}
	tests := []struct {
		name      string
		scope     standin.Scope
		state     standin.State
		available bool
		reason    standin.Reason
		max       int64
	}{
		{"floor_bound", sc, standin.State{NegativeLoaded: true}, true, standin.ReasonApproved, 5000},
		{"merchant_bound", sc, standin.State{NegativeLoaded: true, MerchantExposure: 18000}, true, standin.ReasonApproved, 2000},
		{"total_bound", sc, standin.State{NegativeLoaded: true, TotalExposure: 29000}, true, standin.ReasonApproved, 1000},
		{"merchant_full", sc, standin.State{NegativeLoaded: true, MerchantExposure: 20000}, false, standin.ReasonMerchantExposure, 0},
		{"total_full", sc, standin.State{NegativeLoaded: true, TotalExposure: 30000}, false, standin.ReasonTotalExposure, 0},
		{"no_negative_file", sc, standin.State{}, false, standin.ReasonNoNegativeFile, 0},
		{"stale", sc, standin.State{NegativeLoaded: true, NegativeAge: 48 * time.Hour}, false, standin.ReasonNegativeStale, 0},
		{"disabled", standin.Scope{TerminalID: "T-OFF"}, standin.State{NegativeLoaded: true}, false, standin.ReasonDisabled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := p.Headroom(tt.scope, tt.state)
			if h.Available != tt.available || h.Reason != tt.reason || h.MaxAmount != tt.max {
				t.Fatalf("Headroom = %+v, want available=%v reason=%s max=%d", h, tt.available, tt.reason, tt.max)
			}
		})
	}
}

func TestValidateReportsEveryBadKey(t *testing.T) {
	p := &standin.Policy{Currency: "JPY", TotalExposure: -1, MaxAge: -time.Second,
		Default:        standin.Rules{FloorLimit: -5},
		Terminals:      map[string]standin.Rules{"T1": {CardCount: -1}},
		MerchantBrands: map[string]standin.Rules{"nobrand": {}}}
	err := p.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad policy")
	}
	for _, want := range []string{`currency "JPY"`, "total_exposure -1", "max_age -1s", "default.floor_limit -5", "terminals.T1.card_count -1", `merchant_brands key "nobrand"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q: %v", want, err)
		}
	}
}

func TestActionCodes(t *testing.T) {
	tests := []struct {
		reason standin.Reason
		code   string
	}{
		{standin.ReasonApproved, "000"}, {standin.ReasonBlocked, "200"}, {standin.ReasonCardDeclined, "100"},
		{standin.ReasonCardCount, "123"}, {standin.ReasonCardAmount, "121"}, {standin.ReasonFloorLimit, "907"},
		{standin.ReasonNegativeStale, "907"}, {standin.ReasonRefund, "907"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.reason.String(), " ", "_"), func(t *testing.T) {
			if got := tt.reason.ActionCode(); got != tt.code {
				t.Fatalf("ActionCode = %s, want %s", got, tt.code)
			}
		})
	}
}
