// Package gateway is the edge appliance's configuration and composition
// root: New opens and wires every part (the token, the offline store, the
// uplink, the forwarding path, stand-in, the outboxes, the device manager,
// the POS API and the HTTP listeners) and Run runs them until its context
// ends. Each job lives in its own package below: forward, standin, advice,
// negsync, outbox, admin (adminapi for its JSON), device and ecr.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/posgate/posgate/gateway/admin"
	"github.com/posgate/posgate/gateway/advice"
	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/gateway/negsync"
	"github.com/posgate/posgate/gateway/outbox"
	"github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/hsmseal"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
)

// ShutdownTimeout bounds a gateway's shutdown: draining the HTTP servers
// and waiting for its parts to end.
const ShutdownTimeout = 10 * time.Second

// Gateway is a wired posgate: everything New opened, and the parts Run
// runs. Create it with New; call Run once.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	parts []part // started in order, stopped in reverse
	// closers release what New opened, in reverse order of opening.
	closers []func()
	termL   net.Listener
	httpL   net.Listener
}

// part is one job of a running gateway. run, when set, runs until ctx ends;
// a run that returns before that stops the gateway. stop, when set, is
// called at shutdown (in reverse order of the parts) to make run return
// or to drain.
type part struct {
	name string
	run  func(ctx context.Context) error
	stop func(ctx context.Context)
}

// wiring is what New builds before it knows every part.
type wiring struct {
	g       *Gateway
	tok     *hsm.Token
	store   *offline.Store
	metrics *forward.Metrics
	fwd     *forward.Forwarder
	client  *link.Client      // nil when not enrolled
	adv     *advice.Forwarder // nil when not enrolled
	sigq    *outbox.SignatureQueue
}

// New validates cfg and opens and wires the whole gateway: the token, the
// offline store sealed by its at-rest key, the uplink (or, without a link
// certificate, a CSR and an uplink that refuses everything), the
// forwarding path with stand-in, the outboxes, the device manager, the POS
// API and the terminal, HTTP and POS listeners. Which optional parts run
// is decided here, once. On any failure New closes everything it opened
// and returns the error. log receives every part's logs.
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &wiring{g: &Gateway{cfg: cfg, log: log}}
	if err := w.build(); err != nil {
		w.g.close()
		return nil, err
	}
	return w.g, nil
}

// build runs New's steps in order; each registers what it opens in
// g.closers as it goes.
func (w *wiring) build() error {
	for _, step := range []func() error{w.openToken, w.openStore, w.openUplink, w.newSignatures, w.newPOS} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (g *Gateway) onClose(f func())             { g.closers = append(g.closers, f) }
func (g *Gateway) add(p part)                   { g.parts = append(g.parts, p) }
func (g *Gateway) logger(c string) *slog.Logger { return g.log.With("component", c) }

// close releases what New opened, last opened first.
func (g *Gateway) close() {
	for i := len(g.closers) - 1; i >= 0; i-- {
		g.closers[i]()
	}
	g.closers = nil
}

func (w *wiring) openToken() error {
	tok, err := OpenToken(w.g.cfg)
	if err != nil {
		return err
	}
	w.tok = tok
	w.g.onClose(func() { tok.Close() })
	return nil
}

// openStore makes sure the at-rest key exists in the token (AES-256,
// encrypt/decrypt, generated when missing), opens the offline store sealed
// by it, and builds the forwarder with stand-in over it.
func (w *wiring) openStore() error {
	cfg, g := w.g.cfg, w.g
	oc := cfg.Offline
	ok, err := w.tok.HasKey(oc.KeyLabel)
	if err == nil && !ok {
		err = w.tok.GenerateAES(oc.KeyLabel, 256, hsm.UseEncrypt|hsm.UseDecrypt)
	}
	if err != nil {
		return fmt.Errorf("offline at-rest key %q: %w", oc.KeyLabel, err)
	}
	st, err := offline.Open(offline.Config{Path: oc.Path, Sealer: hsmseal.New(w.tok, oc.KeyLabel), Policy: oc.Policy})
	if err != nil {
		return fmt.Errorf("open offline store: %w", err)
	}
	w.store = st
	g.onClose(func() { st.Close() })
	w.metrics = forward.NewMetrics()
	sm, err := standin.NewMetrics(w.metrics.Registry)
	if err == nil {
		err = w.metrics.Registry.Register(admin.NewCollector(st))
	}
	if err != nil {
		return fmt.Errorf("register offline metrics: %w", err)
	}
	w.fwd = &forward.Forwarder{
		Timeout: cfg.Center.RequestTimeout, Logger: g.log, Metrics: w.metrics, Advices: st,
		StandIn: &standin.Decider{Store: st, Metrics: sm, Logger: g.log},
	}
	return nil
}

// openUplink connects the forwarder to the center. Enrolled, it creates
// the link client and the parts that need it: the uplink, timeout
// reversals, advice forwarding and the negative-file sync. Not enrolled,
// it writes a CSR and the forwarder's uplink refuses everything, so every
// sale is decided in stand-in.
func (w *wiring) openUplink() error {
	cfg, g := w.g.cfg, w.g
	tlsConf, err := linkTLS(cfg, w.tok)
	switch {
	case errors.Is(err, forward.ErrNotEnrolled):
		p, cerr := WriteCSR(cfg, w.tok)
		if cerr != nil {
			return cerr
		}
		g.log.Error("gateway is not enrolled: the link stays down and every sale is answered 907 until it is",
			"csr", p, "enrol", fmt.Sprintf("cardcenter enrol --gateway-id %s --csr %s --out %s --ca-out %s", cfg.GatewayID, p, cfg.Center.Cert, cfg.Center.CACert))
		w.fwd.Uplink = notEnrolled{}
		return nil
	case err != nil:
		return err
	}
	client, err := link.NewClient(link.ClientConfig{
		Addrs:          cfg.Center.Addrs,
		TLS:            tlsConf,
		GatewayID:      cfg.GatewayID,
		Control:        iso93.NetworkCodec{},
		EchoInterval:   cfg.Center.EchoInterval,
		EchoTimeout:    cfg.Center.EchoTimeout,
		RequestTimeout: cfg.Center.RequestTimeout,
		Logger:         g.logger("uplink"),
		OnState:        func(ev link.Event) { w.metrics.SetLinkUp(ev.State == link.Up) },
	})
	if err != nil {
		return err
	}
	w.client = client
	w.fwd.Uplink = client
	g.add(part{name: "uplink", run: client.Run, stop: func(context.Context) { client.Close() }})
	// Timeout reversals are stored before the terminal is answered and
	// resent after a restart.
	rev := &outbox.Reverser{Uplink: client, Store: w.store, Logger: g.logger("reversals")}
	w.fwd.Reverser = rev
	if err := outbox.RegisterReversals(w.metrics.Registry, rev); err != nil {
		return err
	}
	g.add(part{name: "reversals", run: func(ctx context.Context) error { rev.Run(ctx); return nil }})
	oc := cfg.Offline
	w.adv = &advice.Forwarder{Queue: w.store.Queue(), Uplink: client, Window: oc.Window, Rate: oc.ForwardRate,
		PurgeAfter: oc.PurgeAfter, Logger: g.logger("advices")}
	g.add(part{name: "advices", run: func(ctx context.Context) error { w.adv.Run(ctx, client); return nil }})
	neg := &negsync.NegFileSync{Store: w.store, Uplink: client, GatewayID: cfg.GatewayID, Logger: g.logger("negfile")}
	g.add(part{name: "negfile", run: func(ctx context.Context) error { neg.Run(ctx, client, oc.NegfilePoll); return nil }})
	return nil
}

// newSignatures builds the signature outbox: signatures the terminals
// capture go to the center, stored before the terminal is told complete.
func (w *wiring) newSignatures() error {
	g := w.g
	w.sigq = &outbox.SignatureQueue{Uplink: w.fwd.Uplink, GatewayID: g.cfg.GatewayID, Store: w.store, Logger: g.logger("signatures")}
	if err := outbox.RegisterSignatures(w.metrics.Registry, w.sigq); err != nil {
		return err
	}
	if w.adv != nil {
		retrySignaturesAfterAdvices(w.adv, w.sigq)
	}
	g.add(part{name: "signatures", run: func(ctx context.Context) error { w.sigq.Run(ctx); return nil }})
	return nil
}

// retrySignaturesAfterAdvices makes adv wake sigq after every pass that
// delivered advices: the signature of an offline sale is answered 914
// until the sale's advice is at the center, and would otherwise wait out
// its retry interval (up to a minute).
func retrySignaturesAfterAdvices(adv *advice.Forwarder, sigq *outbox.SignatureQueue) {
	adv.AfterPass = func(answered int) {
		if answered > 0 {
			sigq.Wake()
		}
	}
}

// newPOS builds the device manager and the POS API over it, and opens the
// listeners: terminals, HTTP (/metrics, the offline admin routes and,
// without pos.listen, the POS API) and the POS API's own listeners.
func (w *wiring) newPOS() error {
	cfg, g := w.g.cfg, w.g
	// The device manager relays terminal-link financial requests through
	// the forwarder and carries each stand-in decision into its result;
	// the POS API runs transactions on its devices and hears every result
	// it learns.
	var posAPI *ecr.Server
	dcfg := cfg.Terminals.Device
	dcfg.Devices = cfg.Devices
	dcfg.Handler = w.fwd
	dcfg.Logger = g.logger("devices")
	dcfg.Registerer = w.metrics.Registry
	dcfg.OnResult = func(r device.TxnResult) { posAPI.OnResult(r) }
	dcfg.Signatures = w.sigq
	devices, err := device.New(dcfg)
	if err != nil {
		return err
	}
	g.add(part{name: "devices", run: devices.Run})
	headroom := &standin.Headroom{Store: w.store}
	if w.client != nil {
		headroom.Link = w.client
	}
	// The POS API's transaction records live in the offline store, so a
	// retry after a restart never starts a second sale.
	posAPI, err = ecr.New(cfg.POS, devices, ecr.Options{Logger: g.logger("pos-api"), Registerer: w.metrics.Registry,
		Offline: headroom, Journal: w.store})
	if err != nil {
		return err
	}
	g.onClose(posAPI.Close)
	g.add(part{name: "POS API", stop: func(context.Context) { posAPI.Close() }})
	return w.listen(posAPI)
}

// listen opens the terminal, HTTP and POS API listeners and adds their
// servers as parts.
func (w *wiring) listen(posAPI *ecr.Server) error {
	cfg, g := w.g.cfg, w.g
	termL, err := net.Listen("tcp", cfg.Terminals.Listen)
	if err != nil {
		return fmt.Errorf("terminal listener: %w", err)
	}
	g.termL = termL
	g.onClose(func() { termL.Close() })
	ts := &forward.TerminalServer{Forwarder: w.fwd, Logger: g.logger("terminals")}
	g.add(part{name: "terminals", run: func(ctx context.Context) error { return ts.Serve(ctx, termL) }})

	httpL, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	g.httpL = httpL
	g.onClose(func() { httpL.Close() })
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.metrics.Registry, promhttp.HandlerOpts{}))
	var trigger admin.Trigger // nil: not enrolled, POST /offline/forward answers 409
	if w.adv != nil {
		trigger = w.adv
	}
	admin.Register(mux, w.store, trigger, g.logger("offline"))
	if cfg.POS.Listen == "" {
		mux.Handle("/pos/v1/", posAPI.Handler())
	}
	g.serveHTTP("http", httpL, mux)

	if cfg.POS.Listen != "" {
		l, err := net.Listen("tcp", cfg.POS.Listen)
		if err != nil {
			return fmt.Errorf("POS API listener: %w", err)
		}
		g.onClose(func() { l.Close() })
		g.serveHTTP("POS API", l, posAPI.Handler())
	}
	if cfg.POS.TLS.Listen != "" {
		tc, err := posTLS(cfg.POS.TLS)
		if err != nil {
			return err
		}
		l, err := tls.Listen("tcp", cfg.POS.TLS.Listen, tc)
		if err != nil {
			return fmt.Errorf("POS API TLS listener: %w", err)
		}
		g.onClose(func() { l.Close() })
		g.serveHTTP("POS API", l, posAPI.Handler())
	}
	return nil
}

// serveHTTP adds an HTTP server on l as a part, drained at shutdown. It
// has no write timeout: a POS sale waits for the customer.
func (g *Gateway) serveHTTP(name string, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	g.add(part{
		name: name,
		run: func(context.Context) error {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
		stop: func(ctx context.Context) { srv.Shutdown(ctx) },
	})
}

// Run runs the gateway until ctx is done or a part fails, then shuts down
// in reverse order under ShutdownTimeout: it stops accepting, lets
// in-flight requests finish, waits for every part, and closes what New
// opened, the token last. Run always returns a non-nil error: ctx's cause,
// or the failure of the part that stopped the gateway. Call it once.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, p := range g.parts {
		if p.run == nil {
			continue
		}
		wg.Go(func() {
			err := p.run(ctx)
			if ctx.Err() == nil {
				if err == nil {
					err = errors.New("stopped")
				}
				cancel(fmt.Errorf("%s: %w", p.name, err))
			}
		})
	}
	// done closes when every part has ended; its goroutine ends then too.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	g.log.Info("posgate running", "gateway_id", g.cfg.GatewayID, "terminals", g.termL.Addr().String(), "http", g.httpL.Addr().String(), "center", g.cfg.Center.Addrs)
	<-ctx.Done()
	shut, cancelShut := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancelShut()
	for i := len(g.parts) - 1; i >= 0; i-- {
		if stop := g.parts[i].stop; stop != nil {
			stop(shut)
		}
	}
	select {
	case <-done:
		g.close()
	case <-shut.Done():
		// A part that outlives the bound may still use the token or the
		// store: they are left open rather than closed under it.
		g.log.Error("gateway parts still running after the shutdown bound; token and store left open", "bound", ShutdownTimeout)
	}
	return context.Cause(ctx)
}
