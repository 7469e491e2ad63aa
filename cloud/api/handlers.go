package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/issuing"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/p2pe/card"
)

// Limits of list queries.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// ControlsJSON is a card's cardholder controls on the wire. In a PUT every
// field but home_country is required (pointers tell absent from zero).
type ControlsJSON struct {
	Locked           *bool    `json:"locked"`
	PerTxnLimit      *int64   `json:"per_txn_limit"`
	DailyLimit       *int64   `json:"daily_limit"`
	BlockedMCCs      []string `json:"blocked_mccs"`
	OverseasAllowed  *bool    `json:"overseas_allowed"`
	ECommerceAllowed *bool    `json:"ecommerce_allowed"`
	HomeCountry      string   `json:"home_country,omitempty"`
}

func controlsJSON(k store.Controls) ControlsJSON {
	mccs := k.BlockedMCCs
	if mccs == nil {
		mccs = []string{}
	}
	return ControlsJSON{Locked: &k.Locked, PerTxnLimit: &k.PerTxnLimit, DailyLimit: &k.DailyLimit, BlockedMCCs: mccs,
		OverseasAllowed: &k.OverseasAllowed, ECommerceAllowed: &k.ECommerceAllowed, HomeCountry: k.HomeCountry}
}

// apply sets the fields of c on k, refusing absent required ones.
func (c ControlsJSON) apply(k *store.Controls) error {
	switch {
	case c.Locked == nil:
		return missing("locked")
	case c.PerTxnLimit == nil:
		return missing("per_txn_limit")
	case c.DailyLimit == nil:
		return missing("daily_limit")
	case c.BlockedMCCs == nil:
		return missing("blocked_mccs")
	case c.OverseasAllowed == nil:
		return missing("overseas_allowed")
	case c.ECommerceAllowed == nil:
		return missing("ecommerce_allowed")
	}
	k.Locked, k.PerTxnLimit, k.DailyLimit = *c.Locked, *c.PerTxnLimit, *c.DailyLimit
	k.BlockedMCCs = slices.Sorted(slices.Values(c.BlockedMCCs))
	if len(k.BlockedMCCs) == 0 {
		k.BlockedMCCs = nil
	}
	k.OverseasAllowed, k.ECommerceAllowed = *c.OverseasAllowed, *c.ECommerceAllowed
	if c.HomeCountry != "" {
		k.HomeCountry = c.HomeCountry
	}
	if err := controls.Validate(*k); err != nil {
		return errBadRequest("invalid_controls", "%s", scrub(err.Error()))
	}
	return nil
}

// CardJSON is a card on the wire: never a clear PAN.
type CardJSON struct {
	ID         int64        `json:"id"`
	ProductID  int64        `json:"product_id"`
	AccountID  int64        `json:"account_id"`
	MaskedPAN  string       `json:"masked_pan"`
	Expiry     string       `json:"expiry"`
	Status     string       `json:"status"`
	Virtual    bool         `json:"virtual"`
	ReplacesID int64        `json:"replaces_id,omitempty"`
	CreatedAt  time.Time    `json:"created_at"`
	Controls   ControlsJSON `json:"controls"`
}

// cardReader is what readCard reads; *store.Tx implements it.
type cardReader interface {
	Card(ctx context.Context, id int64) (store.Card, error)
	CardInfo(ctx context.Context, cardID int64) (store.CardInfo, error)
	CardControls(ctx context.Context, cardID int64) (store.Controls, error)
}

// readCard loads a card with its info and controls.
func readCard(ctx context.Context, tx cardReader, id int64) (CardJSON, error) {
	c, err := tx.Card(ctx, id)
	if err != nil {
		return CardJSON{}, err
	}
	info, err := tx.CardInfo(ctx, id)
	if err != nil {
		return CardJSON{}, err
	}
	k, err := tx.CardControls(ctx, id)
	if err != nil {
		return CardJSON{}, err
	}
	return CardJSON{ID: c.ID, ProductID: c.ProductID, AccountID: c.AccountID, MaskedPAN: c.MaskedPAN, Expiry: c.Expiry,
		Status: string(c.Status), Virtual: info.Virtual, ReplacesID: info.ReplacesID, CreatedAt: c.CreatedAt,
		Controls: controlsJSON(k)}, nil
}

func (s *server) cardAnswer(w http.ResponseWriter, r *http.Request, status int, id int64) error {
	var out CardJSON
	if err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		out, err = readCard(r.Context(), tx, id)
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

// pathID parses the {id} path value as a positive integer.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errBadRequest("invalid_id", "the id in the path must be a positive integer")
	}
	return id, nil
}

// queryInt parses an optional non-negative integer query parameter.
func queryInt(r *http.Request, name string, def, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || (max > 0 && n > max) {
		if max > 0 {
			return 0, errBadRequest("invalid_query", "%s must be an integer 0 to %d", name, max)
		}
		return 0, errBadRequest("invalid_query", "%s must be a non-negative integer", name)
	}
	return n, nil
}

func limitOf(r *http.Request) (int, error) {
	n, err := queryInt(r, "limit", defaultLimit, maxLimit)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errBadRequest("invalid_query", "limit must be 1 to %d", maxLimit)
	}
	return int(n), nil
}

func listCards(s *server, w http.ResponseWriter, r *http.Request, _ principal) error {
	acct, err := queryInt(r, "account_id", 0, 0)
	if err != nil {
		return err
	}
	after, err := queryInt(r, "after", 0, 0)
	if err != nil {
		return err
	}
	limit, err := limitOf(r)
	if err != nil {
		return err
	}
	out := struct {
		Cards []CardJSON `json:"cards"`
	}{Cards: []CardJSON{}}
	err = s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		cs, err := tx.Cards(r.Context(), store.CardFilter{AccountID: acct, AfterID: after, Limit: limit})
		if err != nil {
			return err
		}
		for _, c := range cs {
			cj, err := readCard(r.Context(), tx, c.ID)
			if err != nil {
				return err
			}
			out.Cards = append(out.Cards, cj)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type issueRequest struct {
	AccountID *int64        `json:"account_id"`
	Expiry    string        `json:"expiry"`
	Virtual   bool          `json:"virtual"`
	Active    bool          `json:"active"`
	Controls  *ControlsJSON `json:"controls"`
}

func parseExpiry(s string) (card.Expiry, error) {
	if s == "" {
		return card.Expiry{}, missing("expiry")
	}
	e, err := card.ParseExpiry(s)
	if err != nil {
		return card.Expiry{}, errBadRequest("invalid_field", "expiry must be YYMM")
	}
	return e, nil
}

func issueCard(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	var req issueRequest
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	if req.AccountID == nil {
		return missing("account_id")
	}
	exp, err := parseExpiry(req.Expiry)
	if err != nil {
		return err
	}
	if exp.Expired(time.Now()) {
		return errBadRequest("invalid_field", "expiry is in the past")
	}
	o := issuing.IssueOptions{Virtual: req.Virtual, Inactive: !req.Virtual && !req.Active}
	if req.Controls != nil {
		k := store.DefaultControls(0)
		if err := req.Controls.apply(&k); err != nil {
			return err
		}
		o.Controls = &k
	}
	var productID int64
	if err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		a, err := tx.Account(r.Context(), *req.AccountID)
		if errors.Is(err, store.ErrNotFound) {
			return errBadRequest("unknown_reference", "account %d does not exist", *req.AccountID)
		}
		if err != nil {
			return err
		}
		if !a.Kind.Cardholder() || a.ProductID == 0 {
			return errBadRequest("invalid_field", "account %d is not a cardholder account", a.ID)
		}
		productID = a.ProductID
		return nil
	}); err != nil {
		return err
	}
	iss, err := s.cfg.Issuer.Issue(r.Context(), productID, *req.AccountID, exp, o)
	if err != nil {
		return err
	}
	// iss.PAN is dropped here: the API never returns a clear PAN.
	return s.cardAnswer(w, r, http.StatusCreated, iss.ID)
}

func getCard(s *server, w http.ResponseWriter, r *http.Request, _ principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	return s.cardAnswer(w, r, http.StatusOK, id)
}

type statusRequest struct {
	Action string `json:"action"`
}

// statusActions maps a status action to the target status and the statuses
// it may start from (besides the target itself, which is a no-op).
var statusActions = map[string]struct {
	to   store.CardStatus
	from []store.CardStatus
}{
	"activate": {store.CardActive, []store.CardStatus{store.CardInactive}},
	"suspend":  {store.CardSuspended, []store.CardStatus{store.CardActive}},
	"resume":   {store.CardActive, []store.CardStatus{store.CardSuspended}},
	"lost":     {store.CardLost, []store.CardStatus{store.CardInactive, store.CardActive, store.CardSuspended}},
	"stolen":   {store.CardStolen, []store.CardStatus{store.CardInactive, store.CardActive, store.CardSuspended}},
	"close":    {store.CardClosed, []store.CardStatus{store.CardInactive, store.CardActive, store.CardSuspended, store.CardLost, store.CardStolen}},
}

func setCardStatus(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req statusRequest
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	if req.Action == "" {
		return missing("action")
	}
	act, ok := statusActions[req.Action]
	if !ok {
		return errBadRequest("invalid_field", "action must be activate, suspend, resume, lost, stolen or close")
	}
	var cur store.Card
	if err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		cur, err = tx.Card(r.Context(), id)
		return err
	}); err != nil {
		return err
	}
	if cur.Status != act.to && !slices.Contains(act.from, cur.Status) {
		return &Error{Status: http.StatusConflict, Code: "transition_not_allowed",
			Message: req.Action + " is not allowed on a " + string(cur.Status) + " card"}
	}
	if err := s.cfg.Issuer.SetStatus(r.Context(), id, act.to, actor(p)); err != nil {
		return err
	}
	return s.cardAnswer(w, r, http.StatusOK, id)
}

func actor(p principal) string {
	if p.admin() {
		return "api:admin"
	}
	return "api:head_office:" + p.merchant
}

func putControls(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req ControlsJSON
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	var k store.Controls
	if err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		if _, err := tx.Card(r.Context(), id); err != nil {
			return err
		}
		k, err = tx.CardControls(r.Context(), id)
		return err
	}); err != nil {
		return err
	}
	if err := req.apply(&k); err != nil {
		return err
	}
	if err := s.cfg.Issuer.SetControls(r.Context(), k, actor(p)); err != nil {
		return err
	}
	return s.cardAnswer(w, r, http.StatusOK, id)
}

type reissueRequest struct {
	NewPAN   bool   `json:"new_pan"`
	Expiry   string `json:"expiry"`
	CloseOld bool   `json:"close_old"`
}

func reissueCard(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req reissueRequest
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	exp, err := parseExpiry(req.Expiry)
	if err != nil {
		return err
	}
	if req.CloseOld && !req.NewPAN {
		return errBadRequest("invalid_field", "close_old needs new_pan")
	}
	iss, err := s.cfg.Issuer.Reissue(r.Context(), id, issuing.ReissueOptions{NewPAN: req.NewPAN, Expiry: exp, CloseOld: req.CloseOld}, actor(p))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if iss.ID != id {
		status = http.StatusCreated
	}
	return s.cardAnswer(w, r, status, iss.ID)
}

// HoldJSON is an open hold on the wire.
type HoldJSON struct {
	ID        int64     `json:"id"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// AccountJSON is an account on the wire.
type AccountJSON struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	Currency   string     `json:"currency"`
	ProductID  int64      `json:"product_id,omitempty"`
	Balance    int64      `json:"balance"`
	Held       int64      `json:"held"`
	Available  int64      `json:"available"`
	CreditLine int64      `json:"credit_line"`
	Overdraft  int64      `json:"overdraft"`
	Holds      []HoldJSON `json:"holds"`
}

// accountReader is what readAccount reads; *store.Tx implements it.
type accountReader interface {
	Account(ctx context.Context, id int64) (store.Account, error)
	OpenHolds(ctx context.Context, accountID int64) ([]store.Hold, error)
}

// readAccount loads an account with its open holds.
func readAccount(ctx context.Context, tx accountReader, id int64) (AccountJSON, error) {
	a, err := tx.Account(ctx, id)
	if err != nil {
		return AccountJSON{}, err
	}
	hs, err := tx.OpenHolds(ctx, id)
	if err != nil {
		return AccountJSON{}, err
	}
	out := AccountJSON{ID: a.ID, Kind: string(a.Kind), Currency: a.Currency, ProductID: a.ProductID, Balance: a.Balance,
		Held: a.Held, Available: ledger.Available(a), CreditLine: a.CreditLine, Overdraft: a.Overdraft, Holds: []HoldJSON{}}
	for _, h := range hs {
		out.Holds = append(out.Holds, HoldJSON{ID: h.ID, Amount: h.Amount, Currency: h.Currency, ExpiresAt: h.ExpiresAt, CreatedAt: h.CreatedAt})
	}
	return out, nil
}

func (s *server) accountAnswer(w http.ResponseWriter, r *http.Request, status int, id int64, extra func(*AccountJSON) any) error {
	var out AccountJSON
	if err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		out, err = readAccount(r.Context(), tx, id)
		return err
	}); err != nil {
		return err
	}
	if extra != nil {
		writeJSON(w, status, extra(&out))
		return nil
	}
	writeJSON(w, status, out)
	return nil
}

func getAccount(s *server, w http.ResponseWriter, r *http.Request, _ principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	return s.accountAnswer(w, r, http.StatusOK, id, nil)
}

type topUpRequest struct {
	Amount *int64 `json:"amount"`
}

func topUp(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req topUpRequest
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	if req.Amount == nil {
		return missing("amount")
	}
	if *req.Amount <= 0 || *req.Amount > ledger.MaxAmount {
		return errBadRequest("invalid_field", "amount must be 1 to %d minor units", ledger.MaxAmount)
	}
	tid, err := s.cfg.Issuer.TopUp(r.Context(), id, *req.Amount, actor(p))
	if err != nil {
		return err
	}
	return s.accountAnswer(w, r, http.StatusCreated, id, func(a *AccountJSON) any {
		return struct {
			TransferID int64        `json:"transfer_id"`
			Account    *AccountJSON `json:"account"`
		}{tid, a}
	})
}

// TerminalJSON is a terminal on the wire.
type TerminalJSON struct {
	ID         string    `json:"id"`
	MerchantID string    `json:"merchant_id"`
	GatewayID  string    `json:"gateway_id"`
	MCC        string    `json:"mcc"`
	Currency   string    `json:"currency"`
	CreatedAt  time.Time `json:"created_at"`
}

// MerchantJSON is a merchant on the wire.
type MerchantJSON struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	HeadOfficeID string         `json:"head_office_id,omitempty"`
	Country      string         `json:"country"`
	CreatedAt    time.Time      `json:"created_at"`
	Terminals    []TerminalJSON `json:"terminals"`
}

func terminalJSON(t store.Terminal) TerminalJSON {
	return TerminalJSON{ID: t.ID, MerchantID: t.MerchantID, GatewayID: t.GatewayID, MCC: t.MCC, Currency: t.Currency, CreatedAt: t.CreatedAt}
}

// merchantReader is what readMerchant reads; *store.Tx implements it.
type merchantReader interface {
	MerchantCountry(ctx context.Context, merchantID string) (string, error)
	Terminals(ctx context.Context, merchantID string) ([]store.Terminal, error)
}

// readMerchant loads m's country and terminals.
func readMerchant(ctx context.Context, tx merchantReader, m store.Merchant) (MerchantJSON, error) {
	country, err := tx.MerchantCountry(ctx, m.ID)
	if err != nil {
		return MerchantJSON{}, err
	}
	ts, err := tx.Terminals(ctx, m.ID)
	if err != nil {
		return MerchantJSON{}, err
	}
	out := MerchantJSON{ID: m.ID, Name: m.Name, HeadOfficeID: m.HeadOfficeID, Country: country, CreatedAt: m.CreatedAt, Terminals: []TerminalJSON{}}
	for _, t := range ts {
		out.Terminals = append(out.Terminals, terminalJSON(t))
	}
	return out, nil
}

func listMerchants(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	out := struct {
		Merchants []MerchantJSON `json:"merchants"`
	}{Merchants: []MerchantJSON{}}
	err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		ms, err := tx.Merchants(r.Context(), p.merchant)
		if err != nil {
			return err
		}
		for _, m := range ms {
			mj, err := readMerchant(r.Context(), tx, m)
			if err != nil {
				return err
			}
			out.Merchants = append(out.Merchants, mj)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type merchantRequest struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	HeadOfficeID string `json:"head_office_id"`
	Country      string `json:"country"`
}

func createMerchant(s *server, w http.ResponseWriter, r *http.Request, _ principal) error {
	var req merchantRequest
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	switch {
	case req.ID == "":
		return missing("id")
	case req.Name == "":
		return missing("name")
	case req.Country != "" && !controls.ValidCountry(req.Country):
		return errBadRequest("invalid_field", "country must be an ISO 3166-1 numeric code (3 digits)")
	}
	if req.Country == "" {
		req.Country = store.DefaultCountry
	}
	if err := s.cfg.Acquirer.CreateMerchant(r.Context(), req.ID, req.Name, req.HeadOfficeID); err != nil {
		return err
	}
	var out MerchantJSON
	err := s.cfg.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.SetMerchantCountry(r.Context(), req.ID, req.Country); err != nil {
			return err
		}
		m, err := tx.Merchant(r.Context(), req.ID)
		if err != nil {
			return err
		}
		out, err = readMerchant(r.Context(), tx, m)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// inScope reports whether p may act for the merchant: admin always; a head
// office for itself and the merchants whose head office it is.
func inScope(p principal, m store.Merchant) bool {
	return p.admin() || m.ID == p.merchant || m.HeadOfficeID == p.merchant
}

type terminalRequest struct {
	ID        string `json:"id"`
	GatewayID string `json:"gateway_id"`
	MCC       string `json:"mcc"`
	Currency  string `json:"currency"`
}

func createTerminal(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	merchantID := r.PathValue("id")
	var m store.Merchant
	if err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		m, err = tx.Merchant(r.Context(), merchantID)
		return err
	}); errors.Is(err, store.ErrNotFound) {
		if !p.admin() {
			return errForbidden("the merchant is outside this key's scope")
		}
		return errNotFound("merchant")
	} else if err != nil {
		return err
	}
	if !inScope(p, m) {
		return errForbidden("the merchant is outside this key's scope")
	}
	var req terminalRequest
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	switch {
	case req.ID == "":
		return missing("id")
	case req.GatewayID == "":
		return missing("gateway_id")
	case req.MCC == "":
		return missing("mcc")
	case req.Currency == "":
		return missing("currency")
	}
	if err := s.cfg.Acquirer.RegisterTerminal(r.Context(), req.ID, m.ID, req.GatewayID, req.MCC, req.Currency); err != nil {
		return err
	}
	var t store.Terminal
	if err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		t, err = tx.Terminal(r.Context(), req.ID)
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, terminalJSON(t))
	return nil
}

// TransactionJSON is an authorization on the wire: the card by id only.
type TransactionJSON struct {
	ID             int64     `json:"id"`
	RRN            string    `json:"rrn"`
	MTI            string    `json:"mti"`
	GatewayID      string    `json:"gateway_id"`
	TerminalID     string    `json:"terminal_id"`
	STAN           string    `json:"stan"`
	LocalTime      string    `json:"local_time"`
	ProcessingCode string    `json:"processing_code"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	ActionCode     string    `json:"action_code"`
	ApprovalCode   string    `json:"approval_code,omitempty"`
	Status         string    `json:"status"`
	CardID         int64     `json:"card_id,omitempty"`
	OriginalID     int64     `json:"original_id,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errBadRequest("invalid_query", "%s must be an RFC 3339 time", name)
	}
	return t, nil
}

func listTransactions(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	f := store.AuthFilter{TerminalID: r.URL.Query().Get("terminal")}
	if !p.admin() {
		f.Scope = p.merchant
	}
	var err error
	if f.From, err = queryTime(r, "from"); err != nil {
		return err
	}
	if f.To, err = queryTime(r, "to"); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return errBadRequest("invalid_query", "from must be before to")
	}
	if f.Limit, err = limitOf(r); err != nil {
		return err
	}
	if f.BeforeID, err = queryInt(r, "before", 0, 0); err != nil {
		return err
	}
	out := struct {
		Transactions []TransactionJSON `json:"transactions"`
		NextBefore   int64             `json:"next_before,omitempty"`
	}{Transactions: []TransactionJSON{}}
	err = s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		if f.TerminalID != "" && !p.admin() {
			t, err := tx.Terminal(r.Context(), f.TerminalID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			var m store.Merchant
			if err == nil {
				if m, err = tx.Merchant(r.Context(), t.MerchantID); err != nil {
					return err
				}
			}
			if err != nil || !inScope(p, m) {
				return errForbidden("the terminal is outside this key's scope")
			}
		}
		as, err := tx.Authorizations(r.Context(), f)
		if err != nil {
			return err
		}
		for _, a := range as {
			out.Transactions = append(out.Transactions, TransactionJSON{ID: a.ID, RRN: a.RRN, MTI: a.MTI, GatewayID: a.GatewayID,
				TerminalID: a.TerminalID, STAN: a.STAN, LocalTime: a.LocalTime, ProcessingCode: a.ProcessingCode, Amount: a.Amount,
				Currency: a.Currency, ActionCode: string(a.ActionCode), ApprovalCode: a.ApprovalCode, Status: string(a.Status),
				CardID: a.CardID, OriginalID: a.OriginalID, CreatedAt: a.CreatedAt})
		}
		if len(as) == f.Limit {
			out.NextBefore = as[len(as)-1].ID
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// NegativeEntryJSON is a negative-file entry on the wire.
type NegativeEntryJSON struct {
	Version     int64     `json:"version"`
	Fingerprint string    `json:"fingerprint"`
	Action      string    `json:"action"`
	Reason      string    `json:"reason"`
	ExpiresAt   time.Time `json:"expires_at"`
	CreatedAt   time.Time `json:"created_at"`
}

func getNegativeFile(s *server, w http.ResponseWriter, r *http.Request, _ principal) error {
	since, err := queryInt(r, "since_version", 0, 0)
	if err != nil {
		return err
	}
	limit, err := limitOf(r)
	if err != nil {
		return err
	}
	out := struct {
		Version int64               `json:"version"`
		Entries []NegativeEntryJSON `json:"entries"`
		More    bool                `json:"more"`
	}{Entries: []NegativeEntryJSON{}}
	err = s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		if out.Version, err = tx.NegativeFileVersion(r.Context()); err != nil {
			return err
		}
		es, err := tx.NegativeEntries(r.Context(), since, limit)
		if err != nil {
			return err
		}
		for _, e := range es {
			out.Entries = append(out.Entries, NegativeEntryJSON{Version: e.Version, Fingerprint: e.Fingerprint,
				Action: string(e.Action), Reason: e.Reason, ExpiresAt: e.ExpiresAt, CreatedAt: e.CreatedAt})
		}
		out.More = len(es) > 0 && es[len(es)-1].Version < out.Version
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// NegativeAddRequest is the body of POST /negative-file: a manual entry
// for one card, named by its fingerprint (any card, issued here or not) or
// by the center's card id (its fingerprint is looked up), never both.
type NegativeAddRequest struct {
	Fingerprint string     `json:"fingerprint,omitempty"`
	CardID      *int64     `json:"card_id,omitempty"`
	Reason      string     `json:"reason"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// negativePage is how many entries one read takes when the API looks for a
// fingerprint's entry in force (the store keeps no per-fingerprint index
// of the file, so that look-up reads the whole file, page by page).
const negativePage = 10_000

// validFingerprint reports a PAN fingerprint as the negative file keys
// it: 32 lower-case hex digits.
func validFingerprint(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validReason reports a reason of 1–64 printable ASCII characters.
func validReason(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// negativeReader is what entryInForce reads; *store.Tx implements it.
type negativeReader interface {
	NegativeEntries(ctx context.Context, since int64, limit int) ([]store.NegativeEntry, error)
}

// entryInForce returns the latest negative-file entry of fingerprint (its
// state in force), or ok false when it has none. It reads the file in
// pages inside tx.
func entryInForce(ctx context.Context, tx negativeReader, fingerprint string) (store.NegativeEntry, bool, error) {
	var (
		last  store.NegativeEntry
		found bool
	)
	for since := int64(0); ; {
		page, err := tx.NegativeEntries(ctx, since, negativePage)
		if err != nil {
			return store.NegativeEntry{}, false, err
		}
		if len(page) == 0 {
			return last, found, nil
		}
		for _, e := range page {
			if e.Fingerprint == fingerprint {
				last, found = e, true
			}
		}
		since = page[len(page)-1].Version
	}
}

func negativeJSON(e store.NegativeEntry) NegativeEntryJSON {
	return NegativeEntryJSON{Version: e.Version, Fingerprint: e.Fingerprint, Action: string(e.Action), Reason: e.Reason,
		ExpiresAt: e.ExpiresAt, CreatedAt: e.CreatedAt}
}

// addNegativeEntry appends a manual add to the negative file. The entry
// takes the next version and reaches the gateways with their next sync;
// the center's negative-file server removes it again once expires_at has
// passed.
func addNegativeEntry(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	var req NegativeAddRequest
	if err := decode(r, w, s.cfg.MaxBody, &req); err != nil {
		return err
	}
	switch {
	case req.Fingerprint == "" && req.CardID == nil:
		return errBadRequest("missing_field", "one of fingerprint and card_id is required")
	case req.Fingerprint != "" && req.CardID != nil:
		return errBadRequest("invalid_field", "give fingerprint or card_id, not both")
	case req.Fingerprint != "" && !validFingerprint(req.Fingerprint):
		return errBadRequest("invalid_field", "fingerprint must be 32 lower-case hex digits")
	case req.CardID != nil && *req.CardID < 1:
		return errBadRequest("invalid_field", "card_id must be a positive integer")
	case req.Reason == "":
		return missing("reason")
	case !validReason(req.Reason):
		return errBadRequest("invalid_field", "reason must be 1 to 64 printable ASCII characters")
	case req.ExpiresAt == nil:
		return missing("expires_at")
	case !req.ExpiresAt.After(time.Now()):
		return errBadRequest("invalid_field", "expires_at must be in the future")
	}
	e := store.NegativeEntry{Fingerprint: req.Fingerprint, Action: store.NegativeAdd, Reason: req.Reason, ExpiresAt: req.ExpiresAt.UTC()}
	err := s.cfg.Store.Update(r.Context(), func(tx *store.Tx) error {
		if req.CardID != nil {
			c, err := tx.Card(r.Context(), *req.CardID)
			if errors.Is(err, store.ErrNotFound) {
				return errBadRequest("unknown_reference", "card %d does not exist", *req.CardID)
			}
			if err != nil {
				return err
			}
			e.Fingerprint, e.CardID = c.Fingerprint, c.ID
		} else {
			c, err := tx.CardByFingerprint(r.Context(), e.Fingerprint)
			switch {
			case err == nil:
				e.CardID = c.ID
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		v, err := tx.AddNegativeEntry(r.Context(), e)
		if err != nil {
			return err
		}
		e.Version, e.CreatedAt = v, tx.Now()
		_, err = tx.InsertAudit(r.Context(), store.AuditRecord{Kind: "negative_file", Actor: actor(p),
			Detail: fmt.Sprintf("add version %d: %s until %s", v, e.Reason, e.ExpiresAt.Format(time.RFC3339))})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, negativeJSON(e))
	return nil
}

// removeNegativeEntry appends a removal for the fingerprint in the path,
// which must be on the file (its entry in force an add).
func removeNegativeEntry(s *server, w http.ResponseWriter, r *http.Request, p principal) error {
	fp := r.PathValue("fingerprint")
	if !validFingerprint(fp) {
		return errBadRequest("invalid_id", "the fingerprint must be 32 lower-case hex digits")
	}
	reason := r.URL.Query().Get("reason")
	if reason == "" {
		reason = "removed"
	} else if !validReason(reason) {
		return errBadRequest("invalid_query", "reason must be 1 to 64 printable ASCII characters")
	}
	var e store.NegativeEntry
	err := s.cfg.Store.Update(r.Context(), func(tx *store.Tx) error {
		cur, ok, err := entryInForce(r.Context(), tx, fp)
		if err != nil {
			return err
		}
		if !ok || cur.Action != store.NegativeAdd {
			return errNotFound("negative-file entry")
		}
		e = store.NegativeEntry{Fingerprint: fp, Action: store.NegativeRemove, Reason: reason, CardID: cur.CardID, ExpiresAt: cur.ExpiresAt}
		v, err := tx.AddNegativeEntry(r.Context(), e)
		if err != nil {
			return err
		}
		e.Version, e.CreatedAt = v, tx.Now()
		_, err = tx.InsertAudit(r.Context(), store.AuditRecord{Kind: "negative_file", Actor: actor(p),
			Detail: fmt.Sprintf("remove version %d: %s", v, reason)})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, negativeJSON(e))
	return nil
}

// The store's transaction serves every read the handlers make.
var (
	_ cardReader     = (*store.Tx)(nil)
	_ accountReader  = (*store.Tx)(nil)
	_ merchantReader = (*store.Tx)(nil)
	_ negativeReader = (*store.Tx)(nil)
)
