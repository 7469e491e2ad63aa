package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// Handler answers a terminal's financial request (an ISO 8583:1993
// message) with the financial response and, when the gateway decided it in
// stand-in, that decision. *forward.Forwarder satisfies it. An error means
// no answer could be built; the manager then drops the link with a logged
// reason.
type Handler interface {
	Exchange(ctx context.Context, raw []byte) (Answer, error)
}

// Answer is a Handler's answer to one financial request.
type Answer struct {
	// Message is the financial response sent to the terminal.
	Message []byte
	// StandIn is the gateway's stand-in decision that Message carries;
	// nil when the center (or an error reply) answered. It travels with
	// the exchange into the command's TxnResult, so the POS API learns
	// which of its transactions were answered offline without matching
	// anything after the fact.
	StandIn *StandIn
}

// Manager keeps the gateway's devices attached and runs transactions on
// them. Create it with New, then call Run; every other method is safe for
// concurrent use, before, during and after Run.
type Manager struct {
	cfg Config
	log *slog.Logger

	health     *prometheus.GaugeVec
	reconnects *prometheus.CounterVec

	mu      sync.Mutex
	devices map[string]*device
	running bool

	// runCtx is set by Run; commands run under it, not under their
	// caller's context, so a caller that goes away does not make an
	// outcome unknown.
	runCtx     atomic.Pointer[context.Context]
	attachAddr atomic.Pointer[net.Addr]
	queryID    atomic.Uint64
	sigs       signatures // signature reassembly per device (signature.go)
}

// device is one device's state; mu guards every field below it.
type device struct {
	id       string
	cfg      DeviceConfig // zero but for ID and Kind when attached
	attached bool
	resolve  chan struct{} // capacity 1: wakes the current session's resolver

	mu       sync.Mutex
	ep       *tlink.Endpoint // nil while not connected
	where    string
	snap     Snapshot
	failures int
	txn      *txn
	sessions uint64
}

// txn is one transaction command from Transact until its outcome is known.
// Its fields are guarded by the owning device's mu; done is closed when
// result is final.
type txn struct {
	kind    tlink.Kind
	cmd     tlink.TxnCommand
	unknown bool // the result was lost; a query must resolve it
	pan     string
	approval,
	action,
	stan string
	standIn *StandIn // the last exchange's stand-in decision; nil when the center answered it
	result  TxnResult
	done    chan struct{}
}

// New returns a manager for cfg. It validates cfg (see Config.Validate)
// and registers the metrics; it opens nothing until Run.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Handler == nil {
		return nil, fmt.Errorf("%w: a financial request handler is required", ErrConfig)
	}
	cfg = cfg.WithDefaults()
	m := &Manager{cfg: cfg, log: cfg.Logger, devices: make(map[string]*device)}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.health = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "posgate_device_health",
		Help: "Device health by device id: 0 down, 1 degraded, 2 up.",
	}, []string{"device"})
	m.reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posgate_device_reconnects_total",
		Help: "Links opened to a device after its first, by device id.",
	}, []string{"device"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(m.health); err != nil {
			return nil, fmt.Errorf("register device metrics: %w", err)
		}
		if err := cfg.Registerer.Register(m.reconnects); err != nil {
			return nil, fmt.Errorf("register device metrics: %w", err)
		}
	}
	for _, dc := range cfg.Devices {
		d := m.newDevice(dc.ID, dc.WithDefaults().Kind, false)
		d.cfg = dc
		d.cfg.Kind = dc.WithDefaults().Kind
		d.snap.Medium = d.cfg.Medium
		d.snap.Where = d.cfg.Path + d.cfg.Address
		m.devices[dc.ID] = d
	}
	return m, nil
}

func (m *Manager) newDevice(id string, kind transport.DeviceKind, attached bool) *device {
	d := &device{id: id, attached: attached, resolve: make(chan struct{}, 1)}
	d.cfg.ID = id
	d.cfg.Kind = kind
	d.snap = Snapshot{ID: id, Kind: kind, Attached: attached, Health: HealthDown}
	m.health.WithLabelValues(id).Set(0)
	return d
}

// Run opens every configured device, and listens on AttachListen when set,
// until ctx ends; then it closes every link and waits for all its
// goroutines. It returns a non-nil error: ctx's cause, ErrStopped for a
// second call, or the error of the attach listener.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return fmt.Errorf("run device manager: %w", ErrStopped)
	}
	m.running = true
	devs := make([]*device, 0, len(m.devices))
	for _, d := range m.devices {
		devs = append(devs, d)
	}
	m.mu.Unlock()
	m.runCtx.Store(&ctx)

	var attachL *transport.Listener
	if m.cfg.AttachListen != "" {
		var err error
		attachL, err = transport.Listen(ctx, transport.DeviceConfig{Medium: transport.TCPListen, Address: m.cfg.AttachListen})
		if err != nil {
			return fmt.Errorf("device attach listener: %w", err)
		}
		a := attachL.Addr()
		m.attachAddr.Store(&a)
	}
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Go(func() { m.keep(ctx, d) })
	}
	if attachL != nil {
		wg.Go(func() { m.acceptAttached(ctx, attachL) })
	}
	<-ctx.Done()
	wg.Wait()
	return context.Cause(ctx)
}

// AttachAddr returns the address the attach listener is bound to once Run
// has opened it (useful with AttachListen "127.0.0.1:0"), and nil before
// that or when AttachListen is empty.
func (m *Manager) AttachAddr() net.Addr {
	if a := m.attachAddr.Load(); a != nil {
		return *a
	}
	return nil
}

// Devices returns a snapshot of every device, sorted by id.
func (m *Manager) Devices() []Snapshot {
	m.mu.Lock()
	devs := make([]*device, 0, len(m.devices))
	for _, d := range m.devices {
		devs = append(devs, d)
	}
	m.mu.Unlock()
	out := make([]Snapshot, 0, len(devs))
	for _, d := range devs {
		out = append(out, d.snapshot())
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Device returns the snapshot of one device and whether it exists.
func (m *Manager) Device(id string) (Snapshot, bool) {
	d := m.device(id)
	if d == nil {
		return Snapshot{}, false
	}
	return d.snapshot(), true
}

func (m *Manager) device(id string) *device {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devices[id]
}

func (d *device) snapshot() Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.snap
	s.Connected = d.ep != nil
	s.Where = d.where
	if d.txn != nil {
		s.Busy = !d.txn.unknown
		if d.txn.unknown {
			s.Unresolved = d.txn.cmd.Ref
		}
	}
	return s
}

// Sale runs a sale of amount minor units of currency (ISO 4217 numeric)
// on the terminal deviceID under ref (1–32 printable ASCII, unique per
// transaction), as Transact does.
func (m *Manager) Sale(ctx context.Context, deviceID string, amount uint64, currency, ref string) (TxnResult, error) {
	return m.Transact(ctx, deviceID, tlink.KindSale, tlink.TxnCommand{Ref: ref, Amount: amount, Currency: currency})
}

// Transact sends the transaction command cmd of kind k (KindSale …
// KindCapture) to the terminal deviceID and waits for its txn-result, up
// to ResponseTimeout after the terminal acknowledged it.
//
// Nothing is sent, and an error wrapping ErrInvalid, ErrUnknownDevice,
// ErrNotTerminal, ErrNotConnected, ErrBusy, ErrUnresolved or ErrStopped is
// returned, when the command cannot start. Once sent, the command runs
// under the manager's context, not ctx. When its result is lost, a
// last-transaction query (on this link, or on the next one after the
// device is reopened) resolves it: Transact waits for that up to
// ResolveTimeout or until ctx ends, and then returns a result with
// OutcomeUnknown and an error wrapping ErrOutcomeUnknown; the resolved
// outcome goes to OnResult later. A returned result with a nil error has
// a final outcome.
//
// Transact is one function of about 90 lines on purpose: refusing,
// reserving the device, clearing an earlier unresolved command, sending
// and resolving a lost result are one sequence, and each early return
// undoes exactly what the steps before it took.
func (m *Manager) Transact(ctx context.Context, deviceID string, k tlink.Kind, cmd tlink.TxnCommand) (TxnResult, error) {
	if !tlink.IsTxnCommand(k) {
		return TxnResult{}, fmt.Errorf("transact %v: %w", k, ErrInvalid)
	}
	if err := cmd.Validate(k); err != nil {
		return TxnResult{}, fmt.Errorf("transact %v: %w: %w", k, ErrInvalid, err)
	}
	payload, err := cmd.MarshalBinary()
	if err != nil {
		return TxnResult{}, fmt.Errorf("transact %v: %w: %w", k, ErrInvalid, err)
	}
	rc := m.runCtx.Load()
	if rc == nil || (*rc).Err() != nil {
		return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, ErrStopped)
	}
	runCtx := *rc
	d := m.device(deviceID)
	if d == nil {
		return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, ErrUnknownDevice)
	}
	if d.cfg.Kind != transport.PaymentTerminal {
		return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, ErrNotTerminal)
	}
	t := &txn{kind: k, cmd: cmd, done: make(chan struct{})}
	d.mu.Lock()
	switch {
	case d.txn != nil && d.txn.unknown:
		d.mu.Unlock()
		return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, ErrUnresolved)
	case d.txn != nil:
		d.mu.Unlock()
		return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, ErrBusy)
	case d.ep == nil:
		d.mu.Unlock()
		return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, ErrNotConnected)
	}
	ep := d.ep
	d.txn = t
	d.mu.Unlock()

	// A late txn-result may have settled an earlier command while the
	// endpoint still counts it as unresolved: ask the terminal first.
	if _, unres := ep.Unresolved(); unres {
		qctx, cancel := context.WithTimeout(runCtx, m.cfg.StatusTimeout)
		lt, qerr := ep.LastTransaction(qctx)
		cancel()
		if qerr != nil || (lt.Txn != nil && lt.Txn.Outcome == tlink.OutcomePending) {
			d.mu.Lock()
			d.txn = nil
			d.mu.Unlock()
			return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, ErrUnresolved)
		}
	}

	msg, err := ep.Request(runCtx, k, payload)
	switch {
	case err == nil:
		var r tlink.TxnResult
		if uerr := r.UnmarshalBinary(msg.Payload); uerr == nil && r.Ref == cmd.Ref && r.Outcome != tlink.OutcomePending {
			m.finish(d, t, &r, ResolvedByResult)
			return t.result, nil
		}
		m.log.Warn("unreadable txn-result; asking the terminal for its last transaction", "device", deviceID, "ref", cmd.Ref)
	case errors.Is(err, tlink.ErrUnresolved), errors.Is(err, tlink.ErrTooLong):
		// Refused before anything was written.
		d.mu.Lock()
		d.txn = nil
		d.mu.Unlock()
		return TxnResult{}, fmt.Errorf("transact %v on %s: %w", k, deviceID, err)
	default:
		m.log.Warn("transaction result lost; resolving by last-transaction query", "device", deviceID, "ref", cmd.Ref, "command", k.String(), "reason", err)
	}
	d.mu.Lock()
	t.unknown = true
	d.mu.Unlock()
	d.wake()

	timer := time.NewTimer(m.cfg.ResolveTimeout)
	defer timer.Stop()
	select {
	case <-t.done:
		return t.result, nil
	case <-ctx.Done():
	case <-runCtx.Done():
	case <-timer.C:
	}
	d.mu.Lock()
	r := m.partial(d, t)
	d.mu.Unlock()
	return r, fmt.Errorf("transact %v on %s ref %s: %w", k, deviceID, cmd.Ref, ErrOutcomeUnknown)
}

// partial is t's result as known so far, with OutcomeUnknown. d.mu held.
func (m *Manager) partial(d *device, t *txn) TxnResult {
	return TxnResult{
		DeviceID: d.id, Ref: t.cmd.Ref, Command: t.kind, Outcome: OutcomeUnknown,
		Amount: t.cmd.Amount, Currency: t.cmd.Currency,
		ActionCode: t.action, ApprovalCode: t.approval, STAN: t.stan, MaskedPAN: t.pan, StandIn: t.standIn,
	}
}

// finish settles t with r (nil: the terminal never started it) unless it
// is settled already, and reports it to OnResult.
func (m *Manager) finish(d *device, t *txn, r *tlink.TxnResult, how Resolution) {
	d.mu.Lock()
	if d.txn != t {
		d.mu.Unlock()
		return
	}
	res := m.partial(d, t)
	res.ResolvedBy = how
	settle(&res, r)
	t.result = res
	d.txn = nil
	d.mu.Unlock()
	close(t.done)
	m.log.Info("transaction result", "device", d.id, "ref", res.Ref, "command", res.Command.String(), "outcome", string(res.Outcome), "action", res.ActionCode, "resolved_by", string(how))
	if m.cfg.OnResult != nil {
		m.cfg.OnResult(res)
	}
}

// settle sets res's outcome from the terminal's r (nil: never started)
// and copies what r knows over what res has.
func settle(res *TxnResult, r *tlink.TxnResult) {
	if r == nil {
		res.Outcome = OutcomeNotStarted
		return
	}
	res.Outcome = outcomeOf(r.Outcome)
	if r.Amount != 0 {
		res.Amount, res.Currency = r.Amount, r.Currency
	}
	if r.ActionCode != "" {
		res.ActionCode = r.ActionCode
	}
	if r.ApprovalCode != "" {
		res.ApprovalCode = r.ApprovalCode
	}
	if r.STAN != "" {
		res.STAN = r.STAN
	}
	res.RRN, res.Time = r.RRN, r.Time
	if res.StandIn != nil && res.StandIn.ActionCode != res.ActionCode {
		// The terminal did not act on the stand-in answer (it declined
		// on its own, or a later exchange answered): not an offline
		// result.
		res.StandIn = nil
	}
}

// Resolve asks terminal deviceID for its last transaction (the 0x22
// query) to settle the command cmd of kind k whose result a gateway
// restart lost; nothing but the query is sent. The terminal's last
// transaction being none or another ref means cmd never started
// (OutcomeNotStarted: a terminal accepts no command while an earlier
// result is unsettled); the same ref still pending returns OutcomeUnknown
// and an error wrapping ErrOutcomeUnknown; otherwise its outcome, with
// ResolvedBy ResolvedByQuery. ErrUnknownDevice, ErrNotTerminal,
// ErrNotConnected and ErrBusy (a command of this manager in progress) are
// returned as by Transact.
func (m *Manager) Resolve(ctx context.Context, deviceID string, k tlink.Kind, cmd tlink.TxnCommand) (TxnResult, error) {
	d := m.device(deviceID)
	if d == nil {
		return TxnResult{}, fmt.Errorf("resolve %s on %s: %w", cmd.Ref, deviceID, ErrUnknownDevice)
	}
	if d.cfg.Kind != transport.PaymentTerminal {
		return TxnResult{}, fmt.Errorf("resolve %s on %s: %w", cmd.Ref, deviceID, ErrNotTerminal)
	}
	d.mu.Lock()
	ep, busy := d.ep, d.txn != nil
	d.mu.Unlock()
	switch {
	case busy:
		return TxnResult{}, fmt.Errorf("resolve %s on %s: %w", cmd.Ref, deviceID, ErrBusy)
	case ep == nil:
		return TxnResult{}, fmt.Errorf("resolve %s on %s: %w", cmd.Ref, deviceID, ErrNotConnected)
	}
	qctx, cancel := context.WithTimeout(ctx, m.cfg.StatusTimeout)
	lt, err := ep.LastTransaction(qctx)
	cancel()
	if err != nil {
		return TxnResult{}, fmt.Errorf("resolve %s on %s: last-transaction query: %w", cmd.Ref, deviceID, err)
	}
	res := TxnResult{DeviceID: deviceID, Ref: cmd.Ref, Command: k, Amount: cmd.Amount, Currency: cmd.Currency,
		ResolvedBy: ResolvedByQuery}
	switch {
	case lt.Txn == nil || lt.Txn.Ref != cmd.Ref:
		settle(&res, nil)
	case lt.Txn.Outcome == tlink.OutcomePending:
		res.Outcome = OutcomeUnknown
		return res, fmt.Errorf("resolve %s on %s: %w", cmd.Ref, deviceID, ErrOutcomeUnknown)
	default:
		settle(&res, lt.Txn)
	}
	m.log.Info("transaction resolved after a restart", "device", deviceID, "ref", cmd.Ref, "outcome", string(res.Outcome), "action", res.ActionCode)
	return res, nil
}

func (d *device) wake() {
	select {
	case d.resolve <- struct{}{}:
	default:
	}
}

// keep keeps one configured device open: open, serve, and after the link
// ends or the open fails, wait with capped exponential backoff and reopen.
func (m *Manager) keep(ctx context.Context, d *device) {
	var l *transport.Listener
	if d.cfg.Medium == transport.TCPListen {
		defer func() {
			if l != nil {
				l.Close()
			}
		}()
	}
	delay := m.cfg.ReconnectMin
	for ctx.Err() == nil {
		rwc, err := m.open(ctx, d, &l)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.setDown(m, fmt.Sprintf("open: %v", err))
			m.log.Debug("device not available", "device", d.id, "reason", err, "retry_in", delay)
		} else {
			delay = m.cfg.ReconnectMin
			err = m.serve(ctx, d, tlink.New(rwc, m.linkConfig(d)), "")
			if ctx.Err() != nil {
				return
			}
			m.log.Warn("device link ended; reopening", "device", d.id, "reason", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, m.cfg.ReconnectMax)
	}
}

func (m *Manager) open(ctx context.Context, d *device, l **transport.Listener) (io.ReadWriteCloser, error) {
	if d.cfg.Medium != transport.TCPListen {
		return transport.OpenContext(ctx, d.cfg.DeviceConfig)
	}
	if *l == nil {
		nl, err := transport.Listen(ctx, d.cfg.DeviceConfig)
		if err != nil {
			return nil, err
		}
		*l = nl
	}
	return (*l).Accept(ctx)
}

func (m *Manager) linkConfig(d *device) tlink.Config {
	c := m.cfg.Link
	c.ResponseTimeout = m.cfg.ResponseTimeout
	switch d.cfg.Medium {
	case transport.Serial, transport.USBACM, transport.USBSerial:
		c.BitRate = d.cfg.WithDefaults().Baud
	}
	if c.Logger == nil {
		c.Logger = m.log.With("device", d.id)
	}
	return c
}

func (d *device) setDown(m *Manager, reason string) {
	d.mu.Lock()
	d.snap.Health = HealthDown
	d.snap.LastError = reason
	d.mu.Unlock()
	m.health.WithLabelValues(d.id).Set(0)
}

// acceptAttached accepts terminals on the attach listener; each one is
// identified by its first status response.
func (m *Manager) acceptAttached(ctx context.Context, l *transport.Listener) {
	defer l.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		rwc, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Error("attach listener stopped", "reason", err)
			}
			return
		}
		remote := ""
		if c, ok := rwc.(interface{ RemoteAddr() net.Addr }); ok {
			remote = c.RemoteAddr().String()
		}
		wg.Go(func() {
			err := m.serve(ctx, nil, tlink.New(rwc, m.linkConfig(&device{id: "attach"})), remote)
			if ctx.Err() == nil {
				m.log.Info("attached device link ended", "remote", remote, "reason", err)
			}
		})
	}
}

// attach finds or creates the record of a hot-attached device that
// identified itself with st.
func (m *Manager) attach(st tlink.Status) (*device, error) {
	id := st.Serial
	if !ValidID(id) {
		return nil, errors.New("status response has no usable serial number to identify the device")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.devices[id]
	if d == nil {
		kind := transport.DeviceKind(st.DeviceKind)
		if kind < transport.PaymentTerminal || kind > transport.DTMFBox {
			return nil, fmt.Errorf("device %s reports unknown device kind %d", id, st.DeviceKind)
		}
		d = m.newDevice(id, kind, true)
		m.devices[id] = d
		return d, nil
	}
	if !d.attached {
		return nil, fmt.Errorf("device %s is configured with its own transport", id)
	}
	return d, nil
}

// serve runs one link to d until it ends. d is nil for a connection on the
// attach listener: the first status response then says which device it is.
func (m *Manager) serve(ctx context.Context, d *device, ep *tlink.Endpoint, remote string) (err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ep.Close()
	runErr := make(chan error, 1)
	wg.Go(func() {
		runErr <- ep.Run(sctx)
		cancel()
	})
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("device link dropped after an internal error", "device", deviceName(d), "panic", fmt.Sprint(r))
			err = fmt.Errorf("internal error: %v", r)
		}
	}()

	st, serr := m.status(sctx, ep)
	if d == nil {
		if serr != nil {
			return fmt.Errorf("identify attached device: %w", serr)
		}
		var aerr error
		if d, aerr = m.attach(st); aerr != nil {
			m.log.Warn("attached device refused", "remote", remote, "reason", aerr)
			return aerr
		}
	}
	if !d.connect(m, ep, remote) {
		m.log.Warn("device already connected; second link refused", "device", d.id, "remote", remote)
		return fmt.Errorf("device %s already connected", d.id)
	}
	defer d.disconnect(m, ep)
	d.polled(m, st, serr)
	m.log.Info("device connected", "device", d.id, "health", string(d.snapshot().Health))

	wg.Go(func() { m.receive(sctx, d, ep, &wg) })
	wg.Go(func() { m.poll(sctx, d, ep) })
	wg.Go(func() { m.resolver(sctx, d, ep) })
	d.wake() // an outcome lost on an earlier link is resolved first
	select {
	case err = <-runErr:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func deviceName(d *device) string {
	if d == nil {
		return "(attaching)"
	}
	return d.id
}

func (d *device) connect(m *Manager, ep *tlink.Endpoint, remote string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ep != nil {
		return false
	}
	d.ep = ep
	if remote != "" {
		d.where = remote
	} else {
		d.where = d.cfg.Path + d.cfg.Address
	}
	d.sessions++
	if d.sessions > 1 {
		d.snap.Reconnects++
		m.reconnects.WithLabelValues(d.id).Inc()
	}
	d.failures = 0
	return true
}

func (d *device) disconnect(m *Manager, ep *tlink.Endpoint) {
	d.mu.Lock()
	if d.ep == ep {
		d.ep = nil
	}
	if d.txn != nil && !d.txn.unknown {
		// A command in flight on this link now has an unknown outcome;
		// Transact marks it as soon as its Request fails.
		d.txn.unknown = true
	}
	d.snap.Health = HealthDown
	d.mu.Unlock()
	m.health.WithLabelValues(d.id).Set(0)
}

// status asks the device for its status, bounded by StatusTimeout.
func (m *Manager) status(ctx context.Context, ep *tlink.Endpoint) (tlink.Status, error) {
	q := tlink.RefOnly{Ref: fmt.Sprintf("st-%x", m.queryID.Add(1))}
	p, err := q.MarshalBinary()
	if err != nil {
		return tlink.Status{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.StatusTimeout)
	defer cancel()
	msg, err := ep.Request(ctx, tlink.KindStatusRequest, p)
	if err != nil {
		return tlink.Status{}, fmt.Errorf("status request: %w", err)
	}
	var st tlink.Status
	if err := st.UnmarshalBinary(msg.Payload); err != nil {
		return tlink.Status{}, fmt.Errorf("status response: %w", err)
	}
	return st, nil
}

// polled records a status poll's answer. It reports whether the link
// should be dropped after too many failures in a row.
func (d *device) polled(m *Manager, st tlink.Status, err error) bool {
	d.mu.Lock()
	drop := false
	if err != nil {
		d.failures++
		d.snap.Health = HealthDegraded
		d.snap.LastError = err.Error()
		drop = d.failures >= StatusFailures
	} else {
		d.failures = 0
		d.snap.LastError = ""
		d.snap.LastStatus = m.cfg.Now()
		d.snap.State = stateName(st.State)
		d.snap.Model, d.snap.Serial, d.snap.Firmware = st.Model, st.Serial, st.Firmware
		d.snap.Health = HealthUp
		if st.State == tlink.StateError || st.State < tlink.StateIdle || st.State > tlink.StateUpdating {
			d.snap.Health = HealthDegraded
		}
	}
	h := d.snap.Health
	d.mu.Unlock()
	m.health.WithLabelValues(d.id).Set(h.gauge())
	return drop
}

// poll asks for the device's status every StatusInterval; after
// StatusFailures unanswered polls in a row it closes the link so that the
// device is opened again.
func (m *Manager) poll(ctx context.Context, d *device, ep *tlink.Endpoint) {
	t := time.NewTicker(m.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := m.status(ctx, ep)
		if ctx.Err() != nil {
			return
		}
		if d.polled(m, st, err) {
			m.log.Warn("device stopped answering status polls; dropping the link", "device", d.id, "reason", err)
			ep.Close()
			return
		}
	}
}

// receive handles what the device sends on its own: financial requests,
// late txn-results and status responses.
func (m *Manager) receive(ctx context.Context, d *device, ep *tlink.Endpoint, wg *sync.WaitGroup) {
	for {
		msg, err := ep.Receive(ctx)
		if err != nil {
			return
		}
		switch msg.Kind {
		case tlink.KindFinancialRequest:
			m.noteFinancial(d, msg.Payload) // links a later signature (signature.go)
			wg.Go(func() { m.financial(ctx, d, ep, msg.Payload) })
		case tlink.KindSignature:
			m.signature(ctx, d, ep, msg.Payload)
		case tlink.KindTxnResult:
			var r tlink.TxnResult
			if err := r.UnmarshalBinary(msg.Payload); err != nil {
				m.log.Warn("unreadable txn-result ignored", "device", d.id, "reason", err)
				continue
			}
			d.mu.Lock()
			t := d.txn
			d.mu.Unlock()
			if t == nil && r.Outcome != tlink.OutcomePending {
				// The result of a command this manager never sent: one
				// from before a gateway restart. Report it; the POS API
				// settles its record by ref and ignores refs it does not
				// know.
				res := TxnResult{DeviceID: d.id, Ref: r.Ref, ResolvedBy: ResolvedByLateResult}
				settle(&res, &r)
				m.log.Info("late txn-result of a command this gateway did not send", "device", d.id, "ref", r.Ref, "outcome", string(res.Outcome))
				if m.cfg.OnResult != nil {
					m.cfg.OnResult(res)
				}
				continue
			}
			if t == nil || t.cmd.Ref != r.Ref || r.Outcome == tlink.OutcomePending {
				m.log.Warn("txn-result for no command in progress ignored", "device", d.id, "ref", r.Ref)
				continue
			}
			m.finish(d, t, &r, ResolvedByLateResult)
		case tlink.KindStatusResponse:
			var st tlink.Status
			err := st.UnmarshalBinary(msg.Payload)
			d.polled(m, st, err)
		default:
			m.log.Debug("unsolicited message ignored", "device", d.id, "kind", msg.Kind.String())
		}
	}
}

// financial relays one financial request through the Handler and sends
// the answer back; it notes the DE 38, 39, 11 and 124 of the exchange and
// its stand-in decision for the command in progress.
func (m *Manager) financial(ctx context.Context, d *device, ep *tlink.Endpoint, raw []byte) {
	ans, err := m.cfg.Handler.Exchange(ctx, raw)
	if err != nil {
		m.log.Warn("financial request not answerable; dropping the link", "device", d.id, "reason", err)
		ep.Close()
		return
	}
	resp := ans.Message
	d.note(raw, resp, ans.StandIn)
	if err := ep.Send(ctx, tlink.KindFinancialResponse, resp); err != nil {
		m.log.Warn("financial response not delivered", "device", d.id, "reason", err)
	}
}

// note records the card-safe fields of a financial exchange for the
// command in progress: the masked PAN (DE 124, of the response or else of
// the request), approval code, action code, STAN and the stand-in
// decision (nil: not decided in stand-in); each exchange replaces the
// previous one's.
func (d *device) note(req, resp []byte, sin *StandIn) {
	var pan, approval, action, stan string
	if _, msg, err := iso93.Unpack(resp); err == nil {
		pan, _ = msg.GetString(124)
		approval, _ = msg.GetString(38)
		action, _ = msg.GetString(39)
		stan, _ = msg.GetString(11)
	}
	if pan == "" {
		if _, msg, err := iso93.Unpack(req); err == nil {
			pan, _ = msg.GetString(124)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.txn
	if t == nil {
		return
	}
	if pan != "" {
		t.pan = maskPAN(pan)
	}
	t.approval, t.action, t.stan, t.standIn = approval, action, stan, sin
}

// resolver settles an unknown outcome on this link: it asks the terminal
// for its last transaction whenever woken, and again every StatusInterval
// while the terminal reports the command still pending.
func (m *Manager) resolver(ctx context.Context, d *device, ep *tlink.Endpoint) {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.resolve:
		case <-retry:
		}
		retry = nil
		d.mu.Lock()
		t := d.txn
		unknown := t != nil && t.unknown
		d.mu.Unlock()
		if !unknown {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, m.cfg.StatusTimeout)
		lt, err := ep.LastTransaction(qctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.log.Warn("last-transaction query failed; will ask again", "device", d.id, "ref", t.cmd.Ref, "reason", err)
			retry = time.After(m.cfg.StatusInterval)
		case lt.Txn == nil || lt.Txn.Ref != t.cmd.Ref:
			m.finish(d, t, nil, ResolvedByQuery)
		case lt.Txn.Outcome == tlink.OutcomePending:
			retry = time.After(m.cfg.StatusInterval)
		default:
			m.finish(d, t, lt.Txn, ResolvedByQuery)
		}
	}
}
