package tlink_test

// The protocol over real transports: a pseudo-terminal whose slave side is
// opened with github.com/tarm/serial exactly as hardware is (115200 8N1, raw
// mode), and TCP loopback.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/terminal/ptytest"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

// ptyLink opens a pty, opens its slave through transport.Open as a USB
// serial device at 115200 8N1, and returns the gateway side (slave) and the
// device side (master).
func ptyLink(t testing.TB) (slave io.ReadWriteCloser, master *os.File) {
	t.Helper()
	m, path := ptytest.Open(t)
	s, err := transport.Open(transport.DeviceConfig{Medium: transport.USBSerial, Path: path, Baud: 115200, DataBits: 8, Parity: "none", StopBits: 1})
	if err != nil {
		t.Fatalf("open pty slave as serial: %v", err)
	}
	return s, m
}

// tcpLink returns both ends of a loopback TCP connection made with
// transport.Listen and transport.Open.
func tcpLink(t testing.TB) (gw, dev io.ReadWriteCloser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := transport.Listen(ctx, transport.DeviceConfig{Medium: transport.TCPListen, Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	type res struct {
		c   io.ReadWriteCloser
		err error
	}
	acc := make(chan res, 1)
	go func() { c, err := l.Accept(ctx); acc <- res{c, err} }()
	dev, err = transport.OpenContext(ctx, transport.DeviceConfig{Medium: transport.TCP, Address: l.Addr().String()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := <-acc
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	return r.c, dev
}

// exchange runs a status request and a sale with its result across a
// gateway endpoint and a terminal endpoint, plus a large message.
func exchange(t *testing.T, gw, term *tlink.Endpoint) {
	ctx := testCtx(t)
	terminalLoop(t, term, func(m tlink.Message) (tlink.Kind, []byte) {
		switch m.Kind {
		case tlink.KindStatusRequest:
			var q tlink.RefOnly
			_ = q.UnmarshalBinary(m.Payload)
			st := sampleStatus
			st.Ref = q.Ref
			return tlink.KindStatusResponse, mustMarshal(t, &st)
		case tlink.KindSale:
			var c tlink.TxnCommand
			_ = c.UnmarshalBinary(m.Payload)
			r := sampleResult
			r.Ref = c.Ref
			return tlink.KindTxnResult, mustMarshal(t, &r)
		case tlink.KindPrint:
			return tlink.KindPrintResult, mustMarshal(t, &tlink.PrintResult{Status: tlink.PrintOK})
		}
		return 0, nil
	})
	resp, err := gw.Request(ctx, tlink.KindStatusRequest, mustMarshal(t, &tlink.RefOnly{Ref: "st1"}))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st tlink.Status
	if err := st.UnmarshalBinary(resp.Payload); err != nil || st.Ref != "st1" {
		t.Fatalf("status %+v, %v", st, err)
	}
	for _, ref := range []string{"S1", "S2", "S3"} {
		resp, err := gw.Request(ctx, tlink.KindSale, mustMarshal(t, &tlink.TxnCommand{Ref: ref, Amount: 500, Currency: "392"}))
		if err != nil {
			t.Fatalf("sale %s: %v", ref, err)
		}
		var r tlink.TxnResult
		if err := r.UnmarshalBinary(resp.Payload); err != nil || r.Ref != ref || r.Outcome != tlink.OutcomeApproved {
			t.Fatalf("sale %s result %+v, %v", ref, r, err)
		}
	}
	receipt := tlink.Print{Text: string(bytes.Repeat([]byte("RECEIPT LINE \x02\x03\x10\n"), 400))}
	if _, err := gw.Request(ctx, tlink.KindPrint, mustMarshal(t, &receipt)); err != nil {
		t.Fatalf("print: %v", err)
	}
}

func TestProtocolOverPTY(t *testing.T) {
	slave, master := ptyLink(t)
	cfg := tlink.Config{BitRate: 115200}
	gw, term := tlink.New(slave, cfg), tlink.New(master, cfg)
	running(t, gw)
	running(t, term)
	exchange(t, gw, term)
}

func TestProtocolOverTCP(t *testing.T) {
	a, b := tcpLink(t)
	gw, term := tlink.New(a, tlink.Config{}), tlink.New(b, tlink.Config{})
	running(t, gw)
	running(t, term)
	exchange(t, gw, term)
}

func TestCablePulledMidExchange(t *testing.T) {
	before := runtime.NumGoroutine()
	slave, master := ptyLink(t)
	cfg := tlink.Config{AckTimeout: 30 * time.Second, DuplicateWindow: 5 * time.Minute}
	gw := tlink.New(slave, cfg)
	wait := running(t, gw)

	// The device side reads the sale frame but never answers, then the
	// cable is pulled.
	var d tlink.Decoder
	buf := make([]byte, 256)
	sendErr := make(chan error, 1)
	go func() {
		_, err := gw.Request(context.Background(), tlink.KindSale, mustMarshal(t, &tlink.TxnCommand{Ref: "S1", Amount: 1, Currency: "392"}))
		sendErr <- err
	}()
	for got := false; !got; {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("master read: %v", err)
		}
		for in := buf[:n]; len(in) > 0; {
			m, f, _ := d.Next(in)
			in = in[m:]
			got = got || f.Type == tlink.FrameData
		}
	}
	if err := master.Close(); err != nil {
		t.Fatalf("close master: %v", err)
	}
	err := <-sendErr
	if !errors.Is(err, tlink.ErrClosed) {
		t.Fatalf("Request = %v, want ErrClosed", err)
	}
	runErr := wait()
	if !errors.Is(runErr, transport.ErrHangup) {
		t.Fatalf("Run = %v, want ErrHangup", runErr)
	}
	if !errors.Is(err, transport.ErrHangup) {
		t.Fatalf("Request error %v does not carry the cause", err)
	}
	if _, err := gw.Receive(t.Context()); !errors.Is(err, tlink.ErrClosed) {
		t.Fatalf("Receive = %v, want ErrClosed", err)
	}
	if ref, ok := gw.Unresolved(); !ok || ref != "S1" {
		t.Fatalf("Unresolved = %q, %v; the sale's outcome is unknown", ref, ok)
	}
	// Run has waited for its goroutines; the count comes back down.
	poll.Until(t, waitLimit, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func BenchmarkFrameEncodeDecode(b *testing.B) {
	payload := bytes.Repeat([]byte("ISO8583\x02\x10"), 30) // 270 bytes with specials
	f := tlink.Frame{Type: tlink.FrameData, Seq: 1, Kind: tlink.KindFinancialRequest, Payload: payload}
	buf := make([]byte, 0, 1024)
	var d tlink.Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf, _ = tlink.AppendFrame(buf[:0], f)
		if _, got, err := d.Next(buf); err != nil || got.Type != tlink.FrameData {
			b.Fatalf("decode: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// benchRoundTrip measures a financial request and its response between two
// endpoints on gw and dev.
func benchRoundTrip(b *testing.B, gwRW, devRW io.ReadWriteCloser, cfg tlink.Config) {
	gw, dev := tlink.New(gwRW, cfg), tlink.New(devRW, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 3)
	go func() { errs <- gw.Run(ctx) }()
	go func() { errs <- dev.Run(ctx) }()
	go func() {
		for {
			m, err := gw.Receive(ctx)
			if err != nil {
				errs <- nil
				return
			}
			if err := gw.Send(ctx, tlink.KindFinancialResponse, m.Payload[:40]); err != nil {
				errs <- nil
				return
			}
		}
	}()
	req := bytes.Repeat([]byte{0x11, 0x00, 0x42}, 100) // a 300-byte 1100
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dev.Request(ctx, tlink.KindFinancialRequest, req); err != nil {
			b.Fatalf("request: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
	cancel()
	for range 3 {
		<-errs
	}
}

func BenchmarkRoundTripPTY115200(b *testing.B) {
	slave, master := ptyLink(b)
	benchRoundTrip(b, slave, master, tlink.Config{BitRate: 115200})
}

func BenchmarkRoundTripTCP(b *testing.B) {
	gw, dev := tcpLink(b)
	benchRoundTrip(b, gw, dev, tlink.Config{})
}
