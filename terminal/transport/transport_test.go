package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/terminal/ptytest"
	"github.com/posgate/posgate/terminal/transport"
)

func TestValidate(t *testing.T) {
	serial := func(mod func(*transport.DeviceConfig)) transport.DeviceConfig {
		c := transport.DeviceConfig{Medium: transport.USBSerial, Path: "/dev/ttyUSB0"}
		mod(&c)
		return c
	}
	tcp := func(mod func(*transport.DeviceConfig)) transport.DeviceConfig {
		c := transport.DeviceConfig{Medium: transport.TCP, Address: "10.0.0.5:9100"}
		mod(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  transport.DeviceConfig
		want []string // substrings naming key and value, one per error
	}{
		{"serial_defaults", serial(func(*transport.DeviceConfig) {}), nil},
		{"serial_7e2", serial(func(c *transport.DeviceConfig) { c.Baud, c.DataBits, c.Parity, c.StopBits = 9600, 7, "even", 2 }), nil},
		{"usb_acm_by_id", transport.DeviceConfig{Kind: transport.SignPad, Medium: transport.USBACM, Path: "/dev/serial/by-id/usb-pad-if00"}, nil},
		{"tcp_ok", tcp(func(*transport.DeviceConfig) {}), nil},
		{"listen_any_port", transport.DeviceConfig{Medium: transport.TCPListen, Address: ":0"}, nil},
		{"no_medium", transport.DeviceConfig{}, []string{`transport = "": must be serial`}},
		{"unknown_medium", transport.DeviceConfig{Medium: "bluetooth"}, []string{`transport = "bluetooth"`}},
		{"bad_kind", serial(func(c *transport.DeviceConfig) { c.Kind = 9 }), []string{"kind = 9"}},
		{"no_path", serial(func(c *transport.DeviceConfig) { c.Path = "" }), []string{`path = "": required`}},
		{"relative_path", serial(func(c *transport.DeviceConfig) { c.Path = "ttyUSB0" }), []string{`path = "ttyUSB0": must be an absolute`}},
		{"odd_baud", serial(func(c *transport.DeviceConfig) { c.Baud = 12345 }), []string{"baud = 12345"}},
		{"data_bits", serial(func(c *transport.DeviceConfig) { c.DataBits = 9 }), []string{"data_bits = 9"}},
		{"parity", serial(func(c *transport.DeviceConfig) { c.Parity = "mark" }), []string{`parity = "mark"`}},
		{"stop_bits", serial(func(c *transport.DeviceConfig) { c.StopBits = 3 }), []string{"stop_bits = 3"}},
		{"read_timeout_not_decisecond", serial(func(c *transport.DeviceConfig) { c.ReadTimeout = 150 * time.Millisecond }), []string{"read_timeout = 150ms"}},
		{"read_timeout_too_long", serial(func(c *transport.DeviceConfig) { c.ReadTimeout = 30 * time.Second }), []string{"read_timeout = 30s"}},
		{"address_on_serial", serial(func(c *transport.DeviceConfig) { c.Address = "x:1" }), []string{`address = "x:1": only for tcp`}},
		{"no_address", tcp(func(c *transport.DeviceConfig) { c.Address = "" }), []string{`address = "": required`}},
		{"address_without_port", tcp(func(c *transport.DeviceConfig) { c.Address = "10.0.0.5" }), []string{`address = "10.0.0.5": must be host:port`}},
		{"dial_port_zero", tcp(func(c *transport.DeviceConfig) { c.Address = "10.0.0.5:0" }), []string{`address = "10.0.0.5:0": port`}},
		{"dial_timeout", tcp(func(c *transport.DeviceConfig) { c.DialTimeout = -time.Second }), []string{"dial_timeout = -1s"}},
		{"baud_on_tcp", tcp(func(c *transport.DeviceConfig) { c.Baud = 9600 }), []string{"only for serial"}},
		{"several", serial(func(c *transport.DeviceConfig) { c.Baud, c.StopBits = 1, 0 }), []string{"baud = 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, transport.ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Validate = %q, does not contain %q", err, w)
				}
			}
			if _, oerr := transport.Open(tt.cfg); !errors.Is(oerr, transport.ErrConfig) {
				t.Fatalf("Open = %v, want the validation error", oerr)
			}
		})
	}
}

func TestDeviceKindText(t *testing.T) {
	for _, k := range []transport.DeviceKind{transport.PaymentTerminal, transport.SignPad, transport.DTMFBox} {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%d): %v", k, err)
		}
		var got transport.DeviceKind
		if err := got.UnmarshalText(b); err != nil || got != k || k.String() != string(b) {
			t.Fatalf("kind %d: text %q parsed to %d, %v", k, b, got, err)
		}
	}
	var k transport.DeviceKind
	if err := k.UnmarshalText([]byte("printer")); !errors.Is(err, transport.ErrConfig) {
		t.Fatalf("UnmarshalText(printer) = %v", err)
	}
	if _, err := transport.DeviceKind(0).MarshalText(); err == nil {
		t.Fatal("MarshalText(0) succeeded")
	}
}

// openPTY opens a pty and its slave through Open with cfg's line settings.
func openPTY(t *testing.T, mod func(*transport.DeviceConfig)) (io.ReadWriteCloser, io.ReadWriteCloser) {
	t.Helper()
	m, path := ptytest.Open(t)
	c := transport.DeviceConfig{Medium: transport.Serial, Path: path}
	if mod != nil {
		mod(&c)
	}
	s, err := transport.Open(c)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, m
}

func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func TestSerialIsRaw(t *testing.T) {
	// Every byte value passes both ways unchanged: no echo, no CR/LF
	// translation, no signals on 0x03, no flow control on 0x11/0x13.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct {
		name string
		mod  func(*transport.DeviceConfig)
	}{
		{"115200_8n1", func(c *transport.DeviceConfig) { c.Baud, c.DataBits, c.Parity, c.StopBits = 115200, 8, "none", 1 }},
		{"9600_8e2", func(c *transport.DeviceConfig) { c.Baud, c.DataBits, c.Parity, c.StopBits = 9600, 8, "even", 2 }},
		{"defaults_usb_acm", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, m := openPTY(t, tt.mod)
			if _, err := m.Write(all); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, s, len(all)); !bytes.Equal(got, all) {
				t.Fatalf("device→host bytes changed")
			}
			if _, err := s.Write(all); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, m, len(all)); !bytes.Equal(got, all) {
				t.Fatalf("host→device bytes changed")
			}
		})
	}
}

func TestSerialCloseEndsBlockedRead(t *testing.T) {
	s, _ := openPTY(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 16))
		done <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Read after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Write([]byte{1}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestSerialHangup(t *testing.T) {
	s, m := openPTY(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 16))
		done <- err
	}()
	_ = m.Close()
	if err := <-done; !errors.Is(err, transport.ErrHangup) {
		t.Fatalf("Read after hangup = %v, want ErrHangup", err)
	}
	if _, err := s.Write([]byte{1}); !errors.Is(err, transport.ErrHangup) {
		t.Fatalf("Write after hangup = %v, want ErrHangup", err)
	}
}

func TestOpenMissingDevice(t *testing.T) {
	_, err := transport.Open(transport.DeviceConfig{Medium: transport.USBACM, Path: "/dev/ttyACM-posgate-missing"})
	if err == nil || !strings.Contains(err.Error(), "/dev/ttyACM-posgate-missing") {
		t.Fatalf("Open = %v, want an error naming the device", err)
	}
}

func TestTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	t.Run("listen_open_accepts_one_device", func(t *testing.T) {
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := probe.Addr().String()
		_ = probe.Close()
		acc := make(chan io.ReadWriteCloser, 1)
		errc := make(chan error, 1)
		go func() {
			c, err := transport.OpenContext(ctx, transport.DeviceConfig{Medium: transport.TCPListen, Address: addr})
			errc <- err
			acc <- c
		}()
		var dev io.ReadWriteCloser
		for dev == nil { // the listener may not be up yet
			select {
			case err := <-errc:
				t.Fatalf("OpenContext(listen): %v", err)
			default:
			}
			dev, _ = transport.OpenContext(ctx, transport.DeviceConfig{Medium: transport.TCP, Address: addr, DialTimeout: time.Second})
		}
		defer dev.Close()
		if err := <-errc; err != nil {
			t.Fatalf("OpenContext(listen): %v", err)
		}
		gw := <-acc
		defer gw.Close()
		if _, err := dev.Write([]byte("\x02hi\x03")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, gw, 4); string(got) != "\x02hi\x03" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("accept_honours_context", func(t *testing.T) {
		l, err := transport.Listen(ctx, transport.DeviceConfig{Medium: transport.TCPListen, Address: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		actx, acancel := context.WithCancel(ctx)
		acancel()
		if _, err := l.Accept(actx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Accept = %v, want context.Canceled", err)
		}
	})
	t.Run("accept_after_close", func(t *testing.T) {
		l, err := transport.Listen(ctx, transport.DeviceConfig{Medium: transport.TCPListen, Address: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Close()
		if _, err := l.Accept(ctx); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept = %v, want net.ErrClosed", err)
		}
	})
	t.Run("listen_needs_listen_medium", func(t *testing.T) {
		if _, err := transport.Listen(ctx, transport.DeviceConfig{Medium: transport.TCP, Address: "127.0.0.1:1"}); !errors.Is(err, transport.ErrConfig) {
			t.Fatalf("Listen = %v, want ErrConfig", err)
		}
	})
	t.Run("dial_refused", func(t *testing.T) {
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := probe.Addr().String()
		_ = probe.Close()
		if _, err := transport.OpenContext(ctx, transport.DeviceConfig{Medium: transport.TCP, Address: addr}); err == nil || !strings.Contains(err.Error(), addr) {
			t.Fatalf("OpenContext = %v, want a dial error naming %s", err, addr)
		}
	})
}
