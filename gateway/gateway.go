// Package gateway is the edge appliance: it accepts terminal connections,
// forwards their ISO 8583:1993 messages to the center over the QUIC link
// without repacking them, and serves its metrics. Clear card data never
// reaches it: terminals send the DUKPT-encrypted card-data block.
package gateway

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
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/pki"
)

// ErrNotEnrolled is returned when the gateway has no link certificate yet.
var ErrNotEnrolled = errors.New("gateway: not enrolled with the center")

// CSRPath is where the gateway writes its certificate signing request.
func CSRPath(cfg Config) string { return filepath.Join(cfg.DataDir, "link", "gateway.csr") }

// OpenToken creates (when cfg.SoftHSMDir is not "-") and opens the gateway's
// token, and makes sure the link identity key exists in it.
func OpenToken(cfg Config) (*hsm.Token, error) {
	h := cfg.HSM
	tok, err := hsm.OpenSoftHSMDir(h.SoftHSMDir, hsm.Config{ModulePath: h.Module, TokenLabel: h.TokenLabel, PIN: h.PIN})
	if err != nil {
		return nil, err
	}
	ok, err := tok.HasKey(h.IdentityLabel)
	if err == nil && !ok {
		err = tok.GenerateECDSA(h.IdentityLabel)
	}
	if err != nil {
		tok.Close()
		return nil, fmt.Errorf("link identity key %q: %w", h.IdentityLabel, err)
	}
	return tok, nil
}

// WriteCSR writes a certificate signing request for the gateway's token-held
// identity key to CSRPath and returns the path.
func WriteCSR(cfg Config, tok *hsm.Token) (string, error) {
	signer, err := tok.Signer(cfg.HSM.IdentityLabel)
	if err != nil {
		return "", fmt.Errorf("identity signer: %w", err)
	}
	csr, err := pki.NewCSR(signer, cfg.GatewayID)
	if err != nil {
		return "", fmt.Errorf("build CSR: %w", err)
	}
	p := CSRPath(cfg)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, csr, 0o644); err != nil {
		return "", fmt.Errorf("write CSR: %w", err)
	}
	return p, nil
}

// linkTLS loads the gateway's certificate and the link CA. It returns
// ErrNotEnrolled when either file is missing.
func linkTLS(cfg Config, tok *hsm.Token) (*tls.Config, error) {
	certPEM, err := os.ReadFile(cfg.Center.Cert)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("read link certificate: %w", err)
	}
	caPEM, err := os.ReadFile(cfg.Center.CACert)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("read link CA: %w", err)
	}
	signer, err := tok.Signer(cfg.HSM.IdentityLabel)
	if err != nil {
		return nil, fmt.Errorf("identity signer: %w", err)
	}
	cert, err := pki.SignerCertificate(certPEM, signer)
	if err != nil {
		return nil, fmt.Errorf("link certificate %s: %w", cfg.Center.Cert, err)
	}
	c, err := pki.ClientTLS(caPEM, cert)
	if err != nil {
		return nil, fmt.Errorf("link TLS: %w", err)
	}
	return c, nil
}

// Run runs the gateway until ctx is done: it opens the token, connects the
// uplink (when enrolled), listens for terminals and serves /metrics. Run
// always returns a non-nil error; on shutdown it stops accepting, lets
// in-flight requests finish, and closes the token last.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	tok, err := OpenToken(cfg)
	if err != nil {
		return err
	}
	defer tok.Close()

	metrics := NewMetrics()
	fwd := &Forwarder{Timeout: cfg.Center.RequestTimeout, Logger: log, Metrics: metrics}
	off, err := openOffline(cfg, tok, fwd, log.With("component", "offline"), metrics)
	if err != nil {
		return err
	}
	defer off.store.Close()

	tlsConf, err := linkTLS(cfg, tok)
	var client *link.Client
	switch {
	case errors.Is(err, ErrNotEnrolled):
		p, cerr := WriteCSR(cfg, tok)
		if cerr != nil {
			return cerr
		}
		log.Error("gateway is not enrolled: the link stays down and every sale is answered 907 until it is",
			"csr", p, "enrol", fmt.Sprintf("cardcenter enrol --gateway-id %s --csr %s --out %s --ca-out %s", cfg.GatewayID, p, cfg.Center.Cert, cfg.Center.CACert))
		fwd.Uplink = notEnrolled{}
	case err != nil:
		return err
	default:
		client, err = link.NewClient(link.ClientConfig{
			Addrs:          cfg.Center.Addrs,
			TLS:            tlsConf,
			GatewayID:      cfg.GatewayID,
			Control:        iso93.NetworkCodec{},
			EchoInterval:   cfg.Center.EchoInterval,
			EchoTimeout:    cfg.Center.EchoTimeout,
			RequestTimeout: cfg.Center.RequestTimeout,
			Logger:         log.With("component", "uplink"),
			OnState:        func(ev link.Event) { metrics.SetLinkUp(ev.State == link.Up) },
		})
		if err != nil {
			return err
		}
		fwd.Uplink = client
		// Timeout reversals are stored before the terminal is answered
		// and resent after a restart (reversal.go).
		fwd.Reverser = &Reverser{Uplink: client, Store: off.store, Logger: log.With("component", "reversals")}
		off.start(cfg, client)
	}

	// The device manager relays terminal-link financial requests through
	// the same Forwarder; the POS API runs transactions on its devices and
	// hears every result it learns.
	var posAPI *ecr.Server
	dcfg := cfg.Terminals.Device
	dcfg.Devices = cfg.Devices
	dcfg.Handler = fwd
	dcfg.Logger = log.With("component", "devices")
	dcfg.Registerer = metrics.Registry
	dcfg.OnResult = func(r device.TxnResult) { posAPI.OnResult(r) }
	// Signatures the terminals capture go to the center (signature.go),
	// stored before the terminal is told complete.
	sigq := &SignatureQueue{Uplink: fwd.Uplink, GatewayID: cfg.GatewayID, Store: off.store, Logger: log.With("component", "signatures")}
	dcfg.Signatures = sigq
	if off.adv != nil {
		retrySignaturesAfterAdvices(off.adv, sigq)
	}
	devices, err := device.New(dcfg)
	if err != nil {
		return err
	}
	// The POS API's transaction records live in the offline store, so a
	// retry after a restart never starts a second sale.
	posAPI, err = ecr.New(cfg.POS, devices, ecr.Options{Logger: log.With("component", "pos-api"), Registerer: metrics.Registry,
		Offline: off.posView(client), Journal: off.store})
	if err != nil {
		return err
	}
	defer posAPI.Close()

	termL, err := net.Listen("tcp", cfg.Terminals.Listen)
	if err != nil {
		return fmt.Errorf("terminal listener: %w", err)
	}
	httpL, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		termL.Close()
		return fmt.Errorf("http listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	off.routes(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// POS API servers: no write timeout, a sale waits for the customer.
	var posServers []*http.Server
	var posListeners []net.Listener
	closeAll := func() {
		termL.Close()
		httpL.Close()
		for _, l := range posListeners {
			l.Close()
		}
	}
	if cfg.POS.Listen == "" {
		mux.Handle("/pos/v1/", posAPI.Handler())
	} else {
		l, err := net.Listen("tcp", cfg.POS.Listen)
		if err != nil {
			closeAll()
			return fmt.Errorf("POS API listener: %w", err)
		}
		posListeners = append(posListeners, l)
		posServers = append(posServers, &http.Server{Handler: posAPI.Handler(), ReadHeaderTimeout: 5 * time.Second})
	}
	if cfg.POS.TLS.Listen != "" {
		tc, err := posTLS(cfg.POS.TLS)
		if err != nil {
			closeAll()
			return err
		}
		l, err := tls.Listen("tcp", cfg.POS.TLS.Listen, tc)
		if err != nil {
			closeAll()
			return fmt.Errorf("POS API TLS listener: %w", err)
		}
		posListeners = append(posListeners, l)
		posServers = append(posServers, &http.Server{Handler: posAPI.Handler(), ReadHeaderTimeout: 5 * time.Second})
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if client != nil {
		wg.Go(func() {
			if err := client.Run(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("uplink: %w", err))
			}
		})
	}
	if fwd.Reverser != nil {
		wg.Go(func() { fwd.Reverser.Run(ctx) })
	}
	if client != nil {
		wg.Go(func() { off.run(ctx, client) })
	}
	wg.Go(func() {
		ts := &TerminalServer{Forwarder: fwd, Logger: log.With("component", "terminals")}
		if err := ts.Serve(ctx, termL); ctx.Err() == nil {
			cancel(err)
		}
	})
	wg.Go(func() {
		if err := srv.Serve(httpL); !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("http: %w", err))
		}
	})
	wg.Go(func() { sigq.Run(ctx) })
	wg.Go(func() {
		if err := devices.Run(ctx); ctx.Err() == nil {
			cancel(fmt.Errorf("devices: %w", err))
		}
	})
	for i, ps := range posServers {
		wg.Go(func() {
			if err := ps.Serve(posListeners[i]); !errors.Is(err, http.ErrServerClosed) {
				cancel(fmt.Errorf("POS API: %w", err))
			}
		})
	}
	log.Info("posgate running", "gateway_id", cfg.GatewayID, "terminals", termL.Addr().String(), "http", httpL.Addr().String(), "center", cfg.Center.Addrs)
	<-ctx.Done()
	shut, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	srv.Shutdown(shut)
	for _, ps := range posServers {
		ps.Shutdown(shut)
	}
	posAPI.Close()
	if client != nil {
		client.Close()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// retrySignaturesAfterAdvices makes adv wake sigq after every pass that
// delivered advices: the signature of an offline sale is answered 914
// until the sale's advice is at the center, and would otherwise wait out
// its retry interval (up to a minute).
func retrySignaturesAfterAdvices(adv *AdviceForwarder, sigq *SignatureQueue) {
	adv.AfterPass = func(answered int) {
		if answered > 0 {
			sigq.Wake()
		}
	}
}

// notEnrolled is the uplink of a gateway without a link certificate.
type notEnrolled struct{}

func (notEnrolled) RoundTrip(context.Context, []byte) ([]byte, error) { return nil, ErrNotEnrolled }

// posTLS builds the POS API's HTTPS configuration: the server certificate,
// and client certificates verified against the client CA when given (a POS
// without one authenticates with its API key).
func posTLS(c ecr.TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("POS API TLS certificate: %w", err)
	}
	caPEM, err := os.ReadFile(c.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("POS API client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("POS API client CA %s: no PEM certificate", c.ClientCA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
