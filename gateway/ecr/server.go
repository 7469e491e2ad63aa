// Package ecr is the gateway's POS API (the ECR interface): local HTTP with
// JSON through which a POS or ECR application runs sales, refunds, voids,
// pre-authorizations and captures on the payment terminals assigned to it,
// reads their results and receipts, and is told of results as they are
// known (server-sent events or long polls). docs/pos-api.md is its
// specification; /pos/v1/openapi.json describes it.
//
// Every mutating request carries an Idempotency-Key: a retry with the same
// key and body returns the first transaction, never a second sale. The
// idempotency record exists before the command is sent to the terminal, so a
// concurrent retry waits for the first. Transactions are kept in memory,
// bounded by Config.MaxTransactions, and with a Journal (the gateway's
// offline store) written through to disk: a record is durable before its
// command is sent and every status change before it is answered, so a
// retry after a restart gets the first transaction too (journal.go).
//
// No card data passes through here: the only card field is the masked PAN
// (DE 124 form) that the device manager took from the financial messages.
package ecr

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/terminal/tlink"
)

// Terminals runs transactions on devices and reports their health.
// *device.Manager satisfies it.
type Terminals interface {
	Transact(ctx context.Context, deviceID string, k tlink.Kind, cmd tlink.TxnCommand) (device.TxnResult, error)
	Device(id string) (device.Snapshot, bool)
}

// Options are the Server's collaborators.
type Options struct {
	// Logger receives refused requests and transaction events, never keys
	// or card data. Nil discards them.
	Logger *slog.Logger
	// Registerer, when set, receives posgate_pos_requests_total.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Offline, when set, serves GET /pos/v1/terminals/{id}/offline and
	// adds the offline block to transactions answered in stand-in. Nil:
	// that route answers 503 offline_unavailable.
	Offline Offline
	// Journal, when set, keeps the transaction records durably: New
	// loads them, and a transaction in progress when the gateway stopped
	// comes back "unknown" (resolved_by gateway_restart). Nil: memory
	// only, forgotten at restart.
	Journal Journal
	// ResolveRetry is the first wait between attempts to resolve, through
	// a Terminals that is a Resolver, a transaction left unknown by a
	// restart; it doubles up to 30s. Zero means 1s.
	ResolveRetry time.Duration
}

// Server is the POS API. It is safe for concurrent use. Close stops the
// transactions it started waiting for and ends event streams.
type Server struct {
	cfg   Config
	terms Terminals
	log   *slog.Logger
	now   func() time.Time
	mux   *http.ServeMux
	reqs  *prometheus.CounterVec
	off   Offline

	journal Journal
	retry   time.Duration

	clients []client
	byID    map[string]*client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex // guards everything below and every record's fields
	st   store
	subs map[*subscriber]struct{}
	seq  uint64
	// resolving holds, per terminal, the transaction from before a restart
	// that a Resolver is settling; new transactions on that terminal are
	// refused until it is settled.
	resolving map[string]*record
	// acceptors holds, per terminal, the card acceptor of the last
	// stand-in decision one of its results carried (for the headroom).
	acceptors map[string]CardAcceptor
}

type client struct {
	id        string
	hash      []byte
	terminals map[string]bool
	order     []string
}

// New returns a POS API server for cfg over terms. It validates cfg and,
// with opts.Journal, loads the stored transactions; it fails when the
// Journal cannot be read or written (unreadable single records are
// logged and skipped, their keys refused).
func New(cfg Config, terms Terminals, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	s := &Server{cfg: cfg, terms: terms, log: opts.Logger, now: opts.Now, off: opts.Offline, byID: make(map[string]*client),
		subs: make(map[*subscriber]struct{}), journal: opts.Journal, retry: opts.ResolveRetry, resolving: make(map[string]*record),
		acceptors: make(map[string]CardAcceptor)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.retry <= 0 {
		s.retry = time.Second
	}
	s.st = newStore(cfg.MaxTransactions)
	var unresolved []*record
	if s.journal != nil {
		var err error
		if unresolved, err = s.load(); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.Clients {
		cl := client{id: c.ID, terminals: make(map[string]bool), order: slices.Clone(c.Terminals)}
		if c.KeySHA256 != "" {
			cl.hash = decodeHash(c.KeySHA256)
		}
		for _, t := range c.Terminals {
			cl.terminals[t] = true
		}
		s.clients = append(s.clients, cl)
	}
	for i := range s.clients {
		s.byID[s.clients[i].id] = &s.clients[i]
	}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posgate_pos_requests_total",
		Help: "POS API requests answered, by route and HTTP status.",
	}, []string{"route", "status"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.reqs); err != nil {
			return nil, fmt.Errorf("register POS API metrics: %w", err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if res, ok := terms.(Resolver); ok {
		for _, r := range unresolved {
			// The newest unknown transaction of a terminal is the one its
			// last-transaction query can tell about.
			if s.st.lastByTerm[r.tx.TerminalID] == r {
				s.resolving[r.tx.TerminalID] = r
				s.wg.Go(func() { s.resolve(res, r) })
			}
		}
	}
	s.mux = http.NewServeMux()
	for _, r := range s.routes() {
		s.mux.Handle(r.pattern, s.instrument(r.pattern, r.h))
	}
	s.mux.Handle("/pos/v1/", s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route")
	})))
	return s, nil
}

type route struct {
	pattern string
	h       http.Handler
}

func (s *Server) routes() []route {
	return []route{
		{"POST /pos/v1/sales", s.mutate(tlink.KindSale)},
		{"POST /pos/v1/refunds", s.mutate(tlink.KindRefund)},
		{"POST /pos/v1/voids", s.mutate(tlink.KindVoid)},
		{"POST /pos/v1/preauths", s.mutate(tlink.KindPreAuth)},
		{"POST /pos/v1/captures", s.mutate(tlink.KindCapture)},
		{"GET /pos/v1/transactions/{id}", s.authed(s.getTransaction)},
		{"GET /pos/v1/transactions/{id}/receipt", s.authed(s.getReceipt)},
		{"GET /pos/v1/terminals", s.authed(s.listTerminals)},
		{"GET /pos/v1/terminals/{id}/last", s.authed(s.lastOnTerminal)},
		{"GET /pos/v1/terminals/{id}/offline", s.authed(s.terminalOffline)},
		{"GET /pos/v1/events", s.authed(s.events)},
		{"GET /pos/v1/openapi.json", http.HandlerFunc(serveOpenAPI)},
	}
}

// Routes returns the patterns the server serves ("POST /pos/v1/sales" …),
// as registered on its mux.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.routes() {
		out = append(out, r.pattern)
	}
	return out
}

// Handler returns the API's handler; it serves paths under /pos/v1/.
func (s *Server) Handler() http.Handler { return s.mux }

// Close ends event streams and long polls, stops waiting for terminals
// (a command already sent keeps running in the device manager, which
// reports its outcome) and waits for the server's goroutines.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// ---- instrumentation ----

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("POS request failed with an internal error", "route", pattern, "panic", fmt.Sprint(p))
				if rec.status == 0 {
					writeError(rec, http.StatusInternalServerError, "internal_error", "internal error")
				}
			}
			st := rec.status
			if st == 0 {
				st = http.StatusOK
			}
			s.reqs.WithLabelValues(pattern, strconv.Itoa(st)).Inc()
		}()
		h.ServeHTTP(rec, r)
	})
}

// ---- errors ----

type apiError struct {
	status  int
	code    string
	message string
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="posgate"`)
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ---- authentication ----

// authenticate returns the calling POS, or nil with the reason.
func (s *Server) authenticate(r *http.Request) (*client, string) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		cn := r.TLS.PeerCertificates[0].Subject.CommonName
		if c := s.byID[cn]; c != nil {
			return c, ""
		}
		return nil, "client certificate names no configured POS"
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, "no credentials"
	}
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return nil, "authorization is not a bearer key"
	}
	sum := sha256.Sum256([]byte(key))
	var found *client
	for i := range s.clients {
		c := &s.clients[i]
		if c.hash != nil && subtle.ConstantTimeCompare(c.hash, sum[:]) == 1 {
			found = c
		}
	}
	if found == nil {
		return nil, "unknown key"
	}
	return found, ""
}

type authedHandler func(w http.ResponseWriter, r *http.Request, c *client)

func (s *Server) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, why := s.authenticate(r)
		if c == nil {
			s.log.Warn("POS request refused: not authenticated", "route", r.Pattern, "remote", r.RemoteAddr, "reason", why)
			writeError(w, http.StatusUnauthorized, "unauthorized", "authenticate with a bearer API key or a client certificate")
			return
		}
		h(w, r, c)
	})
}

// allowed answers 403 and logs when c may not use terminal id.
func (s *Server) allowed(w http.ResponseWriter, r *http.Request, c *client, id string) bool {
	if c.terminals[id] {
		return true
	}
	s.log.Warn("POS request refused: terminal not assigned", "route", r.Pattern, "remote", r.RemoteAddr, "pos", c.id, "terminal", id)
	writeError(w, http.StatusForbidden, "forbidden_terminal", "this POS may not use that terminal")
	return false
}

// ---- requests ----

// TxnRequest is the body of the mutating routes.
type TxnRequest struct {
	TerminalID string      `json:"terminal_id"`
	Amount     json.Number `json:"amount,omitempty"`
	Currency   string      `json:"currency,omitempty"`
	OriginalID string      `json:"original_transaction_id,omitempty"`
}

// canonical is a validated request; its JSON is the idempotency
// fingerprint's input.
type canonical struct {
	Type       string `json:"type"`
	TerminalID string `json:"terminal_id"`
	Amount     uint64 `json:"amount"`
	Currency   string `json:"currency"`
	OriginalID string `json:"original_transaction_id"`
}

var typeOf = map[tlink.Kind]string{
	tlink.KindSale: "sale", tlink.KindRefund: "refund", tlink.KindVoid: "void",
	tlink.KindPreAuth: "preauth", tlink.KindCapture: "capture",
}

func validRef(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// parse decodes and validates a mutating request body.
func parse(k tlink.Kind, body io.Reader) (canonical, *apiError) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req TxnRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return canonical{}, &apiError{http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", MaxBody)}
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return canonical{}, &apiError{http.StatusBadRequest, "unknown_field", err.Error()}
		}
		return canonical{}, &apiError{http.StatusBadRequest, "invalid_json", "the body is not a JSON object of the documented form"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return canonical{}, &apiError{http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", MaxBody)}
		}
		return canonical{}, &apiError{http.StatusBadRequest, "invalid_json", "data after the JSON object"}
	}
	c := canonical{Type: typeOf[k], TerminalID: req.TerminalID, Currency: req.Currency, OriginalID: req.OriginalID}
	if c.TerminalID == "" {
		return c, &apiError{http.StatusBadRequest, "missing_field", "terminal_id is required"}
	}
	if !device.ValidID(c.TerminalID) {
		return c, &apiError{http.StatusBadRequest, "invalid_terminal_id", "terminal_id must be 1–32 of letters, digits, '.', '_' or '-'"}
	}
	if req.Amount != "" {
		s := req.Amount.String()
		v, err := strconv.ParseUint(s, 10, 63)
		if err != nil || v == 0 || strings.TrimLeft(s, "0123456789") != "" {
			return c, &apiError{http.StatusBadRequest, "invalid_amount", "amount must be a whole number of minor units greater than 0"}
		}
		c.Amount = v
	}
	if c.Currency != "" && (len(c.Currency) != 3 || strings.Trim(c.Currency, "0123456789") != "" || c.Currency == "000") {
		return c, &apiError{http.StatusBadRequest, "invalid_currency", "currency must be an ISO 4217 numeric code: 3 digits"}
	}
	if c.OriginalID != "" && !validRef(c.OriginalID) {
		return c, &apiError{http.StatusBadRequest, "invalid_original_transaction_id", "original_transaction_id must be 1–32 printable ASCII characters"}
	}
	needAmount := k != tlink.KindVoid
	switch {
	case needAmount && c.Amount == 0:
		return c, &apiError{http.StatusBadRequest, "missing_field", "amount is required"}
	case (c.Amount != 0) != (c.Currency != ""):
		return c, &apiError{http.StatusBadRequest, "missing_field", "amount and currency go together"}
	case (k == tlink.KindVoid || k == tlink.KindCapture) && c.OriginalID == "":
		return c, &apiError{http.StatusBadRequest, "missing_field", "original_transaction_id is required"}
	case (k == tlink.KindSale || k == tlink.KindPreAuth) && c.OriginalID != "":
		return c, &apiError{http.StatusBadRequest, "unexpected_field", "original_transaction_id is not allowed here"}
	}
	return c, nil
}

func validKey(k string) bool {
	if len(k) < 1 || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7E {
			return false
		}
	}
	return true
}

func newTxnID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "tx" + hex.EncodeToString(b[:])
}

// mutate serves one of the transaction routes. It is one handler of about
// 80 lines on purpose: validation, the idempotency reservation and the
// wait for the outcome read top to bottom in the order a POS request meets
// them, and every early return answers either before anything is reserved
// or after the reservation is settled.
func (s *Server) mutate(k tlink.Kind) http.Handler {
	return s.authed(func(w http.ResponseWriter, r *http.Request, c *client) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			writeError(w, http.StatusBadRequest, "idempotency_key_required", "the Idempotency-Key header is required")
			return
		}
		if !validKey(key) {
			writeError(w, http.StatusBadRequest, "invalid_idempotency_key", "the Idempotency-Key must be 1–64 printable ASCII characters")
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
			return
		}
		req, aerr := parse(k, http.MaxBytesReader(w, r.Body, MaxBody))
		if aerr != nil {
			writeError(w, aerr.status, aerr.code, aerr.message)
			return
		}
		if !s.allowed(w, r, c, req.TerminalID) {
			return
		}
		canon, _ := json.Marshal(req)
		fp := sha256.Sum256(canon)

		s.mu.Lock()
		if s.resolving[req.TerminalID] != nil && s.st.byKey[idemKey{c.id, key}] == nil {
			s.mu.Unlock()
			writeError(w, http.StatusConflict, "terminal_unresolved", "an earlier transaction's outcome on the terminal is being resolved; nothing was sent")
			return
		}
		rec, existing, evicted, err := s.st.begin(c.id, key, fp, func() *record {
			return &record{
				pos: c.id, key: key, fp: fp, kind: k, done: make(chan struct{}), changed: make(chan struct{}),
				tx: Transaction{
					ID: newTxnID(), Type: req.Type, TerminalID: req.TerminalID, Amount: req.Amount, Currency: req.Currency,
					OriginalID: req.OriginalID, Status: StatusInProgress, CreatedAt: s.now().UTC(),
				},
			}
		})
		s.mu.Unlock()
		if evicted != nil {
			s.forget(evicted)
		}
		switch {
		case errors.Is(err, errKeyReused):
			writeError(w, http.StatusConflict, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
			return
		case errors.Is(err, errFull):
			writeError(w, http.StatusServiceUnavailable, "too_many_transactions", "too many transactions in progress; try again later")
			return
		case rec.bad:
			writeError(w, http.StatusConflict, "idempotency_record_unreadable", "the stored record of this Idempotency-Key could not be read after a restart; nothing was sent: check the terminal's last transaction and use a new key")
			return
		}
		if existing {
			s.log.Debug("idempotent retry waits for the first request", "pos", c.id, "id", rec.tx.ID)
		} else {
			s.wg.Go(func() { s.run(rec) })
		}
		select {
		case <-rec.done:
		case <-r.Context().Done():
			return // the POS went away; the transaction goes on and is reported by events
		case <-s.ctx.Done():
		}
		s.mu.Lock()
		tx, apiErr, finished := rec.tx, rec.err, isDone(rec)
		s.mu.Unlock()
		switch {
		case apiErr != nil:
			writeError(w, apiErr.status, apiErr.code, apiErr.message)
		case !finished || !final(tx.Status):
			w.Header().Set("Location", "/pos/v1/transactions/"+tx.ID)
			writeJSON(w, http.StatusAccepted, tx)
		default:
			w.Header().Set("Location", "/pos/v1/transactions/"+tx.ID)
			writeJSON(w, http.StatusOK, tx)
		}
	})
}

// final reports whether a transaction status is a settled outcome.
func final(status string) bool {
	return status != StatusInProgress && status != string(device.OutcomeUnknown) && status != ""
}

func isDone(rec *record) bool {
	select {
	case <-rec.done:
		return true
	default:
		return false
	}
}

// run records rec durably (with a Journal), sends its command to its
// terminal and records the answer.
func (s *Server) run(rec *record) {
	s.mu.Lock()
	tx := rec.tx
	s.mu.Unlock()
	if s.journal != nil {
		data, err := encodeRecord(rec, tx)
		var jid uint64
		if err == nil {
			jid, err = s.journal.AddPOS(rec.pos, rec.key, data)
		}
		if err != nil {
			s.log.Error("POS transaction not recorded durably; not sent", "pos", rec.pos, "terminal", tx.TerminalID, "id", tx.ID, "reason", err)
			s.mu.Lock()
			rec.err = &apiError{http.StatusServiceUnavailable, "storage_unavailable", "the gateway could not record the transaction durably; nothing was sent"}
			close(rec.done)
			s.st.remove(rec)
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		rec.jid = jid
		s.mu.Unlock()
	}
	cmd := tlink.TxnCommand{Ref: tx.ID, Amount: tx.Amount, Currency: tx.Currency, OrigRef: tx.OriginalID}
	res, err := s.terms.Transact(s.ctx, tx.TerminalID, rec.kind, cmd)
	var aerr *apiError
	switch {
	case err == nil, errors.Is(err, device.ErrOutcomeUnknown):
		s.settle(res)
		s.mu.Lock()
		if !isDone(rec) {
			close(rec.done)
		}
		s.mu.Unlock()
		return
	case errors.Is(err, device.ErrUnknownDevice):
		aerr = &apiError{http.StatusNotFound, "unknown_terminal", "no such terminal"}
	case errors.Is(err, device.ErrNotTerminal):
		aerr = &apiError{http.StatusBadRequest, "not_a_payment_terminal", "the device is not a payment terminal"}
	case errors.Is(err, device.ErrNotConnected):
		aerr = &apiError{http.StatusServiceUnavailable, "terminal_unavailable", "the terminal is not connected; nothing was sent"}
	case errors.Is(err, device.ErrBusy):
		aerr = &apiError{http.StatusConflict, "terminal_busy", "a transaction is in progress on the terminal; nothing was sent"}
	case errors.Is(err, device.ErrUnresolved):
		aerr = &apiError{http.StatusConflict, "terminal_unresolved", "an earlier transaction's outcome on the terminal is being resolved; nothing was sent"}
	case errors.Is(err, device.ErrInvalid):
		aerr = &apiError{http.StatusBadRequest, "invalid_command", "the terminal command is invalid"}
	default:
		aerr = &apiError{http.StatusServiceUnavailable, "unavailable", "the gateway is shutting down; nothing was sent"}
	}
	// Nothing was sent: the record is dropped so the same key may be used
	// again, after the waiters have their answer.
	s.log.Info("POS transaction not started", "pos", rec.pos, "terminal", tx.TerminalID, "id", tx.ID, "code", aerr.code)
	s.forget(rec)
	s.mu.Lock()
	rec.err = aerr
	close(rec.done)
	s.st.remove(rec)
	s.mu.Unlock()
}

// OnResult records a result the device manager learnt (directly, late, or
// by a last-transaction query) and pushes it to the POS clients that may
// see its terminal. Pass it as device.Config.OnResult.
func (s *Server) OnResult(r device.TxnResult) { s.settle(r) }

func (s *Server) settle(r device.TxnResult) {
	var off *OfflineDecision
	if s.off != nil && r.ActionCode != "" && r.StandIn != nil {
		off = &OfflineDecision{Approved: r.StandIn.Approved, Reason: r.StandIn.Reason, ActionCode: r.StandIn.ActionCode, DecidedAt: r.StandIn.DecidedAt}
		s.learnAcceptor(r)
	}
	s.mu.Lock()
	rec := s.st.byID[r.Ref]
	s.mu.Unlock()
	if rec == nil {
		return
	}
	// The update is written through before anyone sees it: a POST, a
	// long poll or an event answers only what is durable.
	rec.wmu.Lock()
	defer rec.wmu.Unlock()
	s.mu.Lock()
	if s.st.byID[r.Ref] != rec || rec.tx.TerminalID != r.DeviceID {
		s.mu.Unlock()
		return
	}
	if final(rec.tx.Status) || (rec.tx.Status == string(device.OutcomeUnknown) && !r.Outcome.Final()) {
		s.mu.Unlock()
		return
	}
	next := rec.tx
	tx := &next
	tx.Status = string(r.Outcome)
	tx.ActionCode, tx.ApprovalCode, tx.STAN, tx.RRN, tx.TerminalTime = r.ActionCode, r.ApprovalCode, r.STAN, r.RRN, r.Time
	if r.MaskedPAN != "" {
		// A result settled by query or late result after a restart may
		// not know it; keep what the record had.
		tx.MaskedPAN = r.MaskedPAN
	}
	tx.ResolvedBy = string(r.ResolvedBy)
	if off != nil {
		tx.Offline = off
	}
	if r.Amount != 0 {
		tx.Amount, tx.Currency = r.Amount, r.Currency
	}
	if r.Outcome.Final() {
		t := s.now().UTC()
		tx.CompletedAt = &t
	}
	jid := rec.jid
	s.mu.Unlock()
	s.persist(rec, jid, next)
	s.mu.Lock()
	rec.tx = next
	tx = &rec.tx
	close(rec.changed)
	rec.changed = make(chan struct{})
	snapshot := *tx
	s.publishLocked(snapshot)
	s.mu.Unlock()
	s.log.Info("POS transaction updated", "pos", rec.pos, "terminal", snapshot.TerminalID, "id", snapshot.ID, "status", snapshot.Status)
}

// ---- reads ----

func (s *Server) getTransaction(w http.ResponseWriter, r *http.Request, c *client) {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > s.cfg.MaxWait {
			writeError(w, http.StatusBadRequest, "invalid_wait", fmt.Sprintf("wait must be a duration from 0s to %v", s.cfg.MaxWait))
			return
		}
		wait = d
	}
	id := r.PathValue("id")
	s.mu.Lock()
	rec := s.st.byID[id]
	var tx Transaction
	var changed chan struct{}
	if rec != nil {
		tx, changed = rec.tx, rec.changed
	}
	s.mu.Unlock()
	if rec == nil {
		writeError(w, http.StatusNotFound, "not_found", "no such transaction (unknown, or forgotten after max_transactions)")
		return
	}
	if !s.allowed(w, r, c, tx.TerminalID) {
		return
	}
	if wait > 0 && !final(tx.Status) {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
		}
		s.mu.Lock()
		tx = rec.tx
		s.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, tx)
}

func (s *Server) lastOnTerminal(w http.ResponseWriter, r *http.Request, c *client) {
	id := r.PathValue("id")
	if !s.allowed(w, r, c, id) {
		return
	}
	s.mu.Lock()
	rec := s.st.lastByTerm[id]
	var tx Transaction
	if rec != nil {
		tx = rec.tx
	}
	s.mu.Unlock()
	if rec == nil {
		writeError(w, http.StatusNotFound, "not_found", "no transaction on this terminal is on record")
		return
	}
	writeJSON(w, http.StatusOK, tx)
}

func (s *Server) getReceipt(w http.ResponseWriter, r *http.Request, c *client) {
	id := r.PathValue("id")
	s.mu.Lock()
	rec := s.st.byID[id]
	var tx Transaction
	if rec != nil {
		tx = rec.tx
	}
	s.mu.Unlock()
	if rec == nil {
		writeError(w, http.StatusNotFound, "not_found", "no such transaction")
		return
	}
	if !s.allowed(w, r, c, tx.TerminalID) {
		return
	}
	if !final(tx.Status) {
		writeError(w, http.StatusConflict, "outcome_not_known", "the transaction's outcome is not known yet")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, Receipt(s.cfg.MerchantName, tx))
}

// TerminalInfo is one entry of GET /pos/v1/terminals.
type TerminalInfo struct {
	ID         string     `json:"id"`
	Health     string     `json:"health"` // up, degraded, down, unknown (not attached yet)
	Connected  bool       `json:"connected"`
	State      string     `json:"state,omitempty"`
	Model      string     `json:"model,omitempty"`
	Serial     string     `json:"serial,omitempty"`
	Firmware   string     `json:"firmware,omitempty"`
	LastStatus *time.Time `json:"last_status,omitempty"`
	Busy       bool       `json:"busy"`
	Unresolved string     `json:"unresolved_transaction_id,omitempty"`
}

func (s *Server) listTerminals(w http.ResponseWriter, _ *http.Request, c *client) {
	out := make([]TerminalInfo, 0, len(c.order))
	for _, id := range c.order {
		ti := TerminalInfo{ID: id, Health: "unknown"}
		if snap, ok := s.terms.Device(id); ok {
			ti.Health, ti.Connected, ti.State = string(snap.Health), snap.Connected, snap.State
			ti.Model, ti.Serial, ti.Firmware = snap.Model, snap.Serial, snap.Firmware
			ti.Busy, ti.Unresolved = snap.Busy, snap.Unresolved
			if !snap.LastStatus.IsZero() {
				t := snap.LastStatus.UTC()
				ti.LastStatus = &t
			}
		}
		out = append(out, ti)
	}
	writeJSON(w, http.StatusOK, map[string]any{"terminals": out})
}

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.0 document of the API.
func OpenAPI() []byte { return slices.Clone(openAPI) }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
