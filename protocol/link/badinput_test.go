package link_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/frame"
	"github.com/posgate/posgate/protocol/link"
	"github.com/quic-go/quic-go"
)

// fakePAN is a test card number; it must never appear in a log.
const fakePAN = "4111111111111111"

// rawGateway is a hand-driven link client: it signs on over a control
// stream and then opens request streams with whatever bytes a test wants.
func rawGateway(t *testing.T, env *pkiEnv, addr string) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	tlsConf := env.clientTLS(t, nil, "gw-raw")
	conn, err := quic.DialAddr(ctx, addr, tlsConf, &quic.Config{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	ctl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := []byte("SO|gw-raw|000001")
	if err := frame.Write(ctl, req); err != nil {
		t.Fatal(err)
	}
	_ = ctl.SetReadDeadline(time.Now().Add(waitLimit))
	resp, err := frame.Read(ctl, 0)
	if err != nil || string(resp) != "OK|"+string(req) {
		t.Fatalf("sign-on reply %q, %v", resp, err)
	}
	return conn
}

func TestBadInputResetsOnlyTheStream(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	logs := &logRecorder{}
	release := make(chan struct{})
	srv := startServer(t, link.ServerConfig{
		TLS: env.serverTLS, Control: ctl, MaxMessage: 1024, StreamTimeout: 300 * time.Millisecond,
		Logger: slogOf(logs),
		Handler: link.HandlerFunc(func(ctx context.Context, _ link.Peer, req []byte) ([]byte, error) {
			switch {
			case bytes.HasPrefix(req, []byte("hold")):
				<-release
			case bytes.HasPrefix(req, []byte("fail")):
				return nil, errors.New("no route for this request")
			case bytes.HasPrefix(req, []byte("panic-runtime")):
				var m map[string]int
				//lint:ignore SA5000 the nil map write is the runtime panic under test
				m["x"] = 1
			case bytes.HasPrefix(req, []byte("panic")):
				panic(string(req)) // the value holds message bytes; it must not be logged
			case bytes.HasPrefix(req, []byte("empty")):
				return nil, nil
			}
			return append([]byte("R:"), req...), nil
		}),
	})
	conn := rawGateway(t, env, srv.addr)

	// A request held open across all the bad ones proves they do not
	// disturb the connection's other streams.
	held, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := frame.Write(held, []byte("hold "+fakePAN)); err != nil {
		t.Fatal(err)
	}
	held.Close()

	withFIN := true
	tests := []struct {
		name string
		in   []byte
		fin  bool
		code quic.StreamErrorCode
	}{
		{"garbage_short_body", []byte("\x00\x09abc" + fakePAN[:3]), withFIN, link.StreamBadFrame},
		{"empty_frame", []byte{0, 0}, withFIN, link.StreamBadFrame},
		{"oversize_length", []byte{0xFF, 0xFF, 1, 2, 3}, !withFIN, link.StreamBadFrame},
		{"half_header", []byte{0x00}, withFIN, link.StreamBadFrame},
		{"no_bytes", nil, withFIN, link.StreamBadFrame},
		{"trailing_bytes", append(mustFrame(t, []byte(fakePAN)), 0xEE), withFIN, link.StreamBadFrame},
		{"two_frames", append(mustFrame(t, []byte("a")), mustFrame(t, []byte("b"))...), withFIN, link.StreamBadFrame},
		{"abandoned_mid_frame", []byte{0x00, 0x10, 'a'}, !withFIN, link.StreamTimeout},
		{"abandoned_after_frame", mustFrame(t, []byte("no fin")), !withFIN, link.StreamTimeout},
		{"handler_error", mustFrame(t, []byte("fail "+fakePAN)), withFIN, link.StreamHandlerError},
		{"handler_panic", mustFrame(t, []byte("panic "+fakePAN)), withFIN, link.StreamHandlerError},
		{"handler_runtime_panic", mustFrame(t, []byte("panic-runtime")), withFIN, link.StreamHandlerError},
		{"handler_empty_response", mustFrame(t, []byte("empty")), withFIN, link.StreamHandlerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			s, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.in) > 0 {
				if _, err := s.Write(tt.in); err != nil {
					t.Fatal(err)
				}
			}
			if tt.fin {
				s.Close()
			}
			_ = s.SetReadDeadline(time.Now().Add(waitLimit))
			_, err = io.ReadAll(s)
			var se *quic.StreamError
			if !errors.As(err, &se) || !se.Remote || se.ErrorCode != tt.code {
				t.Fatalf("read: got %v, want a reset with code %#x", err, tt.code)
			}
			s.CancelWrite(0)

			// The same connection still serves a good request.
			if got := rawRoundTrip(t, conn, []byte("good")); string(got) != "R:good" {
				t.Fatalf("good request after bad one: %q", got)
			}
		})
	}

	close(release)
	_ = held.SetReadDeadline(time.Now().Add(waitLimit))
	resp, err := frame.Read(held, 0)
	if err != nil || !bytes.HasPrefix(resp, []byte("R:hold")) {
		t.Fatalf("held request: %v", err)
	}

	logText := logs.text()
	for _, want := range []string{"link request refused", "link request failed", "handler panic", "assignment to entry in nil map"} {
		if !strings.Contains(logText, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logText, fakePAN) {
		t.Errorf("log carries message bytes")
	}
	if !strings.Contains(logText, "gateway=gw-raw") {
		t.Errorf("log does not name the gateway")
	}
}

func TestBadControlStreamClosesConnection(t *testing.T) {
	env := newPKI(t)
	ctl := newTestControl(t)
	srv := startServer(t, link.ServerConfig{TLS: env.serverTLS, Control: ctl, Handler: echoHandler})
	tests := []struct {
		name string
		in   []byte
		code quic.ApplicationErrorCode
	}{
		{"garbage_sign_on", mustFrame(t, []byte("hello")), link.CodeSignOnRefused},
		{"empty_sign_on", []byte{0, 0}, link.CodeSignOnRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			conn, err := quic.DialAddr(ctx, srv.addr, env.clientTLS(t, nil, "gw-x"), &quic.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseWithError(0, "")
			s, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.Write(tt.in)
			select {
			case <-conn.Context().Done():
			case <-ctx.Done():
				t.Fatal("connection not closed")
			}
			var ae *quic.ApplicationError
			if err := context.Cause(conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != tt.code {
				t.Fatalf("closed with %v, want code %#x", err, tt.code)
			}
		})
	}
	t.Run("server_still_serves", func(t *testing.T) {
		conn := rawGateway(t, env, srv.addr)
		if got := rawRoundTrip(t, conn, []byte("ok")); string(got) != "R:ok" {
			t.Fatalf("got %q", got)
		}
	})
}

func rawRoundTrip(t *testing.T, conn *quic.Conn, req []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := frame.Write(s, req); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_ = s.SetReadDeadline(time.Now().Add(waitLimit))
	resp, err := frame.Read(s, 0)
	if err != nil {
		t.Fatalf("raw round trip: %v", err)
	}
	return resp
}

func mustFrame(t testing.TB, body []byte) []byte {
	t.Helper()
	b, err := frame.Append(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// panicControl panics while answering a sign-on.
type panicControl struct{ *testControl }

func (p panicControl) Reply(req []byte) ([]byte, error) {
	if bytes.HasPrefix(req, []byte("SO|")) {
		panic("control bug")
	}
	return p.testControl.Reply(req)
}

func TestControlPanicDropsOnlyTheConnection(t *testing.T) {
	tests := []struct {
		name      string
		control   func(*testControl) link.Control
		authorize func(context.Context, link.Peer) error
	}{
		{"reply_panics", func(c *testControl) link.Control { return panicControl{c} }, nil},
		{"authorize_panics", func(c *testControl) link.Control { return c }, func(context.Context, link.Peer) error {
			var p *link.Peer
			_ = p.GatewayID // nil dereference
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newPKI(t)
			ctl := newTestControl(t)
			logs := &logRecorder{}
			srv := startServer(t, link.ServerConfig{
				TLS: env.serverTLS, Control: tt.control(ctl), Handler: echoHandler,
				Authorize: tt.authorize, Logger: slogOf(logs),
			})
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			conn, err := quic.DialAddr(ctx, srv.addr, env.clientTLS(t, nil, "gw-p"), &quic.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseWithError(0, "")
			s, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := frame.Write(s, []byte("SO|gw-p|000001")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-conn.Context().Done():
			case <-ctx.Done():
				t.Fatal("connection not closed")
			}
			var ae *quic.ApplicationError
			if err := context.Cause(conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != link.CodeControlError {
				t.Fatalf("closed with %v, want CodeControlError", err)
			}
			if !strings.Contains(logs.text(), "link connection panic") {
				t.Errorf("panic not logged")
			}
			// The server is still accepting: a fresh connection gets as far
			// as the handshake and sign-on again.
			conn2, err := quic.DialAddr(ctx, srv.addr, env.clientTLS(t, nil, "gw-p"), &quic.Config{})
			if err != nil {
				t.Fatalf("server stopped accepting after a panic: %v", err)
			}
			conn2.CloseWithError(0, "")
		})
	}
}
