package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/posgate/posgate/protocol/frame"
	"github.com/quic-go/quic-go"
)

// Server defaults, used where a ServerConfig field is zero.
const (
	DefaultMaxStreams     = 256
	DefaultStreamTimeout  = 10 * time.Second
	DefaultHandlerTimeout = 30 * time.Second
	DefaultSignOnTimeout  = 10 * time.Second
)

// MaxMaxStreams is the largest MaxStreams accepted.
const MaxMaxStreams = 1 << 16

// ServerConfig configures a Server. Zero durations and sizes mean the
// default named in the field's comment.
type ServerConfig struct {
	// Addr is the UDP address to listen on, e.g. ":7443" or
	// "127.0.0.1:0". Required.
	Addr string
	// TLS holds the center's server certificate and the link CA: ClientAuth
	// must be tls.RequireAndVerifyClientCert and ClientCAs set. Required.
	// The server uses a copy with MinVersion TLS 1.3 and NextProtos [ALPN].
	TLS *tls.Config
	// Handler serves request streams. Required.
	Handler Handler
	// Control answers the control stream. Required.
	Control Control
	// Authorize, if set, is called once per connection with the sign-on
	// request, after the TLS identity is known; an error refuses the sign-on
	// (for example, a gateway that is known but disabled) and is logged.
	Authorize func(ctx context.Context, p Peer) error
	// OnPeer, if set, is called with up true when a gateway has signed on,
	// and with up false when that connection ends. It must not block.
	OnPeer func(p Peer, up bool)
	// MaxStreams bounds the concurrent request streams of one connection;
	// a client that reaches it waits for a stream to finish. Default 256.
	// The control stream comes on top.
	MaxStreams int
	// MaxMessage bounds the body of a request or control frame. Default
	// frame.MaxLen.
	MaxMessage int
	// StreamTimeout bounds reading a request (from the stream's opening
	// to its end) and, separately, writing its response. A stream opened
	// and abandoned is reset when it passes. Default 10s.
	StreamTimeout time.Duration
	// HandlerTimeout bounds a handler's context. Default 30s.
	HandlerTimeout time.Duration
	// SignOnTimeout bounds the wait for the sign-on after the handshake.
	// Default 10s.
	SignOnTimeout time.Duration
	// HandshakeTimeout is the QUIC handshake idle timeout. Default 5s.
	HandshakeTimeout time.Duration
	// IdleTimeout is the QUIC idle timeout; the gateway's echoes keep a
	// healthy link busier than this. Default 30s.
	IdleTimeout time.Duration
	// Logger receives connection and stream failures with the gateway ID;
	// never message bytes. Default slog.Default().
	Logger *slog.Logger
	// ListenPacket opens the UDP socket. Default net.ListenPacket.
	ListenPacket func(network, address string) (net.PacketConn, error)
}

// Validate reports every invalid field of cfg, each error naming the field,
// its value and the rule; all match ErrConfig. It applies no defaults.
func (cfg *ServerConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("link server config: "+format+": %w", append(args, ErrConfig)...))
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		bad("Addr = %q is not host:port", cfg.Addr)
	}
	if cfg.TLS == nil {
		bad("TLS is nil")
	} else {
		t := cfg.TLS
		if len(t.Certificates) == 0 && t.GetCertificate == nil {
			bad("TLS has no server certificate (Certificates or GetCertificate)")
		}
		if t.ClientAuth != tls.RequireAndVerifyClientCert {
			bad("TLS.ClientAuth = %v, must be RequireAndVerifyClientCert", t.ClientAuth)
		}
		if t.ClientCAs == nil {
			bad("TLS.ClientCAs is nil, need the link CA")
		}
		if t.MaxVersion != 0 && t.MaxVersion < tls.VersionTLS13 {
			bad("TLS.MaxVersion = %#x, the link needs TLS 1.3", t.MaxVersion)
		}
		if t.GetConfigForClient != nil {
			bad("TLS.GetConfigForClient is set, it would bypass the client-certificate rule")
		}
	}
	if cfg.Handler == nil {
		bad("Handler is nil")
	}
	if cfg.Control == nil {
		bad("Control is nil")
	}
	if cfg.MaxStreams < 0 || cfg.MaxStreams > MaxMaxStreams {
		bad("MaxStreams = %d is outside 0..%d", cfg.MaxStreams, MaxMaxStreams)
	}
	if cfg.MaxMessage < 0 || cfg.MaxMessage > frame.MaxLen {
		bad("MaxMessage = %d is outside 0..%d", cfg.MaxMessage, frame.MaxLen)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"StreamTimeout", cfg.StreamTimeout}, {"HandlerTimeout", cfg.HandlerTimeout},
		{"SignOnTimeout", cfg.SignOnTimeout}, {"HandshakeTimeout", cfg.HandshakeTimeout},
		{"IdleTimeout", cfg.IdleTimeout},
	} {
		if d.v < 0 {
			bad("%s = %v is negative", d.name, d.v)
		}
	}
	return errors.Join(errs...)
}

func (cfg ServerConfig) withDefaults() ServerConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.StreamTimeout, DefaultStreamTimeout)
	def(&cfg.HandlerTimeout, DefaultHandlerTimeout)
	def(&cfg.SignOnTimeout, DefaultSignOnTimeout)
	def(&cfg.HandshakeTimeout, DefaultConnectTimeout)
	def(&cfg.IdleTimeout, DefaultIdleTimeout)
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = frame.MaxLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ListenPacket == nil {
		cfg.ListenPacket = net.ListenPacket
	}
	return cfg
}

// Server is the center end of the link. It is safe for concurrent use; Serve
// may be called once. Whoever calls Listen owns the socket until Serve takes
// it over: a caller that returns before Serve runs must call Close.
type Server struct {
	cfg  ServerConfig
	tls  *tls.Config
	quic *quic.Config
	log  *slog.Logger

	mu     sync.Mutex
	pc     net.PacketConn
	ln     *quic.Listener
	served bool
	closed bool
	stop   context.CancelFunc // ends a running Serve; nil before Serve
	done   chan struct{}      // closed when a running Serve has returned
}

// NewServer validates cfg and returns a Server that is not yet listening.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tlsConf := cfg.TLS.Clone()
	tlsConf.MinVersion = tls.VersionTLS13
	tlsConf.NextProtos = []string{ALPN}
	return &Server{
		cfg: cfg,
		tls: tlsConf,
		quic: &quic.Config{
			HandshakeIdleTimeout:  cfg.HandshakeTimeout,
			MaxIdleTimeout:        cfg.IdleTimeout,
			MaxIncomingStreams:    int64(cfg.MaxStreams) + 1, // + the control stream
			MaxIncomingUniStreams: -1,
		},
		log: cfg.Logger,
	}, nil
}

// Listen opens the UDP socket on cfg.Addr, so that Addr is known before
// Serve runs. Serve calls it if it has not been called. Calling it again
// returns nil; after Close it returns ErrServerClosed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.ln != nil {
		return nil
	}
	if s.served {
		return ErrServerClosed
	}
	pc, err := s.cfg.ListenPacket("udp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("link server: listen on %s: %w", s.cfg.Addr, err)
	}
	ln, err := quic.Listen(pc, s.tls, s.quic)
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("link server: start QUIC on %s: %w", s.cfg.Addr, err)
	}
	s.pc, s.ln = pc, ln
	return nil
}

// Addr returns the address the server listens on, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts gateway connections until ctx ends or Close is called. On
// return every connection is closed (code CodeShutdown), every handler has
// returned and the listener and socket are closed. Serve always returns a
// non-nil error: ErrServerClosed after ctx ends or Close, or the error that
// stopped it.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.served {
		s.mu.Unlock()
		return fmt.Errorf("link server: Serve called twice: %w", ErrServerClosed)
	}
	s.served = true
	s.stop, s.done = cancel, make(chan struct{})
	ln, pc, done := s.ln, s.pc, s.done
	s.mu.Unlock()
	defer close(done)

	var wg sync.WaitGroup
	var err error
	for {
		conn, aerr := ln.Accept(ctx)
		if aerr != nil {
			if ctx.Err() != nil {
				err = ErrServerClosed
			} else {
				err = fmt.Errorf("link server: accept: %w", aerr)
			}
			break
		}
		wg.Go(func() { s.serveConn(ctx, conn) })
	}
	cancel()
	wg.Wait()
	_ = ln.Close()
	_ = pc.Close()
	return err
}

// Close shuts the server down for good. It closes the listener and socket
// that Listen opened when Serve has not taken them over; when Serve is
// running it ends it as a cancelled context would (every connection closed,
// every handler returned) and waits for it to return. Afterwards Listen and
// Serve return ErrServerClosed. Close is idempotent and always returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	wasClosed := s.closed
	s.closed = true
	ln, pc := s.ln, s.pc
	stop, done := s.stop, s.done
	if !s.served {
		s.ln, s.pc = nil, nil
	}
	served := s.served
	s.mu.Unlock()
	if !served {
		if !wasClosed && ln != nil {
			_ = ln.Close()
			_ = pc.Close()
		}
		return nil
	}
	stop()
	<-done
	return nil
}

// serveConn runs one gateway connection: sign-on, then the control loop and
// the request streams, until the connection ends or ctx is cancelled.
func (s *Server) serveConn(ctx context.Context, conn *quic.Conn) {
	log := s.log.With("remote", conn.RemoteAddr().String())
	peer, err := peerOf(conn)
	if err != nil {
		log.Warn("link connection refused", "err", err)
		_ = conn.CloseWithError(CodeBadPeer, "bad peer identity")
		return
	}
	log = log.With("gateway", peer.GatewayID)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closeCode, closeMsg := CodeShutdown, "center shutting down"
	defer func() { _ = conn.CloseWithError(closeCode, closeMsg) }()
	defer func() {
		// Control.Reply and Authorize see outside input; a panic in them
		// drops this connection only.
		if r := recover(); r != nil {
			log.Error("link connection panic", "panic", panicReason(r))
			closeCode, closeMsg = CodeControlError, "internal error"
		}
	}()

	ctl, err := s.signOn(ctx, conn, peer)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("link sign-on failed", "err", err)
			closeCode, closeMsg = CodeSignOnRefused, "sign-on refused"
		}
		return
	}
	log.Info("link gateway signed on")
	if s.cfg.OnPeer != nil {
		s.cfg.OnPeer(peer, true)
		defer s.cfg.OnPeer(peer, false)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before wg.Wait: stops handlers and the control loop
	wg.Go(func() {
		defer func() {
			if r := recover(); r != nil {
				log.Error("link control panic", "panic", panicReason(r))
				_ = conn.CloseWithError(CodeControlError, "internal error")
			}
		}()
		if err := s.controlLoop(ctx, ctl); err != nil && ctx.Err() == nil && conn.Context().Err() == nil {
			log.Warn("link control stream failed", "err", err)
			_ = conn.CloseWithError(CodeControlError, "control stream failed")
		}
	})
	for {
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Info("link connection closed", "err", err)
			}
			return
		}
		wg.Go(func() {
			serveStream(ctx, str, s.cfg.Handler, peer, streamLimits{
				maxMessage:     s.cfg.MaxMessage,
				streamTimeout:  s.cfg.StreamTimeout,
				handlerTimeout: s.cfg.HandlerTimeout,
			}, log.With("stream", int64(str.StreamID())))
		})
	}
}

// peerOf extracts the gateway identity from a connection whose handshake
// verified the client certificate.
func peerOf(conn *quic.Conn) (Peer, error) {
	st := conn.ConnectionState().TLS
	if st.NegotiatedProtocol != ALPN {
		return Peer{}, fmt.Errorf("negotiated protocol %q, want %q", st.NegotiatedProtocol, ALPN)
	}
	if len(st.PeerCertificates) == 0 {
		return Peer{}, errors.New("no client certificate")
	}
	cert := st.PeerCertificates[0]
	if cert.Subject.CommonName == "" {
		return Peer{}, errors.New("client certificate has an empty CommonName")
	}
	return Peer{GatewayID: cert.Subject.CommonName, RemoteAddr: conn.RemoteAddr(), Cert: cert}, nil
}

// signOn accepts the control stream, reads the sign-on and answers it.
func (s *Server) signOn(ctx context.Context, conn *quic.Conn, peer Peer) (*quic.Stream, error) {
	sctx, cancel := context.WithTimeout(ctx, s.cfg.SignOnTimeout)
	defer cancel()
	ctl, err := conn.AcceptStream(sctx)
	if err != nil {
		return nil, fmt.Errorf("accept control stream: %w", err)
	}
	deadline, _ := sctx.Deadline()
	_ = ctl.SetDeadline(deadline)
	req, err := frame.Read(ctl, s.cfg.MaxMessage)
	if err != nil {
		return nil, fmt.Errorf("read sign-on: %w", err)
	}
	if s.cfg.Authorize != nil {
		if err := s.cfg.Authorize(sctx, peer); err != nil {
			return nil, fmt.Errorf("authorize gateway: %w", err)
		}
	}
	resp, rerr := s.cfg.Control.Reply(req)
	if len(resp) > 0 {
		if err := frame.Write(ctl, resp); err != nil {
			return nil, errors.Join(rerr, fmt.Errorf("write sign-on reply: %w", err))
		}
	}
	if rerr != nil {
		return nil, fmt.Errorf("answer sign-on: %w", rerr)
	}
	if len(resp) == 0 {
		return nil, errors.New("answer sign-on: control produced no reply")
	}
	_ = ctl.SetDeadline(time.Time{})
	return ctl, nil
}

// controlLoop answers echoes (and any other control request) until the
// stream or connection ends or ctx is cancelled.
func (s *Server) controlLoop(ctx context.Context, ctl *quic.Stream) error {
	// A cancelled ctx ends the wait for the next request at once: the
	// gateway's next echo may be a whole EchoInterval away, and shutdown
	// waits for this loop before it closes the connection.
	stop := context.AfterFunc(ctx, func() { _ = ctl.SetReadDeadline(time.Now()) })
	defer stop()
	for ctx.Err() == nil {
		req, err := frame.Read(ctl, s.cfg.MaxMessage)
		if err != nil {
			return fmt.Errorf("read control request: %w", err)
		}
		resp, rerr := s.cfg.Control.Reply(req)
		if len(resp) > 0 {
			_ = ctl.SetWriteDeadline(time.Now().Add(s.cfg.StreamTimeout))
			if err := frame.Write(ctl, resp); err != nil {
				return fmt.Errorf("write control reply: %w", err)
			}
		}
		if rerr != nil {
			return fmt.Errorf("answer control request: %w", rerr)
		}
		if len(resp) == 0 {
			return errors.New("answer control request: control produced no reply")
		}
	}
	return ctx.Err()
}
