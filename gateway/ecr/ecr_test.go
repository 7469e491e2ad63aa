package ecr_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/posgate/posgate/internal/poll"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/device/devicetest"
	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/terminal/transport"
)

// waitLimit bounds a test's wait on a condition (poll.Until).
const waitLimit = 10 * time.Second

const (
	keyA = "pos-a-secret-key"
	keyB = "pos-b-secret-key"
)

func hash(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }

// logBuf collects log output so tests can check it holds no secrets.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type env struct {
	t     *testing.T
	url   string
	srv   *ecr.Server
	mgr   *device.Manager
	terms map[string]*devicetest.Terminal
	plugs map[string]*devicetest.Plug
	logs  *logBuf
}

// newEnv runs two fake terminals (T1 for POS A, T2 for POS B) over TCP, a
// device manager with a Forwarder whose uplink approves, and the POS API
// over HTTP.
func newEnv(t *testing.T, resolve time.Duration, terms map[string]*devicetest.Terminal) *env {
	t.Helper()
	e := &env{t: t, terms: terms, plugs: map[string]*devicetest.Plug{}, logs: &logBuf{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var devs []device.DeviceConfig
	for _, id := range []string{"T1", "T2"} {
		if terms[id] == nil {
			terms[id] = &devicetest.Terminal{}
		}
		e.plugs[id] = devicetest.NewPlug(t, terms[id])
		devs = append(devs, device.DeviceConfig{ID: id, DeviceConfig: transport.DeviceConfig{Medium: transport.TCP, Address: e.plugs[id].Addr}})
	}
	var srv *ecr.Server
	mgr, err := device.New(device.Config{
		Devices:        devs,
		Handler:        &forward.Forwarder{Uplink: devicetest.UplinkFunc(devicetest.Approve), Logger: log},
		Logger:         log,
		ReconnectMin:   5 * time.Millisecond,
		ReconnectMax:   50 * time.Millisecond,
		ResolveTimeout: resolve,
		OnResult:       func(r device.TxnResult) { srv.OnResult(r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = ecr.New(ecr.Config{
		MerchantName: "Test Shop",
		Clients: []ecr.Client{
			{ID: "POSA", KeySHA256: hash(keyA), Terminals: []string{"T1", "T9"}},
			{ID: "POSB", KeySHA256: hash(keyB), Terminals: []string{"T2"}},
		},
	}, mgr, ecr.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mgr.Run(ctx); close(done) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		cancel()
		<-done
		if strings.Contains(e.logs.String(), keyA) || strings.Contains(e.logs.String(), keyB) {
			t.Error("an API key appears in the logs")
		}
	})
	e.url, e.srv, e.mgr = hs.URL, srv, mgr
	for _, id := range []string{"T1", "T2"} {
		poll.Until(t, waitLimit, id+" up", func() bool { s, _ := mgr.Device(id); return s.Connected && s.Health == device.HealthUp })
	}
	return e
}

type answer struct {
	status int
	body   []byte
	header http.Header
}

func (a answer) tx(t *testing.T) ecr.Transaction {
	t.Helper()
	var tx ecr.Transaction
	if err := json.Unmarshal(a.body, &tx); err != nil {
		t.Fatalf("answer %d is not a transaction: %s", a.status, a.body)
	}
	return tx
}

func (a answer) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

func (e *env) do(method, path, key, idem, body string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, b, resp.Header}
}

const saleT1 = `{"terminal_id":"T1","amount":1000,"currency":"392"}`

func TestSaleEndToEnd(t *testing.T) {
	e := newEnv(t, 30*time.Second, map[string]*devicetest.Terminal{})
	a := e.do("POST", "/pos/v1/sales", keyA, "k-1", saleT1)
	if a.status != http.StatusOK {
		t.Fatalf("sale: %d %s", a.status, a.body)
	}
	tx := a.tx(t)
	if tx.Status != "approved" || tx.ApprovalCode != "A1B2C3" || tx.ActionCode != "000" || tx.MaskedPAN != "411111******1111" ||
		tx.Amount != 1000 || tx.Currency != "392" || tx.Type != "sale" || tx.TerminalID != "T1" || tx.ResolvedBy != "result" || tx.CompletedAt == nil {
		t.Fatalf("transaction %+v", tx)
	}

	t.Run("retry_same_key_same_body_returns_first", func(t *testing.T) {
		// Same JSON, other spacing and order: the same request.
		r := e.do("POST", "/pos/v1/sales", keyA, "k-1", `{ "currency":"392", "amount":1000, "terminal_id":"T1" }`)
		if r.status != http.StatusOK || r.tx(t).ID != tx.ID {
			t.Fatalf("retry: %d %s", r.status, r.body)
		}
		if n := len(e.terms["T1"].Commands()); n != 1 {
			t.Fatalf("terminal saw %d sales, want 1", n)
		}
	})
	t.Run("same_key_other_body_conflicts", func(t *testing.T) {
		r := e.do("POST", "/pos/v1/sales", keyA, "k-1", `{"terminal_id":"T1","amount":1001,"currency":"392"}`)
		if r.status != http.StatusConflict || r.code() != "idempotency_key_reused" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("get_transaction", func(t *testing.T) {
		r := e.do("GET", "/pos/v1/transactions/"+tx.ID, keyA, "", "")
		if r.status != http.StatusOK || !bytes.Equal(r.body, a.body) {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("last_on_terminal", func(t *testing.T) {
		r := e.do("GET", "/pos/v1/terminals/T1/last", keyA, "", "")
		if r.status != http.StatusOK || r.tx(t).ID != tx.ID {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("receipt", func(t *testing.T) {
		r := e.do("GET", "/pos/v1/transactions/"+tx.ID+"/receipt", keyA, "", "")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		for _, want := range []string{"Test Shop", "SALE", "411111******1111", "JPY 1,000", "A1B2C3", "000", "APPROVED"} {
			if !bytes.Contains(r.body, []byte(want)) {
				t.Errorf("receipt lacks %q:\n%s", want, r.body)
			}
		}
	})
	t.Run("terminals_with_health", func(t *testing.T) {
		r := e.do("GET", "/pos/v1/terminals", keyA, "", "")
		var got struct{ Terminals []ecr.TerminalInfo }
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusOK {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if len(got.Terminals) != 2 || got.Terminals[0].ID != "T1" || got.Terminals[0].Health != "up" || got.Terminals[0].Serial != "FAKE0001" ||
			got.Terminals[1].ID != "T9" || got.Terminals[1].Health != "unknown" {
			t.Fatalf("terminals %+v", got.Terminals)
		}
	})
	t.Run("void_of_the_sale", func(t *testing.T) {
		r := e.do("POST", "/pos/v1/voids", keyA, "k-void", fmt.Sprintf(`{"terminal_id":"T1","original_transaction_id":%q}`, tx.ID))
		if r.status != http.StatusOK || r.tx(t).Type != "void" || r.tx(t).OriginalID != tx.ID {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestConcurrentRetryWaitsForFirst(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	term := &devicetest.Terminal{BeforeResult: func(string) bool {
		once.Do(func() { close(entered) })
		<-release
		return true
	}}
	e := newEnv(t, 30*time.Second, map[string]*devicetest.Terminal{"T1": term})
	answers := make(chan answer, 2)
	go func() { answers <- e.do("POST", "/pos/v1/sales", keyA, "same", saleT1) }()
	<-entered // the first is at the terminal; the retry must wait for it
	go func() { answers <- e.do("POST", "/pos/v1/sales", keyA, "same", saleT1) }()
	poll.Until(t, waitLimit, "the retry to wait for the first", func() bool {
		return strings.Contains(e.logs.String(), "idempotent retry waits for the first request")
	})
	close(release)
	a, b := <-answers, <-answers
	if a.status != http.StatusOK || b.status != http.StatusOK || a.tx(t).ID != b.tx(t).ID {
		t.Fatalf("answers %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	if n := len(term.Commands()); n != 1 {
		t.Fatalf("terminal saw %d sales, want 1", n)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, 30*time.Second, map[string]*devicetest.Terminal{})
	okB := e.do("POST", "/pos/v1/sales", keyB, "b-1", `{"terminal_id":"T2","amount":5,"currency":"392"}`)
	if okB.status != http.StatusOK {
		t.Fatalf("POS B sale: %d %s", okB.status, okB.body)
	}
	idB := okB.tx(t).ID
	tests := []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"no_key", "POST", "/pos/v1/sales", "", saleT1, 401, "unauthorized"},
		{"wrong_key", "POST", "/pos/v1/sales", "nope", saleT1, 401, "unauthorized"},
		{"no_key_on_read", "GET", "/pos/v1/terminals", "", "", 401, "unauthorized"},
		{"no_key_on_events", "GET", "/pos/v1/events", "", "", 401, "unauthorized"},
		{"foreign_terminal_sale", "POST", "/pos/v1/sales", keyA, `{"terminal_id":"T2","amount":5,"currency":"392"}`, 403, "forbidden_terminal"},
		{"foreign_terminal_last", "GET", "/pos/v1/terminals/T2/last", keyA, "", 403, "forbidden_terminal"},
		{"foreign_transaction", "GET", "/pos/v1/transactions/" + idB, keyA, "", 403, "forbidden_terminal"},
		{"foreign_receipt", "GET", "/pos/v1/transactions/" + idB + "/receipt", keyA, "", 403, "forbidden_terminal"},
		{"unknown_transaction", "GET", "/pos/v1/transactions/tx0", keyA, "", 404, "not_found"},
		{"unknown_route", "GET", "/pos/v1/nothing", keyA, "", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(tt.method, tt.path, tt.key, "k-"+tt.name, tt.body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tt.status, tt.code)
			}
			if tt.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(e.terms["T2"].Commands()); n != 1 {
		t.Fatalf("T2 saw %d commands, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "terminal not assigned") || !strings.Contains(e.logs.String(), "not authenticated") {
		t.Fatal("refusals were not logged")
	}
}

func TestRequestValidation(t *testing.T) {
	e := newEnv(t, 30*time.Second, map[string]*devicetest.Terminal{})
	tests := []struct {
		name, path, idem, body string
		status                 int
		code                   string
	}{
		{"no_idempotency_key", "/pos/v1/sales", "", saleT1, 400, "idempotency_key_required"},
		{"unknown_field", "/pos/v1/sales", "v1", `{"terminal_id":"T1","amount":1,"currency":"392","pan":"x"}`, 400, "unknown_field"},
		{"not_json", "/pos/v1/sales", "v2", `terminal=T1`, 400, "invalid_json"},
		{"trailing_data", "/pos/v1/sales", "v3", saleT1 + `{}`, 400, "invalid_json"},
		{"zero_amount", "/pos/v1/sales", "v4", `{"terminal_id":"T1","amount":0,"currency":"392"}`, 400, "invalid_amount"},
		{"negative_amount", "/pos/v1/sales", "v5", `{"terminal_id":"T1","amount":-5,"currency":"392"}`, 400, "invalid_amount"},
		{"fraction_amount", "/pos/v1/sales", "v6", `{"terminal_id":"T1","amount":1.5,"currency":"392"}`, 400, "invalid_amount"},
		{"currency_letters", "/pos/v1/sales", "v7", `{"terminal_id":"T1","amount":1,"currency":"JPY"}`, 400, "invalid_currency"},
		{"currency_two_digits", "/pos/v1/sales", "v8", `{"terminal_id":"T1","amount":1,"currency":"39"}`, 400, "invalid_currency"},
		{"missing_terminal", "/pos/v1/sales", "v9", `{"amount":1,"currency":"392"}`, 400, "missing_field"},
		{"missing_amount", "/pos/v1/sales", "v10", `{"terminal_id":"T1","currency":"392"}`, 400, "missing_field"},
		{"sale_with_original", "/pos/v1/sales", "v11", `{"terminal_id":"T1","amount":1,"currency":"392","original_transaction_id":"x"}`, 400, "unexpected_field"},
		{"void_without_original", "/pos/v1/voids", "v12", `{"terminal_id":"T1"}`, 400, "missing_field"},
		{"capture_without_amount", "/pos/v1/captures", "v13", `{"terminal_id":"T1","original_transaction_id":"tx1"}`, 400, "missing_field"},
		{"body_too_large", "/pos/v1/sales", "v14", `{"terminal_id":"` + strings.Repeat("A", ecr.MaxBody) + `"}`, 413, "body_too_large"},
		{"bad_terminal_id", "/pos/v1/sales", "v15", `{"terminal_id":"-x","amount":1,"currency":"392"}`, 400, "invalid_terminal_id"},
		{"unassigned_unknown_terminal", "/pos/v1/sales", "v16", `{"terminal_id":"T9","amount":1,"currency":"392"}`, 404, "unknown_terminal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do("POST", tt.path, keyA, tt.idem, tt.body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tt.status, tt.code)
			}
		})
	}
	if n := len(e.terms["T1"].Commands()); n != 0 {
		t.Fatalf("terminal saw %d commands after refused requests", n)
	}
	// A refused-before-sending key may be used again.
	if a := e.do("POST", "/pos/v1/sales", keyA, "v16", `{"terminal_id":"T1","amount":1,"currency":"392"}`); a.status != 200 {
		t.Fatalf("reuse of a key whose request sent nothing: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/pos/v1/transactions/x?wait=forever", keyA, "", ""); a.status != 400 || a.code() != "invalid_wait" {
		t.Fatalf("bad wait: %d %s", a.status, a.body)
	}
}

// sse reads server-sent events from one stream.
type sse struct {
	events chan ecr.Transaction
	cancel context.CancelFunc
}

func (e *env) subscribe(key string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/pos/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		e.t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{events: make(chan ecr.Transaction, 16), cancel: cancel}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first && strings.HasPrefix(line, ":") {
				close(ready)
				first = false
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var tx ecr.Transaction
				if json.Unmarshal([]byte(d), &tx) == nil {
					s.events <- tx
				}
			}
		}
	}()
	<-ready // the subscription exists once the opening comment arrived
	e.t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *sse) next(t *testing.T) ecr.Transaction {
	t.Helper()
	select {
	case tx := <-s.events:
		return tx
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return ecr.Transaction{}
}

func TestEventsDeliverResultsToTheirPOSOnly(t *testing.T) {
	e := newEnv(t, 30*time.Second, map[string]*devicetest.Terminal{})
	a, b := e.subscribe(keyA), e.subscribe(keyB)
	ra := e.do("POST", "/pos/v1/sales", keyA, "e-1", saleT1)
	rb := e.do("POST", "/pos/v1/sales", keyB, "e-2", `{"terminal_id":"T2","amount":7,"currency":"840"}`)
	if ra.status != 200 || rb.status != 200 {
		t.Fatalf("sales: %d / %d", ra.status, rb.status)
	}
	if got := a.next(t); got.ID != ra.tx(t).ID || got.Status != "approved" || got.MaskedPAN != "411111******1111" {
		t.Fatalf("POS A event %+v", got)
	}
	// POS B's first event is its own: A's result was not sent to it.
	if got := b.next(t); got.ID != rb.tx(t).ID || got.TerminalID != "T2" {
		t.Fatalf("POS B event %+v", got)
	}
}

func TestCablePulledMidSaleUnknownThenResolved(t *testing.T) {
	pulled := make(chan struct{})
	var once sync.Once
	term := &devicetest.Terminal{BeforeResult: func(string) bool {
		once.Do(func() { close(pulled) })
		return false
	}}
	e := newEnv(t, time.Second, map[string]*devicetest.Terminal{"T1": term})
	events := e.subscribe(keyA)
	answers := make(chan answer, 1)
	go func() { answers <- e.do("POST", "/pos/v1/sales", keyA, "u-1", saleT1) }()
	<-pulled
	e.plugs["T1"].Pull()

	a := <-answers // the terminal is gone: the POS is told the outcome is unknown
	tx := a.tx(t)
	if a.status != http.StatusAccepted || tx.Status != "unknown" || a.header.Get("Location") != "/pos/v1/transactions/"+tx.ID {
		t.Fatalf("sale answer %d %s", a.status, a.body)
	}
	if got := events.next(t); got.ID != tx.ID || got.Status != "unknown" {
		t.Fatalf("first event %+v", got)
	}
	// A new sale on the terminal is refused until the outcome is known.
	if r := e.do("POST", "/pos/v1/sales", keyA, "u-2", saleT1); r.status != http.StatusConflict && r.status != http.StatusServiceUnavailable {
		t.Fatalf("sale while unresolved: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/pos/v1/transactions/"+tx.ID+"/receipt", keyA, "", ""); r.status != http.StatusConflict || r.code() != "outcome_not_known" {
		t.Fatalf("receipt while unknown: %d %s", r.status, r.body)
	}

	polled := make(chan answer, 1)
	go func() { polled <- e.do("GET", "/pos/v1/transactions/"+tx.ID+"?wait=30s", keyA, "", "") }()
	e.plugs["T1"].PlugIn()

	p := <-polled
	got := p.tx(t)
	if p.status != 200 || got.Status != "approved" || got.ResolvedBy != "last_txn_query" || got.ApprovalCode != "A1B2C3" {
		t.Fatalf("long poll %d %s", p.status, p.body)
	}
	if ev := events.next(t); ev.ID != tx.ID || ev.Status != "approved" {
		t.Fatalf("resolution event %+v", ev)
	}
	if n := len(term.Commands()); n != 1 {
		t.Fatalf("terminal saw %d sales, want 1", n)
	}
	// The same key now answers the resolved transaction.
	if r := e.do("POST", "/pos/v1/sales", keyA, "u-1", saleT1); r.status != 200 || r.tx(t).Status != "approved" || r.tx(t).ID != tx.ID {
		t.Fatalf("retry after resolution: %d %s", r.status, r.body)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(ecr.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	srv, err := ecr.New(ecr.Config{Clients: []ecr.Client{{ID: "P", KeySHA256: hash("k")}}}, nil, ecr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	served := srv.Routes()
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("document and routes differ\ndocumented: %v\nserved:     %v", documented, served)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/pos/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(body, ecr.OpenAPI()) {
		t.Fatalf("served document differs: %d", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  ecr.Config
		want []string
	}{
		{"ok", ecr.Config{Clients: []ecr.Client{{ID: "P1", KeySHA256: hash("a"), Terminals: []string{"T1"}}}}, nil},
		{"bad_hash", ecr.Config{Clients: []ecr.Client{{ID: "P1", KeySHA256: "abc"}}}, []string{`pos.clients[0].key_sha256 = "[redacted]": must be 64 lower-case hex digits`}},
		{"missing_hash", ecr.Config{Clients: []ecr.Client{{ID: "P1"}}}, []string{`pos.clients[0].key_sha256 = "": required unless pos.tls.listen is set`}},
		{"duplicate_id", ecr.Config{Clients: []ecr.Client{{ID: "P1", KeySHA256: hash("a")}, {ID: "P1", KeySHA256: hash("b")}}}, []string{`pos.clients[1].id = "P1": already used`}},
		{"shared_key", ecr.Config{Clients: []ecr.Client{{ID: "P1", KeySHA256: hash("a")}, {ID: "P2", KeySHA256: hash("a")}}}, []string{`pos.clients[1].key_sha256 = "[redacted]": same key as pos.clients[0]`}},
		{"bad_terminal", ecr.Config{Clients: []ecr.Client{{ID: "P1", KeySHA256: hash("a"), Terminals: []string{"a b"}}}}, []string{`pos.clients[0].terminals[0] = "a b"`}},
		{"tls_without_files", ecr.Config{TLS: ecr.TLSConfig{Listen: "127.0.0.1:8443"}}, []string{`pos.tls.cert = "": required`, `pos.tls.client_ca = "": required`}},
		{"bad_listen", ecr.Config{Listen: "x"}, []string{`pos.listen = "x": must be host:port`}},
		{"max_transactions", ecr.Config{MaxTransactions: -1}, []string{`pos.max_transactions = "-1"`}},
		{"max_wait", ecr.Config{MaxWait: time.Hour}, []string{`pos.max_wait = "1h0m0s": must be from 1s to 10m`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ecr.ErrConfig) {
				t.Fatalf("%v does not wrap ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

func TestReceiptAndAmounts(t *testing.T) {
	tests := []struct {
		name     string
		minor    uint64
		currency string
		want     string
	}{
		{"yen_no_decimals", 1234567, "392", "JPY 1,234,567"},
		{"dollars", 1234, "840", "USD 12.34"},
		{"cents_only", 5, "978", "EUR 0.05"},
		{"unknown_currency", 99, "999", "99 (minor units, currency 999)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ecr.FormatAmount(tt.minor, tt.currency); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	// A PAN that somehow arrived unmasked is masked on the receipt.
	r := ecr.Receipt("M", ecr.Transaction{Type: "sale", Status: "approved", MaskedPAN: "4111111111111111", Amount: 1, Currency: "392"})
	if strings.Contains(r, "4111111111111111") || !strings.Contains(r, "411111******1111") {
		t.Fatalf("receipt card line not masked:\n%s", r)
	}
}
