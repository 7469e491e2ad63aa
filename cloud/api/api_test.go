package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/posgate/posgate/cloud/api"
	"github.com/posgate/posgate/cloud/cloudtest"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
	"github.com/posgate/posgate/protocol/iso93"
)

// env is a running API over a world with keys of each role.
type env struct {
	t      *testing.T
	w      *cloudtest.World
	srv    *httptest.Server
	admin  string
	office string // head office cloudtest.Merchant (OtherMerchant is its branch)
	other  string // head office of a merchant outside that group
	pans   []string
}

func newEnv(t *testing.T, st *store.Store) *env {
	t.Helper()
	ctx := context.Background()
	w := cloudtest.NewWorld(t, st)
	if err := w.Acquirer.CreateMerchant(ctx, "M0000009", "Elsewhere", ""); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Store: st, Issuer: w.Issuer, Acquirer: w.Acquirer, MaxBody: 4096})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, w: w, srv: httptest.NewServer(h)}
	t.Cleanup(e.srv.Close)
	for _, k := range []struct {
		dst      *string
		role     store.APIRole
		merchant string
	}{{&e.admin, store.RoleAdmin, ""}, {&e.office, store.RoleHeadOffice, cloudtest.Merchant}, {&e.other, store.RoleHeadOffice, "M0000009"}} {
		if *k.dst, err = api.CreateKey(ctx, st, k.role, k.merchant); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// card issues a card through the world and remembers its PAN so that
// responses can be scanned for it.
func (e *env) card(kind store.ProductKind, limit, funds int64) cloudtest.Card {
	c := e.w.NewCard(e.t, kind, limit, funds)
	e.pans = append(e.pans, c.PAN.Digits())
	return c
}

// do sends a request and returns the status and decoded body, failing if
// the body holds any PAN of the deck.
func (e *env) do(key, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, p := range e.pans {
		if bytes.Contains(raw, []byte(p)) {
			e.t.Fatalf("%s %s: response contains a clear PAN", method, path)
		}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: body is not a JSON object: %v", method, path, err)
	}
	return resp.StatusCode, out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func TestAuth(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	tests := []struct {
		name       string
		key        string
		method     string
		path       string
		wantStatus int
		wantCode   string
	}{
		{"missing_key", "", "GET", "/api/v1/merchants", 401, "unauthorized"},
		{"unknown_key", "pgk_nope", "GET", "/api/v1/merchants", 401, "unauthorized"},
		{"openapi_needs_no_key", "", "GET", "/api/v1/openapi.json", 200, ""},
		{"admin_route_refuses_head_office", e.office, "GET", "/api/v1/cards", 403, "forbidden"},
		{"negative_file_refuses_head_office", e.office, "GET", "/api/v1/negative-file", 403, "forbidden"},
		{"head_office_terminal_outside_scope", e.other, "POST", "/api/v1/merchants/" + cloudtest.Merchant + "/terminals", 403, "forbidden"},
		{"head_office_transactions_of_foreign_terminal", e.other, "GET", "/api/v1/transactions?terminal=" + cloudtest.Terminal, 403, "forbidden"},
		{"unknown_route", e.admin, "GET", "/api/v1/nothing", 404, "not_found"},
		{"wrong_method", e.admin, "DELETE", "/api/v1/cards", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.method == "POST" {
				body = map[string]any{"id": "TERM0100", "gateway_id": cloudtest.Gateway, "mcc": "5411", "currency": "392"}
			}
			status, out := e.do(tt.key, tt.method, tt.path, body)
			if status != tt.wantStatus || errCode(out) != tt.wantCode {
				t.Fatalf("status %d code %q, want %d %q", status, errCode(out), tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestCardRoutes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		c := e.card(store.KindPrepaid, 0, 10_000)

		t.Run("issue_physical_inactive", func(t *testing.T) {
			status, out := e.do(e.admin, "POST", "/api/v1/cards", map[string]any{"account_id": c.AccountID, "expiry": "3012"})
			if status != 201 || out["status"] != "inactive" || out["virtual"] != false {
				t.Fatalf("status %d body %v", status, out)
			}
			masked, _ := out["masked_pan"].(string)
			if len(masked) != 16 || !strings.Contains(masked, "******") {
				t.Fatalf("masked_pan %q", masked)
			}
			id := num(out["id"])
			status, out = e.do(e.admin, "POST", fmt.Sprintf("/api/v1/cards/%d/status", id), map[string]any{"action": "activate"})
			if status != 200 || out["status"] != "active" {
				t.Fatalf("activate: %d %v", status, out)
			}
		})
		t.Run("issue_virtual_active", func(t *testing.T) {
			status, out := e.do(e.admin, "POST", "/api/v1/cards", map[string]any{"account_id": c.AccountID, "expiry": "3012", "virtual": true})
			if status != 201 || out["status"] != "active" || out["virtual"] != true {
				t.Fatalf("status %d body %v", status, out)
			}
		})
		t.Run("get_and_list", func(t *testing.T) {
			status, out := e.do(e.admin, "GET", fmt.Sprintf("/api/v1/cards/%d", c.ID), nil)
			if status != 200 || num(out["id"]) != c.ID || out["masked_pan"] != c.PAN.Masked() {
				t.Fatalf("get: %d %v", status, out)
			}
			status, out = e.do(e.admin, "GET", fmt.Sprintf("/api/v1/cards?account_id=%d&limit=10", c.AccountID), nil)
			if cards, _ := out["cards"].([]any); status != 200 || len(cards) != 3 {
				t.Fatalf("list: %d %v", status, out)
			}
		})
		t.Run("status_flow", func(t *testing.T) {
			path := fmt.Sprintf("/api/v1/cards/%d/status", c.ID)
			for _, step := range []struct {
				action, want string
				code         int
			}{{"suspend", "suspended", 200}, {"resume", "active", 200}, {"activate", "active", 200}, {"lost", "lost", 200}, {"resume", "", 409}, {"close", "closed", 200}} {
				status, out := e.do(e.admin, "POST", path, map[string]any{"action": step.action})
				if status != step.code || (step.want != "" && out["status"] != step.want) {
					t.Fatalf("%s: %d %v", step.action, status, out)
				}
			}
			status, out := e.do(e.admin, "GET", "/api/v1/negative-file?since_version=0", nil)
			entries, _ := out["entries"].([]any)
			if status != 200 || len(entries) != 4 || num(out["version"]) != 4 {
				t.Fatalf("negative file: %d %v", status, out)
			}
			status, out = e.do(e.admin, "GET", "/api/v1/negative-file?since_version=3", nil)
			entries, _ = out["entries"].([]any)
			if status != 200 || len(entries) != 1 || entries[0].(map[string]any)["reason"] != "closed" {
				t.Fatalf("negative file since 3: %d %v", status, out)
			}
		})
		t.Run("controls_and_reissue", func(t *testing.T) {
			d := e.card(store.KindCredit, 50_000, 0)
			ctl := map[string]any{"locked": true, "per_txn_limit": 1000, "daily_limit": 5000, "blocked_mccs": []string{"7995", "5411"},
				"overseas_allowed": false, "ecommerce_allowed": false}
			status, out := e.do(e.admin, "PUT", fmt.Sprintf("/api/v1/cards/%d/controls", d.ID), ctl)
			k, _ := out["controls"].(map[string]any)
			if status != 200 || k["locked"] != true || num(k["daily_limit"]) != 5000 || fmt.Sprint(k["blocked_mccs"]) != "[5411 7995]" || k["home_country"] != "392" {
				t.Fatalf("put controls: %d %v", status, out)
			}
			status, out = e.do(e.admin, "POST", fmt.Sprintf("/api/v1/cards/%d/reissue", d.ID), map[string]any{"new_pan": true, "expiry": "3112"})
			k, _ = out["controls"].(map[string]any)
			if status != 201 || num(out["replaces_id"]) != d.ID || out["status"] != "inactive" || num(k["per_txn_limit"]) != 1000 {
				t.Fatalf("reissue: %d %v", status, out)
			}
			status, out = e.do(e.admin, "POST", fmt.Sprintf("/api/v1/cards/%d/reissue", d.ID), map[string]any{"expiry": "3212"})
			if status != 200 || num(out["id"]) != d.ID || out["expiry"] != "3212" {
				t.Fatalf("renew: %d %v", status, out)
			}
		})
		bad := []struct {
			name, method, path string
			body               any
			wantStatus         int
			wantCode           string
		}{
			{"issue_unknown_field", "POST", "/api/v1/cards", `{"account_id":1,"expiry":"3012","pan":"4111111111111111"}`, 400, "unknown_field"},
			{"issue_missing_account", "POST", "/api/v1/cards", map[string]any{"expiry": "3012"}, 400, "missing_field"},
			{"issue_bad_expiry", "POST", "/api/v1/cards", map[string]any{"account_id": c.AccountID, "expiry": "3013"}, 400, "invalid_field"},
			{"issue_past_expiry", "POST", "/api/v1/cards", map[string]any{"account_id": c.AccountID, "expiry": "2001"}, 400, "invalid_field"},
			{"issue_unknown_account", "POST", "/api/v1/cards", map[string]any{"account_id": 999999, "expiry": "3012"}, 400, "unknown_reference"},
			{"issue_wrong_type", "POST", "/api/v1/cards", `{"account_id":"one","expiry":"3012"}`, 400, "invalid_field"},
			{"issue_not_json", "POST", "/api/v1/cards", `{"account_id":`, 400, "invalid_json"},
			{"issue_two_objects", "POST", "/api/v1/cards", `{"account_id":1,"expiry":"3012"} {}`, 400, "invalid_json"},
			{"issue_empty_body", "POST", "/api/v1/cards", "", 400, "invalid_json"},
			{"issue_too_large", "POST", "/api/v1/cards", `{"account_id":1,"expiry":"` + strings.Repeat("9", 5000) + `"}`, 413, "body_too_large"},
			{"get_bad_id", "GET", "/api/v1/cards/abc", nil, 400, "invalid_id"},
			{"get_unknown_card", "GET", "/api/v1/cards/999999", nil, 404, "not_found"},
			{"status_unknown_action", "POST", fmt.Sprintf("/api/v1/cards/%d/status", c.ID), map[string]any{"action": "explode"}, 400, "invalid_field"},
			{"status_missing_action", "POST", fmt.Sprintf("/api/v1/cards/%d/status", c.ID), map[string]any{}, 400, "missing_field"},
			{"controls_missing_field", "PUT", fmt.Sprintf("/api/v1/cards/%d/controls", c.ID), map[string]any{"locked": true}, 400, "missing_field"},
			{"controls_bad_mcc", "PUT", fmt.Sprintf("/api/v1/cards/%d/controls", c.ID), map[string]any{"locked": false, "per_txn_limit": 0,
				"daily_limit": 0, "blocked_mccs": []string{"54"}, "overseas_allowed": true, "ecommerce_allowed": true}, 400, "invalid_controls"},
			{"reissue_closed", "POST", fmt.Sprintf("/api/v1/cards/%d/reissue", c.ID), map[string]any{"new_pan": true, "expiry": "3112"}, 409, "transition_not_allowed"},
			{"reissue_close_old_same_pan", "POST", fmt.Sprintf("/api/v1/cards/%d/reissue", c.ID), map[string]any{"close_old": true, "expiry": "3112"}, 400, "invalid_field"},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				status, out := e.do(e.admin, tt.method, tt.path, tt.body)
				if status != tt.wantStatus || errCode(out) != tt.wantCode {
					t.Fatalf("status %d code %q (%v), want %d %q", status, errCode(out), out, tt.wantStatus, tt.wantCode)
				}
			})
		}
	})
}

func TestAccountAndMerchantRoutes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		c := e.card(store.KindPrepaid, 0, 10_000)
		if resp, err := e.w.Switch.Authorize(ctx, e.w.Request(iso93.MTIAuthorizationRequest, c, 1_500)); err != nil || resp.ActionCode != "000" {
			t.Fatalf("authorize: %v %v", resp, err)
		}

		t.Run("account", func(t *testing.T) {
			status, out := e.do(e.admin, "GET", fmt.Sprintf("/api/v1/accounts/%d", c.AccountID), nil)
			holds, _ := out["holds"].([]any)
			if status != 200 || num(out["balance"]) != 10_000 || num(out["held"]) != 1_500 || num(out["available"]) != 8_500 || len(holds) != 1 {
				t.Fatalf("%d %v", status, out)
			}
		})
		t.Run("topup", func(t *testing.T) {
			status, out := e.do(e.admin, "POST", fmt.Sprintf("/api/v1/accounts/%d/topups", c.AccountID), map[string]any{"amount": 2_000})
			a, _ := out["account"].(map[string]any)
			if status != 201 || num(out["transfer_id"]) == 0 || num(a["balance"]) != 12_000 {
				t.Fatalf("%d %v", status, out)
			}
		})
		t.Run("topup_bad_amount", func(t *testing.T) {
			status, out := e.do(e.admin, "POST", fmt.Sprintf("/api/v1/accounts/%d/topups", c.AccountID), map[string]any{"amount": 0})
			if status != 400 || errCode(out) != "invalid_field" {
				t.Fatalf("%d %v", status, out)
			}
		})
		t.Run("topup_unknown_account", func(t *testing.T) {
			status, out := e.do(e.admin, "POST", "/api/v1/accounts/999999/topups", map[string]any{"amount": 1})
			if status != 404 || errCode(out) != "not_found" {
				t.Fatalf("%d %v", status, out)
			}
		})
		t.Run("create_merchant", func(t *testing.T) {
			status, out := e.do(e.admin, "POST", "/api/v1/merchants", map[string]any{"id": "M0000100", "name": "US Shop", "country": "840"})
			if status != 201 || out["country"] != "840" {
				t.Fatalf("%d %v", status, out)
			}
			status, out = e.do(e.admin, "POST", "/api/v1/merchants", map[string]any{"id": "M0000100", "name": "again"})
			if status != 409 || errCode(out) != "already_exists" {
				t.Fatalf("duplicate: %d %v", status, out)
			}
			status, out = e.do(e.admin, "POST", "/api/v1/merchants", map[string]any{"id": "M0000101", "name": "x", "country": "JP"})
			if status != 400 || errCode(out) != "invalid_field" {
				t.Fatalf("bad country: %d %v", status, out)
			}
			status, out = e.do(e.office, "POST", "/api/v1/merchants", map[string]any{"id": "M0000102", "name": "x"})
			if status != 403 {
				t.Fatalf("head office creating a merchant: %d %v", status, out)
			}
		})
		t.Run("head_office_terminal_in_scope", func(t *testing.T) {
			status, out := e.do(e.office, "POST", "/api/v1/merchants/"+cloudtest.OtherMerchant+"/terminals",
				map[string]any{"id": "TERM0200", "gateway_id": cloudtest.Gateway, "mcc": "5812", "currency": "392"})
			if status != 201 || out["merchant_id"] != cloudtest.OtherMerchant {
				t.Fatalf("%d %v", status, out)
			}
			status, out = e.do(e.office, "POST", "/api/v1/merchants/"+cloudtest.OtherMerchant+"/terminals",
				map[string]any{"id": "TERM0201", "gateway_id": cloudtest.Gateway, "mcc": "58", "currency": "392"})
			if status != 400 || errCode(out) != "invalid_field" {
				t.Fatalf("bad mcc: %d %v", status, out)
			}
		})
		t.Run("merchants_scoped", func(t *testing.T) {
			ids := func(key string) []string {
				_, out := e.do(key, "GET", "/api/v1/merchants", nil)
				var ids []string
				ms, _ := out["merchants"].([]any)
				for _, m := range ms {
					ids = append(ids, m.(map[string]any)["id"].(string))
				}
				return ids
			}
			if got := ids(e.office); !slices.Equal(got, []string{cloudtest.Merchant, cloudtest.OtherMerchant}) {
				t.Fatalf("head office sees %v", got)
			}
			if got := ids(e.other); !slices.Equal(got, []string{"M0000009"}) {
				t.Fatalf("other head office sees %v", got)
			}
			if got := ids(e.admin); len(got) != 4 {
				t.Fatalf("admin sees %v", got)
			}
		})
		t.Run("transactions", func(t *testing.T) {
			count := func(key, q string) (int, int) {
				status, out := e.do(key, "GET", "/api/v1/transactions"+q, nil)
				txs, _ := out["transactions"].([]any)
				return status, len(txs)
			}
			for _, tt := range []struct {
				name, key, q string
				status, n    int
			}{
				{"admin_all", e.admin, "", 200, 1},
				{"admin_by_terminal", e.admin, "?terminal=" + cloudtest.Terminal, 200, 1},
				{"admin_other_terminal", e.admin, "?terminal=" + cloudtest.OtherTerminal, 200, 0},
				{"head_office_scope", e.office, "", 200, 1},
				{"other_head_office_sees_none", e.other, "", 200, 0},
				{"from_in_future", e.admin, "?from=2999-01-01T00:00:00Z", 200, 0},
				{"bad_from", e.admin, "?from=yesterday", 400, 0},
				{"bad_limit", e.admin, "?limit=0", 400, 0},
				{"from_after_to", e.admin, "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, 0},
			} {
				t.Run(tt.name, func(t *testing.T) {
					if status, n := count(tt.key, tt.q); status != tt.status || n != tt.n {
						t.Fatalf("status %d, %d transactions; want %d, %d", status, n, tt.status, tt.n)
					}
				})
			}
		})
		t.Run("negative_file_bad_query", func(t *testing.T) {
			status, out := e.do(e.admin, "GET", "/api/v1/negative-file?since_version=-1", nil)
			if status != 400 || errCode(out) != "invalid_query" {
				t.Fatalf("%d %v", status, out)
			}
		})
		cloudtest.CheckLedger(t, st)
	})
}

// TestOpenAPIMatchesRoutes proves that the served OpenAPI document lists
// exactly the routes the handler serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	resp, err := http.Get(e.srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("decode OpenAPI document: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	served := api.Routes()
	slices.Sort(documented)
	slices.Sort(served)
	if !reflect.DeepEqual(documented, served) {
		t.Fatalf("OpenAPI document and routes differ:\ndocumented %v\nserved     %v", documented, served)
	}
	// Every served route answers something other than the fallback 404.
	for _, r := range served {
		method, path, _ := strings.Cut(r, " ")
		path = strings.ReplaceAll(path, "{id}", "1")
		var body any
		if method != "GET" {
			body = "{}"
		}
		status, out := e.do(e.admin, method, path, body)
		if status == 404 && errCode(out) == "not_found" && strings.Contains(fmt.Sprint(out), "no such route") {
			t.Fatalf("%s is documented but not served", r)
		}
		if status == 405 {
			t.Fatalf("%s answers 405", r)
		}
	}
}

func TestCreateKeyRules(t *testing.T) {
	st := storetest.OpenSQLite(t)
	cloudtest.NewWorld(t, st)
	ctx := context.Background()
	tests := []struct {
		name     string
		role     store.APIRole
		merchant string
		ok       bool
	}{
		{"admin", store.RoleAdmin, "", true},
		{"admin_with_merchant", store.RoleAdmin, cloudtest.Merchant, false},
		{"head_office", store.RoleHeadOffice, cloudtest.Merchant, true},
		{"head_office_without_merchant", store.RoleHeadOffice, "", false},
		{"head_office_unknown_merchant", store.RoleHeadOffice, "M404", false},
		{"unknown_role", "root", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := api.CreateKey(ctx, st, tt.role, tt.merchant)
			if (err == nil) != tt.ok {
				t.Fatalf("CreateKey = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			if !strings.HasPrefix(key, api.KeyPrefix) || len(key) < 40 {
				t.Fatalf("key has the wrong form (length %d)", len(key))
			}
			var k store.APIKey
			if err := st.View(ctx, func(tx *store.Tx) error {
				var err error
				k, err = tx.APIKeyByHash(ctx, api.HashKey(key))
				return err
			}); err != nil || k.Role != tt.role {
				t.Fatalf("stored key: %+v %v", k, err)
			}
		})
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	if _, err := api.New(api.Config{MaxBody: -1}); err == nil {
		t.Fatal("New accepted a config without store, issuer and acquirer")
	}
}

// FuzzDecodeControls feeds arbitrary bodies to the strict decoder: a body
// it accepts re-encodes to one it decodes to the same value.
func FuzzDecodeControls(f *testing.F) {
	for _, s := range []string{
		`{"locked":true,"per_txn_limit":100,"daily_limit":1000,"blocked_mccs":["5411"],"overseas_allowed":false,"ecommerce_allowed":true}`,
		`{"locked":false}`, `{}`, `{"x":1}`, `[]`, `{"blocked_mccs":null}`, `{"home_country":"392"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := api.DecodeControls(bytes.NewReader(body))
		if err != nil {
			return
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := api.DecodeControls(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("decode of re-encoded body %s: %v", again, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the value: %s", again)
		}
	})
}
