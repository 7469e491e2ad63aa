package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

// TestNegativeFileAdmin feeds the negative file through the API: a manual
// add by fingerprint for a card not issued here, an add by card id (the
// fingerprint is the card's), removal, and the refusals. Every change is a
// new version that GET /negative-file lists.
func TestNegativeFileAdmin(t *testing.T) {
	storetest.ForEach(t, testNegativeFileAdmin)
}

func testNegativeFileAdmin(t *testing.T, st *store.Store) {
	e := newEnv(t, st)
	ctx := context.Background()
	c := e.card(store.KindCredit, 50_000, 0)
	var cardFP string
	if err := e.w.Store.View(ctx, func(tx *store.Tx) error {
		sc, err := tx.Card(ctx, c.ID)
		cardFP = sc.Fingerprint
		return err
	}); err != nil {
		t.Fatal(err)
	}
	foreign := "0123456789abcdef0123456789abcdef"
	future := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)

	steps := []struct {
		name       string
		key        string
		method     string
		path       string
		body       any
		wantStatus int
		wantCode   string // error code, when failing
		wantFP     string // fingerprint of the entry answered
		wantAction string
		wantReason string
	}{
		{"add_foreign_fingerprint", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": foreign, "reason": "reported by brand", "expires_at": future}, 201, "", foreign, "add", "reported by brand"},
		{"add_by_card_id", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"card_id": c.ID, "reason": "fraud ring", "expires_at": future}, 201, "", cardFP, "add", "fraud ring"},
		{"remove_foreign", e.admin, "DELETE", "/api/v1/negative-file/" + foreign + "?reason=cleared", nil, 200, "", foreign, "remove", "cleared"},
		{"remove_again_not_found", e.admin, "DELETE", "/api/v1/negative-file/" + foreign, nil, 404, "not_found", "", "", ""},
		{"remove_never_listed_not_found", e.admin, "DELETE", "/api/v1/negative-file/ffffffffffffffffffffffffffffffff", nil, 404, "not_found", "", "", ""},
		{"remove_bad_fingerprint", e.admin, "DELETE", "/api/v1/negative-file/ABC", nil, 400, "invalid_id", "", "", ""},
		{"head_office_refused", e.office, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": foreign, "reason": "x", "expires_at": future}, 403, "forbidden", "", "", ""},
		{"head_office_remove_refused", e.office, "DELETE", "/api/v1/negative-file/" + cardFP, nil, 403, "forbidden", "", "", ""},
		{"both_keys_refused", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": foreign, "card_id": c.ID, "reason": "x", "expires_at": future}, 400, "invalid_field", "", "", ""},
		{"neither_key_refused", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"reason": "x", "expires_at": future}, 400, "missing_field", "", "", ""},
		{"upper_case_fingerprint_refused", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": "0123456789ABCDEF0123456789ABCDEF", "reason": "x", "expires_at": future}, 400, "invalid_field", "", "", ""},
		{"missing_reason", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": foreign, "expires_at": future}, 400, "missing_field", "", "", ""},
		{"missing_expiry", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": foreign, "reason": "x"}, 400, "missing_field", "", "", ""},
		{"past_expiry", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": foreign, "reason": "x", "expires_at": time.Now().Add(-time.Minute)}, 400, "invalid_field", "", "", ""},
		{"unknown_card", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"card_id": 999999, "reason": "x", "expires_at": future}, 400, "unknown_reference", "", "", ""},
		{"unknown_field", e.admin, "POST", "/api/v1/negative-file",
			map[string]any{"fingerprint": foreign, "reason": "x", "expires_at": future, "pan": "x"}, 400, "unknown_field", "", "", ""},
		{"remove_card_entry", e.admin, "DELETE", "/api/v1/negative-file/" + cardFP, nil, 200, "", cardFP, "remove", "removed"},
	}
	version := int64(0)
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			status, out := e.do(s.key, s.method, s.path, s.body)
			if status != s.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, s.wantStatus, out)
			}
			if s.wantCode != "" {
				if got := errCode(out); got != s.wantCode {
					t.Fatalf("error code %q, want %q", got, s.wantCode)
				}
				return
			}
			version++
			if num(out["version"]) != version || out["fingerprint"] != s.wantFP || out["action"] != s.wantAction || out["reason"] != s.wantReason {
				t.Fatalf("entry %v, want version %d %s %s (%s)", out, version, s.wantAction, s.wantReason, s.wantFP)
			}
			if exp, _ := time.Parse(time.RFC3339, fmt.Sprint(out["expires_at"])); !exp.Equal(future) {
				t.Fatalf("expires_at %v, want %v", out["expires_at"], future)
			}
		})
	}
	status, out := e.do(e.admin, "GET", "/api/v1/negative-file", nil)
	entries, _ := out["entries"].([]any)
	if status != 200 || num(out["version"]) != version || len(entries) != int(version) {
		t.Fatalf("negative file after the steps: %d %v, want %d entries", status, out, version)
	}
	var linked int64
	if err := e.w.Store.View(ctx, func(tx *store.Tx) error {
		es, err := tx.NegativeEntries(ctx, 1, 1)
		if len(es) == 1 {
			linked = es[0].CardID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if linked != c.ID {
		t.Fatalf("add by card id recorded card %d, want %d", linked, c.ID)
	}
}
