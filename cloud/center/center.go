package center

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/posgate/posgate/cloud/authz"
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
	tok, err := OpenToken(cfg.HSM)
	if err != nil {
		return nil, err
	}
	p.Token = tok
	if err := EnsureKeys(tok, cfg.Keys, cfg.DataDir, log); err != nil {
		p.Close()
		return nil, err
	}
	p.Vault = &tokenvault.Vault{Token: tok, VaultLabel: cfg.Keys.Vault, FingerprintLabel: cfg.Keys.Fingerprint, BDKLabel: cfg.Keys.BDK, TDESBDKLabel: cfg.Keys.TDESBDK}
	st, err := store.Open(ctx, store.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN})
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

// Run serves the link and /metrics until ctx is done. Run always returns a
// non-nil error; on shutdown it stops the link (in-flight requests finish),
// stops HTTP, and closes the store and the token last.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
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
	sw := &authz.Switch{Store: p.Store, Decrypter: p.Vault, Vault: p.Vault}
	srv, err := link.NewServer(link.ServerConfig{
		Addr:       cfg.Link.Listen,
		TLS:        tlsConf,
		Handler:    &LinkHandler{Switch: sw, Logger: log.With("component", "link"), Metrics: metrics},
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
	httpL, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
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
	log.Info("cardcenter running", "link", srv.Addr().String(), "http", httpL.Addr().String(), "store", cfg.Store.Driver)
	<-ctx.Done()
	shut, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	hs.Shutdown(shut)
	wg.Wait()
	return context.Cause(ctx)
}
