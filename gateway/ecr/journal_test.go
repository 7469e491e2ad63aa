package ecr_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/offline/offlinetest"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/device/devicetest"
	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// journalKey seals the test store (not a real key); the same key opens
// it after every "restart".
var journalKey = []byte("posgate-ecr-journal-test-key-32b")

func journalSealer(t *testing.T) offline.Sealer {
	s, err := offlinetest.NewSealer(journalKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cutJournal passes writes to the store until cut, then fails them
// without writing: the gateway losing power at that moment.
type cutJournal struct {
	ecr.Journal
	cut atomic.Bool
}

var errPowerCut = errors.New("power cut")

func (j *cutJournal) AddPOS(pos, key string, data []byte) (uint64, error) {
	if j.cut.Load() {
		return 0, errPowerCut
	}
	return j.Journal.AddPOS(pos, key, data)
}

func (j *cutJournal) UpdatePOS(id uint64, pos, key string, data []byte) error {
	if j.cut.Load() {
		return errPowerCut
	}
	return j.Journal.UpdatePOS(id, pos, key, data)
}

func (j *cutJournal) DeletePOS(ids ...uint64) error {
	if j.cut.Load() {
		return errPowerCut
	}
	return j.Journal.DeletePOS(ids...)
}

// resolvingTerminals adds a Resolver to the device manager: resolve
// answers for the terminal (the last-transaction query of the device
// manager after a restart).
type resolvingTerminals struct {
	*device.Manager
	resolve func(deviceID string, k tlink.Kind, cmd tlink.TxnCommand) (device.TxnResult, error)
}

func (r resolvingTerminals) Resolve(_ context.Context, deviceID string, k tlink.Kind, cmd tlink.TxnCommand) (device.TxnResult, error) {
	return r.resolve(deviceID, k, cmd)
}

// gateway is one run of the gateway's POS side on a store file: the
// terminals (and their plugs) outlive it, the rest is made afresh by
// boot, as after a restart.
type rig struct {
	t     *testing.T
	path  string
	terms map[string]*devicetest.Terminal
	plugs map[string]*devicetest.Plug
	// hook, when set, is T1's BeforeResult.
	hook atomic.Pointer[func(ref string) bool]
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "offline.db"), terms: map[string]*devicetest.Terminal{}, plugs: map[string]*devicetest.Plug{}}
	r.terms["T1"] = &devicetest.Terminal{BeforeResult: func(ref string) bool {
		if h := r.hook.Load(); h != nil {
			return (*h)(ref)
		}
		return true
	}}
	r.terms["T2"] = &devicetest.Terminal{}
	return r
}

type bootOpts struct {
	max     int
	journal func(ecr.Journal) ecr.Journal
	terms   func(*device.Manager) ecr.Terminals
	before  func(st *offline.Store) // runs on the store before the Server loads it
}

// boot opens the store and starts a device manager and a POS API on it;
// stop (also run at cleanup) shuts them down and closes the store.
func (r *rig) boot(o bootOpts) (e *env, stop func()) {
	t := r.t
	t.Helper()
	st, err := offline.Open(offline.Config{Path: r.path, Sealer: journalSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	if o.before != nil {
		o.before(st)
	}
	e = &env{t: t, terms: r.terms, plugs: r.plugs, logs: &logBuf{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var devs []device.DeviceConfig
	for _, id := range []string{"T1", "T2"} {
		if r.plugs[id] == nil {
			r.plugs[id] = devicetest.NewPlug(t, r.terms[id])
		}
		devs = append(devs, device.DeviceConfig{ID: id, DeviceConfig: transport.DeviceConfig{Medium: transport.TCP, Address: r.plugs[id].Addr}})
	}
	var srv atomic.Pointer[ecr.Server]
	mgr, err := device.New(device.Config{
		Devices:        devs,
		Handler:        &forward.Forwarder{Uplink: devicetest.UplinkFunc(devicetest.Approve), Logger: log},
		Logger:         log,
		ReconnectMin:   5 * time.Millisecond,
		ReconnectMax:   50 * time.Millisecond,
		ResolveTimeout: time.Second,
		OnResult: func(res device.TxnResult) {
			if s := srv.Load(); s != nil {
				s.OnResult(res)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var j ecr.Journal = st
	if o.journal != nil {
		j = o.journal(st)
	}
	var terms ecr.Terminals = mgr
	if o.terms != nil {
		terms = o.terms(mgr)
	}
	s, err := ecr.New(ecr.Config{
		MaxTransactions: o.max,
		Clients: []ecr.Client{
			{ID: "POSA", KeySHA256: hash(keyA), Terminals: []string{"T1"}},
			{ID: "POSB", KeySHA256: hash(keyB), Terminals: []string{"T2"}},
		},
	}, terms, ecr.Options{Logger: log, Journal: j, ResolveRetry: 5 * time.Millisecond})
	if err != nil {
		st.Close()
		t.Fatalf("ecr.New on the stored records: %v", err)
	}
	srv.Store(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mgr.Run(ctx); close(done) }()
	hs := httptest.NewServer(s.Handler())
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		hs.Close()
		s.Close()
		cancel()
		<-done
		st.Close()
	}
	t.Cleanup(stop)
	e.url, e.srv, e.mgr = hs.URL, s, mgr
	for _, id := range []string{"T1", "T2"} {
		poll.Until(t, waitLimit, id+" up", func() bool { s, _ := mgr.Device(id); return s.Connected && s.Health == device.HealthUp })
	}
	return e, stop
}

// storedKeys lists the (pos/key) of the records in the rig's file.
func (r *rig) storedKeys() []string {
	r.t.Helper()
	st, err := offline.Open(offline.Config{Path: r.path, Sealer: journalSealer(r.t)})
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	var keys []string
	if err := st.LoadPOS(func(_ uint64, pos, key string, _ []byte, err error) {
		if err != nil {
			r.t.Errorf("stored record unreadable: %v", err)
		}
		keys = append(keys, pos+"/"+key)
	}); err != nil {
		r.t.Fatal(err)
	}
	return keys
}

func TestRestartRetryReturnsFirstTransaction(t *testing.T) {
	r := newRig(t)
	e, stop := r.boot(bootOpts{})
	a := e.do("POST", "/pos/v1/sales", keyA, "k-1", saleT1)
	if a.status != http.StatusOK || a.tx(t).Status != "approved" {
		t.Fatalf("sale: %d %s", a.status, a.body)
	}
	first := a.tx(t)
	stop()

	e, _ = r.boot(bootOpts{})
	t.Run("retry_same_key_same_body_returns_first", func(t *testing.T) {
		b := e.do("POST", "/pos/v1/sales", keyA, "k-1", `{"amount":1000,"currency":"392","terminal_id":"T1"}`)
		if b.status != http.StatusOK || string(b.body) != string(a.body) {
			t.Fatalf("retry after restart: %d %s, want 200 %s", b.status, b.body, a.body)
		}
		if got := r.terms["T1"].Commands(); !slices.Equal(got, []string{first.ID}) {
			t.Fatalf("terminal saw commands %v, want only %s", got, first.ID)
		}
	})
	t.Run("same_key_other_body_conflicts", func(t *testing.T) {
		b := e.do("POST", "/pos/v1/sales", keyA, "k-1", `{"terminal_id":"T1","amount":1001,"currency":"392"}`)
		if b.status != http.StatusConflict || b.code() != "idempotency_key_reused" {
			t.Fatalf("got %d %s", b.status, b.body)
		}
	})
	t.Run("same_key_other_pos_is_another_transaction", func(t *testing.T) {
		b := e.do("POST", "/pos/v1/sales", keyB, "k-1", `{"terminal_id":"T2","amount":1000,"currency":"392"}`)
		if b.status != http.StatusOK || b.tx(t).ID == first.ID {
			t.Fatalf("got %d %s", b.status, b.body)
		}
	})
	t.Run("reads_after_restart", func(t *testing.T) {
		if b := e.do("GET", "/pos/v1/transactions/"+first.ID, keyA, "", ""); b.status != http.StatusOK || string(b.body) != string(a.body) {
			t.Fatalf("get: %d %s", b.status, b.body)
		}
		if b := e.do("GET", "/pos/v1/terminals/T1/last", keyA, "", ""); b.status != http.StatusOK || b.tx(t).ID != first.ID {
			t.Fatalf("last: %d %s", b.status, b.body)
		}
		if b := e.do("GET", "/pos/v1/transactions/"+first.ID+"/receipt", keyA, "", ""); b.status != http.StatusOK || !strings.Contains(string(b.body), "A1B2C3") {
			t.Fatalf("receipt: %d %s", b.status, b.body)
		}
	})
	if strings.Contains(e.logs.String(), "411111") {
		t.Fatal("a PAN prefix appears in the logs")
	}
}

// startCutSale runs a sale on T1 under key and cuts the power (every
// write fails) while the terminal holds it, after its record was stored
// as in progress. It returns once the first run is stopped.
func startCutSale(t *testing.T, r *rig, key string) {
	t.Helper()
	entered := make(chan string, 1)
	release := make(chan struct{})
	hook := func(ref string) bool {
		entered <- ref
		<-release
		return true
	}
	r.hook.Store(&hook)
	var cj *cutJournal
	e, stop := r.boot(bootOpts{journal: func(j ecr.Journal) ecr.Journal { cj = &cutJournal{Journal: j}; return cj }})
	answered := make(chan answer, 1)
	go func() { answered <- e.do("POST", "/pos/v1/sales", keyA, key, saleT1) }()
	recv(t, "the sale at the terminal", entered)
	cj.cut.Store(true) // the gateway dies with the sale at the terminal
	r.hook.Store(nil)
	close(release)
	recv(t, "the sale's answer", answered)
	stop()
}

func TestRestartInProgressComesBackUnknown(t *testing.T) {
	r := newRig(t)
	startCutSale(t, r, "u-1")
	sent := r.terms["T1"].Commands()

	// A terminal that cannot be asked yet: the record stays unknown
	// (TestRestartUnknownResolvedByTerminal covers the asking).
	unreachable := func(m *device.Manager) ecr.Terminals {
		return resolvingTerminals{m, func(string, tlink.Kind, tlink.TxnCommand) (device.TxnResult, error) {
			return device.TxnResult{}, device.ErrNotConnected
		}}
	}
	e, _ := r.boot(bootOpts{terms: unreachable})
	a := e.do("POST", "/pos/v1/sales", keyA, "u-1", saleT1)
	tx := a.tx(t)
	if a.status != http.StatusAccepted || tx.Status != "unknown" || tx.ResolvedBy != ecr.ResolvedByRestart || tx.ID != sent[0] {
		t.Fatalf("retry after restart: %d %s", a.status, a.body)
	}
	if got := r.terms["T1"].Commands(); !slices.Equal(got, sent) {
		t.Fatalf("terminal saw commands %v, want %v", got, sent)
	}
	if b := e.do("POST", "/pos/v1/sales", keyA, "u-1", `{"terminal_id":"T1","amount":5,"currency":"392"}`); b.status != http.StatusConflict || b.code() != "idempotency_key_reused" {
		t.Fatalf("other body: %d %s", b.status, b.body)
	}
	if b := e.do("GET", "/pos/v1/transactions/"+tx.ID+"/receipt", keyA, "", ""); b.status != http.StatusConflict || b.code() != "outcome_not_known" {
		t.Fatalf("receipt while unknown: %d %s", b.status, b.body)
	}
	if b := e.do("GET", "/pos/v1/terminals/T1/last", keyA, "", ""); b.status != http.StatusOK || b.tx(t).ID != tx.ID {
		t.Fatalf("last: %d %s", b.status, b.body)
	}
}

func TestRestartUnknownResolvedByTerminal(t *testing.T) {
	r := newRig(t)
	startCutSale(t, r, "u-1")
	sent := r.terms["T1"].Commands()

	release := make(chan struct{})
	asked := make(chan struct{}, 1)
	resolver := func(m *device.Manager) ecr.Terminals {
		return resolvingTerminals{m, func(id string, k tlink.Kind, cmd tlink.TxnCommand) (device.TxnResult, error) {
			select {
			case asked <- struct{}{}:
			default:
			}
			select {
			case <-release:
			default:
				return device.TxnResult{}, device.ErrNotConnected
			}
			return device.TxnResult{DeviceID: id, Ref: cmd.Ref, Command: k, Outcome: device.OutcomeApproved, Amount: cmd.Amount,
				Currency: cmd.Currency, ActionCode: "000", ApprovalCode: "A1B2C3", ResolvedBy: device.ResolvedByQuery}, nil
		}}
	}
	e, stop := r.boot(bootOpts{terms: resolver})
	recv(t, "a resolve attempt", asked)
	// While the terminal's last transaction is not known, nothing new
	// starts on it: it would hide the one being resolved.
	if b := e.do("POST", "/pos/v1/sales", keyA, "u-2", saleT1); b.status != http.StatusConflict || b.code() != "terminal_unresolved" {
		t.Fatalf("new sale while resolving: %d %s", b.status, b.body)
	}
	polled := make(chan answer, 1)
	go func() { polled <- e.do("GET", "/pos/v1/transactions/"+sent[0]+"?wait=30s", keyA, "", "") }()
	close(release)
	p := recv(t, "the long poll", polled)
	if got := p.tx(t); p.status != http.StatusOK || got.Status != "approved" || got.ResolvedBy != "last_txn_query" {
		t.Fatalf("long poll: %d %s", p.status, p.body)
	}
	poll.Until(t, waitLimit, "new sales allowed", func() bool {
		return e.do("POST", "/pos/v1/sales", keyA, "u-3", saleT1).status == http.StatusOK
	})
	// The resolution was durable before it was answered.
	stop()
	e, _ = r.boot(bootOpts{})
	if b := e.do("GET", "/pos/v1/transactions/"+sent[0], keyA, "", ""); b.status != http.StatusOK || b.tx(t).Status != "approved" {
		t.Fatalf("after a second restart: %d %s", b.status, b.body)
	}
}

func TestEvictionRemovesFromFile(t *testing.T) {
	r := newRig(t)
	e, stop := r.boot(bootOpts{max: 2})
	for _, k := range []string{"e-1", "e-2", "e-3"} {
		if a := e.do("POST", "/pos/v1/sales", keyA, k, saleT1); a.status != http.StatusOK {
			t.Fatalf("sale %s: %d %s", k, a.status, a.body)
		}
	}
	stop()
	if got := r.storedKeys(); !slices.Equal(got, []string{"POSA/e-2", "POSA/e-3"}) {
		t.Fatalf("stored %v, want the two newest", got)
	}
	// A lower bound at start evicts the oldest settled records from the file.
	_, stop = r.boot(bootOpts{max: 1})
	stop()
	if got := r.storedKeys(); !slices.Equal(got, []string{"POSA/e-3"}) {
		t.Fatalf("stored %v after restarting with max 1", got)
	}
}

func TestUnreadableRecordRefusesItsKey(t *testing.T) {
	r := newRig(t)
	e, _ := r.boot(bootOpts{before: func(st *offline.Store) {
		if _, err := st.AddPOS("POSA", "k-bad", []byte(`{"v":1,"tx":{"masked_pan":"411111******1111"}}`)); err != nil {
			t.Fatal(err)
		}
	}})
	a := e.do("POST", "/pos/v1/sales", keyA, "k-bad", saleT1)
	if a.status != http.StatusConflict || a.code() != "idempotency_record_unreadable" {
		t.Fatalf("sale under an unreadable key: %d %s", a.status, a.body)
	}
	if n := len(r.terms["T1"].Commands()); n != 0 {
		t.Fatalf("terminal saw %d commands", n)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "stored POS transaction unreadable") || strings.Contains(logs, "411111") {
		t.Fatalf("logs: %s", logs)
	}
	// Other keys work.
	if b := e.do("POST", "/pos/v1/sales", keyA, "k-good", saleT1); b.status != http.StatusOK {
		t.Fatalf("sale: %d %s", b.status, b.body)
	}
}

func TestNotDurableNotSent(t *testing.T) {
	r := newRig(t)
	e, _ := r.boot(bootOpts{journal: func(j ecr.Journal) ecr.Journal {
		cj := &cutJournal{Journal: j}
		cj.cut.Store(true)
		return cj
	}})
	a := e.do("POST", "/pos/v1/sales", keyA, "k-1", saleT1)
	if a.status != http.StatusServiceUnavailable || a.code() != "storage_unavailable" {
		t.Fatalf("sale without storage: %d %s", a.status, a.body)
	}
	if n := len(r.terms["T1"].Commands()); n != 0 {
		t.Fatalf("terminal saw %d commands", n)
	}
	var body struct{ Error struct{ Message string } }
	if err := json.Unmarshal(a.body, &body); err != nil || body.Error.Message == "" {
		t.Fatalf("error body %s", a.body)
	}
}

// recv waits a bounded time for a value from c.
func recv[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// memJournal is a Journal holding one stored record, for the fuzz test.
type memJournal struct {
	pos, key string
	data     []byte
}

func (m *memJournal) AddPOS(string, string, []byte) (uint64, error)  { return 2, nil }
func (m *memJournal) UpdatePOS(uint64, string, string, []byte) error { return nil }
func (m *memJournal) DeletePOS(...uint64) error                      { return nil }
func (m *memJournal) LoadPOS(fn func(uint64, string, string, []byte, error)) error {
	fn(1, m.pos, m.key, m.data, nil)
	return nil
}

// noTerminals fails the test if a command is sent.
type noTerminals struct{ t *testing.T }

func (n noTerminals) Transact(context.Context, string, tlink.Kind, tlink.TxnCommand) (device.TxnResult, error) {
	n.t.Error("a command was sent under a key that has a stored record")
	return device.TxnResult{}, device.ErrNotConnected
}
func (noTerminals) Device(string) (device.Snapshot, bool) { return device.Snapshot{}, false }

// FuzzLoadRecord feeds arbitrary stored bytes under POSA's key "k": New
// must start (never panic), and a sale under that key must never reach a
// terminal — it gets the stored transaction, 409, or nothing else.
func FuzzLoadRecord(f *testing.F) {
	f.Add([]byte(`{"v":1,"fp":"` + strings.Repeat("00", 32) + `","kind":16,"tx":{"id":"tx1","type":"sale","terminal_id":"T1","status":"in_progress","created_at":"2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ecr.New(ecr.Config{Clients: []ecr.Client{{ID: "POSA", KeySHA256: hash(keyA), Terminals: []string{"T1"}}}},
			noTerminals{t}, ecr.Options{Journal: &memJournal{pos: "POSA", key: "k", data: data}})
		if err != nil {
			t.Fatalf("New on a stored record: %v", err)
		}
		defer s.Close()
		req := httptest.NewRequest("POST", "/pos/v1/sales", strings.NewReader(saleT1))
		req.Header.Set("Authorization", "Bearer "+keyA)
		req.Header.Set("Idempotency-Key", "k")
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusConflict:
		default:
			t.Fatalf("sale under a stored key: %d %s", w.Code, w.Body)
		}
	})
}
