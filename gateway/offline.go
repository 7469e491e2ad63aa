package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/hsmseal"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

// OfflineConfig configures the offline store: stand-in decisions while the
// center cannot be asked, the store-and-forward queue of offline approvals
// and the negative-file sync (docs/offline.md).
type OfflineConfig struct {
	// Path is the bbolt file. Default DataDir/offline.db.
	Path string `yaml:"path"`
	// KeyLabel is the token label of the AES-256 at-rest key that seals
	// stored approvals; it is generated in the token at start when missing.
	// Default "at-rest".
	KeyLabel string `yaml:"key_label"`
	// Policy is the stand-in policy (docs/offline.md lists its keys); the
	// zero value means every default.
	Policy standin.Policy `yaml:"policy"`
	// ForwardRate caps the advices sent per second, so forwarding a backlog
	// does not starve live sales. Default 200.
	ForwardRate float64 `yaml:"forward_rate"`
	// Window is how many advices are in flight at once. Default 16.
	Window int `yaml:"window"`
	// NegfilePoll is the time between negative-file syncs while the link is
	// up (one also runs at every sign-on). Default 5s.
	NegfilePoll time.Duration `yaml:"negfile_poll"`
	// PurgeAfter is how long accepted advices are kept before they are
	// deleted from the file. Default 168h (7 days).
	PurgeAfter time.Duration `yaml:"purge_after"`
}

func (c OfflineConfig) withDefaults(dataDir string) OfflineConfig {
	if c.Path == "" {
		c.Path = filepath.Join(dataDir, "offline.db")
	}
	if c.KeyLabel == "" {
		c.KeyLabel = hsmseal.DefaultLabel
	}
	if c.ForwardRate == 0 {
		c.ForwardRate = 200
	}
	if c.Window == 0 {
		c.Window = 16
	}
	if c.NegfilePoll == 0 {
		c.NegfilePoll = 5 * time.Second
	}
	if c.PurgeAfter == 0 {
		c.PurgeAfter = 7 * 24 * time.Hour
	}
	return c
}

// validate reports every bad offline key of a config with defaults applied.
func (c OfflineConfig) validate() []error {
	var errs []error
	bad := func(key string, val any, rule string) {
		errs = append(errs, fmt.Errorf("offline.%s = %q: %s", key, fmt.Sprint(val), rule))
	}
	if c.ForwardRate < 0 {
		bad("forward_rate", c.ForwardRate, "must be a positive number of advices per second")
	}
	if c.Window < 0 || c.Window > 1024 {
		bad("window", c.Window, "must be 1 to 1024")
	}
	if c.NegfilePoll < 0 {
		bad("negfile_poll", c.NegfilePoll, "must be a positive duration")
	}
	if c.PurgeAfter < 0 {
		bad("purge_after", c.PurgeAfter, "must be a positive duration")
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("offline.policy: %w", err))
	}
	return errs
}

// offlineParts are the offline store of a running gateway with its
// forwarder and negative-file sync. run owns their goroutines.
type offlineParts struct {
	store   *offline.Store
	journal *standInJournal
	adv     *AdviceForwarder
	neg     *NegFileSync
	poll    time.Duration
	logger  *slog.Logger
}

// openOffline makes sure the at-rest key exists in the token (AES-256,
// encrypt/decrypt, generated when missing) and opens the offline store
// sealed by it. Close the store after the token users are done.
// It sets fwd's stand-in store, advice store and metrics.
func openOffline(cfg Config, tok *hsm.Token, fwd *Forwarder, log *slog.Logger, m *Metrics) (*offlineParts, error) {
	oc := cfg.Offline
	ok, err := tok.HasKey(oc.KeyLabel)
	if err == nil && !ok {
		err = tok.GenerateAES(oc.KeyLabel, 256, hsm.UseEncrypt|hsm.UseDecrypt)
	}
	if err != nil {
		return nil, fmt.Errorf("offline at-rest key %q: %w", oc.KeyLabel, err)
	}
	st, err := offline.Open(offline.Config{Path: oc.Path, Sealer: hsmseal.New(tok, oc.KeyLabel), Policy: oc.Policy})
	if err != nil {
		return nil, fmt.Errorf("open offline store: %w", err)
	}
	if m != nil {
		err := m.Registry.Register(NewOfflineCollector(st))
		if err == nil {
			fwd.StandInMetrics, err = NewStandInMetrics(m.Registry)
		}
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("register offline metrics: %w", err)
		}
	}
	j := newStandInJournal(st)
	fwd.Offline = j
	fwd.Advices = st
	return &offlineParts{store: st, journal: j, logger: log, poll: oc.NegfilePoll}, nil
}

// start prepares the forwarder and the negative-file sync on the uplink.
func (o *offlineParts) start(cfg Config, up Uplink) {
	oc := cfg.Offline
	o.adv = &AdviceForwarder{Queue: o.store.Queue(), Uplink: up, Window: oc.Window, Rate: oc.ForwardRate,
		PurgeAfter: oc.PurgeAfter, Logger: o.logger.With("component", "advices")}
	o.neg = &NegFileSync{Store: o.store, Uplink: up, GatewayID: cfg.GatewayID, Logger: o.logger.With("component", "negfile")}
}

// run forwards advices and syncs the negative file while ctx lasts; it
// returns when both have stopped.
func (o *offlineParts) run(ctx context.Context, lw LinkWatcher) {
	if o.adv == nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { o.adv.Run(ctx, lw) })
	wg.Go(func() { o.neg.Run(ctx, lw, o.poll) })
	wg.Wait()
}

// routes registers the offline admin routes on mux (see docs/offline.md).
func (o *offlineParts) routes(mux *http.ServeMux) {
	RegisterOfflineAdmin(mux, o.store, o.adv, o.logger)
}

// RegisterOfflineAdmin registers the offline admin routes over st on mux
// (docs/offline.md, "Admin surface"): GET /offline/status, GET
// /offline/rejected and POST /offline/forward, which triggers a pass of
// adv (nil: the gateway is not enrolled and the route answers 409). They
// answer loopback clients only. devicectl's offline commands read them.
// log receives store failures; nil discards them.
func RegisterOfflineAdmin(mux *http.ServeMux, st *offline.Store, adv *AdviceForwarder, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &offlineParts{store: st, adv: adv, logger: log}
	mux.Handle("GET /offline/rejected", localOnly(http.HandlerFunc(o.getRejected)))
	mux.Handle("GET /offline/status", localOnly(http.HandlerFunc(o.getStatus)))
	mux.Handle("POST /offline/forward", localOnly(http.HandlerFunc(o.postForward)))
}

// Headroom tells what stand-in could still approve at a terminal for a card
// not yet read (for the ECR API: a POS can show it before the sale).
func (o *offlineParts) Headroom(sc standin.Scope) (standin.Headroom, error) {
	return o.store.Headroom(sc)
}

func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the offline admin routes answer local clients only"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// RecordJSON is a stored offline approval on the admin surface: no card
// data beyond the masked PAN, never the request bytes.
type RecordJSON struct {
	ID             uint64    `json:"id"`
	IdempotencyKey string    `json:"idempotency_key"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	Action         string    `json:"action,omitempty"`
	ApprovedAt     time.Time `json:"approved_at"`
	AnsweredAt     time.Time `json:"answered_at,omitzero"`
	ApprovalCode   string    `json:"approval_code"`
	// Origin is "stand-in" (the gateway approved it) or "terminal" (the
	// terminal's chip card did; its own advice is forwarded).
	Origin     string `json:"origin"`
	TerminalID string `json:"terminal_id"`
	MerchantID string `json:"merchant_id"`
	Brand      string `json:"brand"`
	MaskedPAN  string `json:"masked_pan"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
}

func recordJSON(r offline.Record) RecordJSON {
	return RecordJSON{ID: r.ID, IdempotencyKey: r.IdempotencyKey, State: r.State.String(), Attempts: r.Attempts,
		Action: r.Action, ApprovedAt: r.ApprovedAt.UTC(), AnsweredAt: r.AnsweredAt.UTC(), ApprovalCode: r.ApprovalCode, Origin: r.Origin.String(),
		TerminalID: r.TerminalID, MerchantID: r.MerchantID, Brand: r.Brand, MaskedPAN: r.MaskedPAN, Amount: r.Amount, Currency: r.Currency}
}

func (o *offlineParts) getRejected(w http.ResponseWriter, _ *http.Request) {
	recs, err := o.store.Queue().Rejected()
	if err != nil {
		o.logger.Error("list rejected advices", "reason", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "offline store unavailable"})
		return
	}
	out := OfflineRejected{Rejected: []RecordJSON{}}
	for _, r := range recs {
		out.Rejected = append(out.Rejected, recordJSON(r))
	}
	writeJSON(w, http.StatusOK, out)
}

func (o *offlineParts) getStatus(w http.ResponseWriter, _ *http.Request) {
	st, err := o.store.Queue().Stats()
	if err == nil {
		var neg offline.NegativeState
		neg, err = o.store.Negative()
		if err == nil {
			writeJSON(w, http.StatusOK, statusJSON(st, neg))
			return
		}
	}
	o.logger.Error("read offline status", "reason", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "offline store unavailable"})
}

func (o *offlineParts) postForward(w http.ResponseWriter, _ *http.Request) {
	if o.adv == nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the gateway is not enrolled: nothing can be forwarded"})
		return
	}
	o.adv.Trigger()
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "forward pass requested"})
}

// OfflineTotal is a count and an amount (minor units) on the admin surface.
type OfflineTotal struct {
	Count  int64 `json:"count"`
	Amount int64 `json:"amount"`
}

// OfflineSession is a partly received negative-file sync session.
type OfflineSession struct {
	Snapshot bool   `json:"snapshot"`
	Base     uint64 `json:"base"`
	Version  uint64 `json:"version"`
	Total    uint32 `json:"total"`
	Next     uint32 `json:"next"`
}

// OfflineNegative is the negative file's state on the admin surface.
type OfflineNegative struct {
	Loaded   bool            `json:"loaded"`
	Version  uint64          `json:"version"`
	SyncedAt time.Time       `json:"synced_at,omitzero"`
	Session  *OfflineSession `json:"session,omitempty"`
}

// OfflineStatus is the answer of GET /offline/status: the forwarding
// queue by state (pending, sent, accepted, rejected, expired), the
// exposure, the oldest queued approval and the negative file.
type OfflineStatus struct {
	Queue map[string]OfflineTotal `json:"queue"`
	// Exposure is the amount approved offline and not yet answered.
	Exposure int64 `json:"exposure"`
	// Oldest is when the oldest queued approval was made; zero (absent)
	// when the queue is empty.
	Oldest   time.Time       `json:"oldest,omitzero"`
	Negative OfflineNegative `json:"negative_file"`
}

// OfflineRejected is the answer of GET /offline/rejected.
type OfflineRejected struct {
	Rejected []RecordJSON `json:"rejected"`
}

func statusJSON(st offline.Stats, neg offline.NegativeState) OfflineStatus {
	t := func(x offline.Total) OfflineTotal { return OfflineTotal{x.Count, x.Amount} }
	out := OfflineStatus{
		Queue: map[string]OfflineTotal{"pending": t(st.Pending), "sent": t(st.Sent), "accepted": t(st.Accepted),
			"rejected": t(st.Rejected), "expired": t(st.Expired)},
		Exposure: st.Exposure, Oldest: st.Oldest,
		Negative: OfflineNegative{Loaded: neg.Loaded, Version: neg.Version, SyncedAt: neg.SyncedAt},
	}
	if s := neg.Session; s != nil {
		out.Negative.Session = &OfflineSession{s.Snapshot, s.Base, s.Version, s.Total, s.Next}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// OfflineCollector exports the offline store's queue and negative-file
// state as Prometheus metrics, read at scrape time. It is safe for
// concurrent use.
type OfflineCollector struct {
	store                    *offline.Store
	queue, amount, exposure  *prometheus.Desc
	oldest, negVer, negAge   *prometheus.Desc
	negLoaded, storeFailures *prometheus.Desc
}

// NewOfflineCollector returns a collector over st.
func NewOfflineCollector(st *offline.Store) *OfflineCollector {
	return &OfflineCollector{
		store:         st,
		queue:         prometheus.NewDesc("posgate_offline_queue", "Offline approvals by forwarding state (pending, sent, accepted, rejected, expired).", []string{"state"}, nil),
		amount:        prometheus.NewDesc("posgate_offline_queue_amount", "Amount (minor units) of offline approvals by forwarding state.", []string{"state"}, nil),
		exposure:      prometheus.NewDesc("posgate_offline_exposure", "Amount approved offline and not yet answered by the center (minor units).", nil, nil),
		oldest:        prometheus.NewDesc("posgate_offline_oldest_age_seconds", "Age of the oldest queued offline approval; 0 when the queue is empty.", nil, nil),
		negVer:        prometheus.NewDesc("posgate_negfile_version", "Version of the negative file in force.", nil, nil),
		negLoaded:     prometheus.NewDesc("posgate_negfile_loaded", "1 when a negative file is loaded, else 0.", nil, nil),
		negAge:        prometheus.NewDesc("posgate_negfile_age_seconds", "Time since the negative file was last synced or confirmed current.", nil, nil),
		storeFailures: prometheus.NewDesc("posgate_offline_scrape_errors", "1 when the offline store could not be read for this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *OfflineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queue, c.amount, c.exposure, c.oldest, c.negVer, c.negLoaded, c.negAge, c.storeFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *OfflineCollector) Collect(ch chan<- prometheus.Metric) {
	st, err1 := c.store.Queue().Stats()
	neg, err2 := c.store.Negative()
	failed := 0.0
	if err1 != nil || err2 != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.storeFailures, prometheus.GaugeValue, failed)
	if err1 == nil {
		for _, s := range []struct {
			name string
			t    offline.Total
		}{{"pending", st.Pending}, {"sent", st.Sent}, {"accepted", st.Accepted}, {"rejected", st.Rejected}, {"expired", st.Expired}} {
			ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(s.t.Count), s.name)
			ch <- prometheus.MustNewConstMetric(c.amount, prometheus.GaugeValue, float64(s.t.Amount), s.name)
		}
		ch <- prometheus.MustNewConstMetric(c.exposure, prometheus.GaugeValue, float64(st.Exposure))
		age := 0.0
		if !st.Oldest.IsZero() {
			age = time.Since(st.Oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	}
	if err2 == nil {
		loaded := 0.0
		if neg.Loaded {
			loaded = 1
		}
		ch <- prometheus.MustNewConstMetric(c.negLoaded, prometheus.GaugeValue, loaded)
		ch <- prometheus.MustNewConstMetric(c.negVer, prometheus.GaugeValue, float64(neg.Version))
		if !neg.SyncedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.negAge, prometheus.GaugeValue, time.Since(neg.SyncedAt).Seconds())
		}
	}
}

// LinkWatcher reports the link's state and its changes. *link.Client
// satisfies it.
type LinkWatcher interface {
	Watch() (link.State, <-chan struct{})
}

// waitUp blocks until lw reports Up or ctx ends.
func waitUp(ctx context.Context, lw LinkWatcher) error {
	for {
		s, ch := lw.Watch()
		if s == link.Up {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

var errPassStopped = errors.New("gateway: pass stopped")

// StandInMetrics counts stand-in decisions by reason. A nil
// *StandInMetrics records nothing; it is safe for concurrent use.
type StandInMetrics struct {
	decisions *prometheus.CounterVec
}

// NewStandInMetrics creates the stand-in counter on reg.
func NewStandInMetrics(reg prometheus.Registerer) (*StandInMetrics, error) {
	m := &StandInMetrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posgate_standin_decisions_total",
		Help: "Requests decided in stand-in, by reason (approved, blocked, floor_limit, ...; error when the store failed).",
	}, []string{"reason"})}
	if err := reg.Register(m.decisions); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *StandInMetrics) decided(reason string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(reason).Inc()
}

// standInJournal remembers the last stand-in decisions, so the POS API can
// tell a transaction was answered offline and learn which card acceptor
// (DE 41, DE 42) a device is. It wraps the StandIn the Forwarder calls.
// It is safe for concurrent use; it holds no card data beyond the masked
// PAN.
type standInJournal struct {
	next StandIn
	now  func() time.Time

	mu      sync.Mutex
	entries [journalSize]journalEntry // ring, guarded by mu
	n       int                       // entries written, guarded by mu
	scopes  map[string]standin.Scope  // device id → scope, guarded by mu
}

// journalSize bounds the decisions remembered: far more than the sales in
// flight on a gateway at once.
const journalSize = 512

type journalEntry struct {
	terminalID, merchantID, stan, masked string
	dec                                  offline.Decision
	at                                   time.Time
}

func newStandInJournal(next StandIn) *standInJournal {
	return &standInJournal{next: next, now: time.Now, scopes: map[string]standin.Scope{}}
}

// Approve decides through the wrapped StandIn and remembers the decision.
func (j *standInJournal) Approve(sale offline.Sale) (offline.Decision, error) {
	dec, err := j.next.Approve(sale)
	if err != nil {
		return dec, err
	}
	e := journalEntry{terminalID: sale.TerminalID, merchantID: sale.MerchantID, masked: sale.MaskedPAN, dec: dec, at: j.now().UTC()}
	if h, perr := iso93.Peek(sale.Message); perr == nil {
		e.stan = h.STAN
	}
	j.mu.Lock()
	j.entries[j.n%journalSize] = e
	j.n++
	j.mu.Unlock()
	return dec, nil
}

// find returns the newest decision whose STAN, action code and masked PAN
// (first six and last four, when both sides know it) are r's, and
// remembers r's device as that decision's card acceptor.
func (j *standInJournal) find(r device.TxnResult) (journalEntry, bool) {
	if r.STAN == "" {
		return journalEntry{}, false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := 1; i <= min(j.n, journalSize); i++ {
		e := j.entries[(j.n-i)%journalSize]
		if e.stan != r.STAN || e.dec.ActionCode != r.ActionCode || !sameMasked(e.masked, r.MaskedPAN) {
			continue
		}
		j.scopes[r.DeviceID] = standin.Scope{TerminalID: e.terminalID, MerchantID: e.merchantID}
		return e, true
	}
	return journalEntry{}, false
}

func (j *standInJournal) scope(deviceID string) (standin.Scope, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	sc, ok := j.scopes[deviceID]
	return sc, ok
}

// sameMasked compares the first six and last four characters of two
// masked PANs; an empty side matches anything.
func sameMasked(a, b string) bool {
	if a == "" || b == "" {
		return true
	}
	if len(a) < 10 || len(b) < 10 {
		return a == b
	}
	return a[:6] == b[:6] && a[len(a)-4:] == b[len(b)-4:]
}

// posOffline is the offline store as the POS API sees it (ecr.Offline).
type posOffline struct {
	store   *offline.Store
	journal *standInJournal
	link    LinkWatcher // nil: the gateway has no link (not enrolled)
}

// Headroom implements ecr.Offline.
func (p *posOffline) Headroom(terminal string) (ecr.OfflineHeadroom, error) {
	sc, known := p.journal.scope(terminal)
	if !known {
		sc = standin.Scope{TerminalID: terminal}
	}
	h, err := p.store.Headroom(sc)
	if err != nil {
		return ecr.OfflineHeadroom{}, err
	}
	st, err := p.store.Queue().Stats()
	if err != nil {
		return ecr.OfflineHeadroom{}, fmt.Errorf("offline headroom: %w", err)
	}
	neg, err := p.store.Negative()
	if err != nil {
		return ecr.OfflineHeadroom{}, fmt.Errorf("offline headroom: %w", err)
	}
	pol := p.store.Policy()
	rules := pol.Rules(sc)
	out := ecr.OfflineHeadroom{
		Terminal: terminal, LinkDown: true, Available: h.Available, Reason: reasonCode(h.Reason), MaxAmount: h.MaxAmount,
		Currency: pol.CurrencyCode(), FloorLimit: rules.FloorLimit,
		ExposureRemaining: max(0, pol.TotalExposureOrDefault()-st.Exposure),
		CardCount:         rules.CardCount, CardAmount: rules.CardAmount, Window: rules.Window.String(),
	}
	if known {
		out.TerminalID, out.MerchantID = sc.TerminalID, sc.MerchantID
	}
	if neg.Loaded {
		out.NegativeFileVersion = neg.Version
	}
	if p.link != nil {
		s, _ := p.link.Watch()
		out.LinkDown = s != link.Up
	}
	return out, nil
}

// StandIn implements ecr.Offline.
func (p *posOffline) StandIn(r device.TxnResult) (ecr.OfflineDecision, bool) {
	e, ok := p.journal.find(r)
	if !ok {
		return ecr.OfflineDecision{}, false
	}
	return ecr.OfflineDecision{Approved: e.dec.Approved, Reason: reasonCode(e.dec.Reason), ActionCode: e.dec.ActionCode, DecidedAt: e.at}, true
}

// reasonCode is r's name as a POS API code: "floor limit" → "floor_limit".
func reasonCode(r standin.Reason) string { return strings.ReplaceAll(r.String(), " ", "_") }

// posView returns the offline store for the POS API; c is the uplink, nil
// when the gateway is not enrolled.
func (o *offlineParts) posView(c *link.Client) ecr.Offline {
	p := &posOffline{store: o.store, journal: o.journal}
	if c != nil {
		p.link = c
	}
	return p
}

// NewOfflineView wraps st for the Forwarder and the POS API, as Run does:
// set the StandIn as Forwarder.Offline (it decides through st and
// remembers each decision) and pass the ecr.Offline as
// ecr.Options.Offline (headroom from st, and the offline block of a
// transaction whose answer one of those decisions was). lw reports the
// link; nil means there is none (not enrolled: the link counts as down).
// Both are safe for concurrent use.
func NewOfflineView(st *offline.Store, lw LinkWatcher) (StandIn, ecr.Offline) {
	j := newStandInJournal(st)
	return j, &posOffline{store: st, journal: j, link: lw}
}
