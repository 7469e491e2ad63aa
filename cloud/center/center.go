package center

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/posgate/posgate/cloud/api"
	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/cloud/c2c"
	"github.com/posgate/posgate/cloud/cardsec"
	"github.com/posgate/posgate/cloud/routing"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/tokenvault"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/pki"
)

// Parts are the opened resources of a center: its token, store and link CA.
// Close releases them in reverse order of opening.
type Parts struct {
	Token *hsm.Token
	Store *store.Store
	Vault *tokenvault.Vault
	CA    *pki.CA
}

// Close closes the store, then the token.
func (p *Parts) Close() error {
	var errs []error
	if p.Store != nil {
		errs = append(errs, p.Store.Close())
	}
	if p.Token != nil {
		errs = append(errs, p.Token.Close())
	}
	return errors.Join(errs...)
}

// Open validates cfg and opens the center's token (bootstrapping missing keys
// when allowed), its store (applying migrations) and its link CA.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Parts, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Parts{}
	tok, err := cfg.HSM.Open()
	if err != nil {
		return nil, err
	}
	p.Token = tok
	if err := EnsureKeys(tok, cfg.Keys, cfg.DataDir, log); err != nil {
		p.Close()
		return nil, err
	}
	p.Vault = &tokenvault.Vault{Token: tok, VaultLabel: cfg.Keys.Vault, FingerprintLabel: cfg.Keys.Fingerprint, BDKLabel: cfg.Keys.BDK, TDESBDKLabel: cfg.Keys.TDESBDK}
	st, err := store.Open(ctx, store.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN,
		MaxConns: cfg.Store.MaxConns, MaxBatch: cfg.Store.MaxBatch})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	p.Store = st
	if p.CA, err = LoadOrCreateCA(cfg.DataDir); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Run validates cfg (applying its defaults) and serves the link and
// /metrics until ctx is done. Run always returns a non-nil error; on
// shutdown it stops the link (in-flight requests finish), stops HTTP, and
// closes the store and the token last. Whatever it opened is closed when it
// returns, also when it fails half-way.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	p, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()

	certPEM, keyPEM, err := p.CA.IssueServer(cfg.Link.Hosts, serverValidity)
	if err != nil {
		return fmt.Errorf("issue link server certificate: %w", err)
	}
	tlsConf, err := pki.ServerTLS(p.CA.CertPEM(), certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("link TLS: %w", err)
	}
	metrics := NewMetrics()
	router, err := newRouter(ctx, cfg, p, log.With("component", "routing"))
	if err != nil {
		return err
	}
	defer router.close()
	keys, err := cardsec.New(p.Token, 0, hsm.ARPCKeyICCMaster)
	if err != nil {
		return err
	}
	defer keys.Close()
	// Issuer scripts (an APPLICATION BLOCK for lost and stolen chip cards)
	// are MACed under the secure-messaging keys (docs/emv.md).
	sm, err := p.Token.SecureMessaging(cfg.Keys.IMKSMI, cfg.Keys.IMKSMC, 0)
	if err != nil {
		return err
	}
	defer sm.Close()
	sw := &authz.Switch{Store: p.Store, Decrypter: p.Vault, Vault: p.Vault, Router: router.Router,
		Chip: authz.ChipConfig{Keys: keys, IMKLabel: cfg.Keys.IMKAC, CVKLabel: cfg.Keys.CVK, AllowedAIDs: cfg.Keys.AllowedAIDs,
			Scripts: sm},
		PIN: authz.PINConfig{Verifier: p.Token, BDKLabel: cfg.Keys.BDK}}
	negFile, err := NewNegFileServer(p.Store, metrics.Registry, log.With("component", "negfile"))
	if err != nil {
		return err
	}
	sigs := &SignatureServer{Store: p.Store, Logger: log.With("component", "signatures")}
	srv, err := link.NewServer(link.ServerConfig{
		Addr:       cfg.Link.Listen,
		TLS:        tlsConf,
		Handler:    &LinkHandler{Switch: sw, NegFile: negFile, Signatures: sigs, Logger: log.With("component", "link"), Metrics: metrics},
		Control:    iso93.NetworkCodec{},
		Authorize:  signOnCheck(p.Store, log),
		OnPeer:     metrics.linkPeer,
		MaxStreams: cfg.Link.MaxStreams,
		Logger:     log.With("component", "link"),
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return fmt.Errorf("link listener: %w", err)
	}
	// Until Serve takes it over the socket is ours: a failure below must
	// not leave it open.
	defer srv.Close()
	httpL, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	var c2cSrv *c2c.Server
	if cfg.C2C.Listen != "" {
		if c2cSrv, err = newC2C(cfg.C2C, sw, p.Store, log.With("component", "c2c")); err != nil {
			return err
		}
	}
	apiH, err := apiHandler(p, log.With("component", "api"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	mux.Handle(api.Prefix+"/", apiH)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ctx); ctx.Err() == nil {
			cancel(fmt.Errorf("link: %w", err))
		}
	})
	wg.Go(func() {
		if err := hs.Serve(httpL); !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("http: %w", err))
		}
	})
	wg.Go(func() { router.Run(ctx) })
	if c2cSrv != nil {
		wg.Go(func() {
			if err := c2cSrv.Serve(ctx); ctx.Err() == nil {
				cancel(fmt.Errorf("c2c: %w", err))
			}
		})
		log.Info("center-to-center port listening", "addr", c2cSrv.Addr().String(), "tls", cfg.C2C.TLS)
	}
	log.Info("cardcenter running", "link", srv.Addr().String(), "http", httpL.Addr().String(), "store", cfg.Store.Driver)
	<-ctx.Done()
	shut, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	hs.Shutdown(shut)
	wg.Wait()
	return context.Cause(ctx)
}

// centerRouter is the switching part of a running center: the router and
// its brand-host clients, which close must close.
type centerRouter struct {
	*routing.Router
}

func (r centerRouter) close() {
	for _, c := range r.Hosts {
		c.Close()
	}
}

// newRouter builds the brand-host clients and the router and seeds the
// configured BIN routes into the store (existing ones are kept).
func newRouter(ctx context.Context, cfg Config, p *Parts, log *slog.Logger) (centerRouter, error) {
	sw := cfg.Switching
	hosts := map[string]*routing.Client{}
	for _, h := range sw.BrandHosts {
		hc := routing.HostConfig{Name: h.Name, Addr: h.Address, Timeout: time.Duration(h.Timeout)}
		if h.TLS {
			tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: h.ServerName}
			if h.CAFile != "" {
				pool, err := loadPool(h.CAFile)
				if err != nil {
					return centerRouter{}, fmt.Errorf("brand host %s: %w", h.Name, err)
				}
				tc.RootCAs = pool
			}
			hc.TLS = tc
		}
		hosts[h.Name] = routing.NewClient(hc, log)
	}
	r := centerRouter{&routing.Router{Store: p.Store, Hosts: hosts, Sealer: p.Vault, Logger: log,
		AcquirerID: sw.AcquirerID, RetryInterval: time.Duration(sw.RetryInterval), MaxAttempts: sw.MaxAttempts}}
	err := p.Store.Update(ctx, func(tx *store.Tx) error {
		have, err := tx.BINRoutes(ctx)
		if err != nil {
			return err
		}
	next:
		for _, rc := range sw.Routes {
			for _, h := range have {
				if h.BINLow == rc.BINLow && h.BINHigh == rc.BINHigh && h.PANLength == rc.PANLength {
					continue next // kept as stored: the store is the authority
				}
			}
			if _, err := tx.InsertBINRoute(ctx, store.BINRoute{BINLow: rc.BINLow, BINHigh: rc.BINHigh, PANLength: rc.PANLength,
				Destination: rc.Destination, StandInTxnLimit: rc.StandInTxnLimit, StandInDailyLimit: rc.StandInDailyLimit}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.close()
		return centerRouter{}, fmt.Errorf("seed BIN routes: %w", err)
	}
	return r, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", file)
	}
	return pool, nil
}

// newC2C opens the center-to-center port.
func newC2C(cc C2CConfig, sw *authz.Switch, st *store.Store, log *slog.Logger) (*c2c.Server, error) {
	cfg := c2c.Config{Addr: cc.Listen, Switch: sw, Store: st, Logger: log, MaxInFlight: cc.MaxInFlight}
	if cc.TLS {
		cert, err := tls.LoadX509KeyPair(cc.CertFile, cc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("c2c TLS key pair: %w", err)
		}
		pool, err := loadPool(cc.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("c2c client CA: %w", err)
		}
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	} else {
		cfg.AllowList = map[string]string{}
		for _, a := range cc.Allow {
			cfg.AllowList[a.Address] = a.HeadOffice
		}
	}
	srv, err := c2c.Listen(cfg)
	if err != nil {
		return nil, fmt.Errorf("c2c listener: %w", err)
	}
	return srv, nil
}
