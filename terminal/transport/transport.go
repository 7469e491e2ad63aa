// Package transport opens the byte streams that terminals, sign pads and
// serial DTMF boxes are attached by: RS-232 serial ports, USB CDC-ACM
// (/dev/ttyACM*) and USB-serial (/dev/ttyUSB*) adapters — all ttys, opened
// the same way with github.com/tarm/serial — and TCP on the store LAN,
// dialled or accepted. The terminal link protocol (package tlink) runs on
// top of what Open returns.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors.
var (
	// ErrConfig is wrapped by every DeviceConfig validation error.
	ErrConfig = errors.New("transport: invalid device config")
	// ErrHangup means a serial line was hung up: the USB adapter was
	// unplugged or the other side of a pty closed.
	ErrHangup = errors.New("transport: line hung up")
	// ErrClosed is returned by Read and Write after Close.
	ErrClosed = errors.New("transport: closed")
)

// DeviceKind is what is attached.
type DeviceKind uint8

// Device kinds. The values are also the device kind byte of the terminal
// link's status response.
const (
	PaymentTerminal DeviceKind = iota + 1 // JET-S-class card terminal
	SignPad                               // signature capture pad
	DTMFBox                               // serial DTMF decoder on a PBX line
)

var deviceKindNames = []string{PaymentTerminal: "payment-terminal", SignPad: "sign-pad", DTMFBox: "dtmf-box"}

// String returns "payment-terminal", "sign-pad" or "dtmf-box".
func (k DeviceKind) String() string {
	if int(k) > 0 && int(k) < len(deviceKindNames) {
		return deviceKindNames[k]
	}
	return fmt.Sprintf("DeviceKind(%d)", uint8(k))
}

// MarshalText returns the kind's name; it fails for an unknown kind.
func (k DeviceKind) MarshalText() ([]byte, error) {
	if int(k) <= 0 || int(k) >= len(deviceKindNames) {
		return nil, fmt.Errorf("device kind %d: %w", uint8(k), ErrConfig)
	}
	return []byte(deviceKindNames[k]), nil
}

// UnmarshalText parses a kind's name.
func (k *DeviceKind) UnmarshalText(b []byte) error {
	if i := slices.Index(deviceKindNames, string(b)); i > 0 {
		*k = DeviceKind(i)
		return nil
	}
	return fmt.Errorf("kind = %q: must be payment-terminal, sign-pad or dtmf-box: %w", b, ErrConfig)
}

// Medium is how a device is attached.
type Medium string

// Media.
const (
	Serial    Medium = "serial"     // RS-232 port, /dev/ttyS*
	USBACM    Medium = "usb-acm"    // USB CDC-ACM device, /dev/ttyACM*
	USBSerial Medium = "usb-serial" // USB-serial adapter, /dev/ttyUSB*
	TCP       Medium = "tcp"        // dial the device at Address
	TCPListen Medium = "tcp-listen" // listen at Address and accept the device
)

// isTTY reports whether m is opened as a serial tty.
func (m Medium) isTTY() bool { return m == Serial || m == USBACM || m == USBSerial }

// DeviceConfig says how to reach one device. Zero fields take the default
// in their comment; Validate refuses anything else out of range.
type DeviceConfig struct {
	// Kind is the attached device. Default payment-terminal.
	Kind DeviceKind `yaml:"kind"`
	// Medium is serial, usb-acm, usb-serial, tcp or tcp-listen. Required.
	Medium Medium `yaml:"transport"`
	// Path is the tty device for serial media, for example /dev/ttyUSB0 or
	// a stable /dev/serial/by-id/… link. Required for serial media.
	Path string `yaml:"path"`
	// Baud is the line rate. Default 115200; one of the standard rates
	// 300..4000000 (see Bauds).
	Baud int `yaml:"baud"`
	// DataBits per character. Default 8; 5..8.
	DataBits int `yaml:"data_bits"`
	// Parity is none, odd or even. Default none.
	Parity string `yaml:"parity"`
	// StopBits is 1 or 2. Default 1.
	StopBits int `yaml:"stop_bits"`
	// ReadTimeout is how long one tty read waits before it checks whether
	// the port was closed (the tty's VTIME); it bounds how long Close takes
	// to end a blocked Read. Default 100ms; a multiple of 100ms from 100ms
	// to 25.5s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// Address is host:port to dial (tcp) or to listen on (tcp-listen).
	// Required for TCP media.
	Address string `yaml:"address"`
	// DialTimeout bounds a tcp dial. Default 5s; 1ms..5m.
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// Bauds lists the accepted Baud values.
var Bauds = []int{300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800,
	500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000}

// Defaults.
const (
	DefaultBaud        = 115200
	DefaultDataBits    = 8
	DefaultParity      = "none"
	DefaultStopBits    = 1
	DefaultReadTimeout = 100 * time.Millisecond
	DefaultDialTimeout = 5 * time.Second
)

// WithDefaults returns c with zero fields replaced by their defaults.
func (c DeviceConfig) WithDefaults() DeviceConfig {
	if c.Kind == 0 {
		c.Kind = PaymentTerminal
	}
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if c.DataBits == 0 {
		c.DataBits = DefaultDataBits
	}
	if c.Parity == "" {
		c.Parity = DefaultParity
	}
	if c.StopBits == 0 {
		c.StopBits = DefaultStopBits
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// Validate reports every bad key with its value and rule, each wrapping
// ErrConfig, joined into one error; nil when c can be opened. Keys that do
// not apply to the medium must be left zero.
func (c DeviceConfig) Validate() error {
	d := c.WithDefaults()
	var errs []error
	bad := func(key string, v any, rule string) {
		errs = append(errs, fmt.Errorf("%s = %v: %s: %w", key, v, rule, ErrConfig))
	}
	if int(d.Kind) >= len(deviceKindNames) {
		bad("kind", uint8(c.Kind), "must be payment-terminal, sign-pad or dtmf-box")
	}
	switch {
	case d.Medium.isTTY():
		if c.Path == "" {
			bad("path", `""`, "required for transport "+string(c.Medium))
		} else if !filepath.IsAbs(c.Path) {
			bad("path", strconv.Quote(c.Path), "must be an absolute device path")
		}
		if !slices.Contains(Bauds, d.Baud) {
			bad("baud", c.Baud, "must be a standard rate from 300 to 4000000")
		}
		if d.DataBits < 5 || d.DataBits > 8 {
			bad("data_bits", c.DataBits, "must be 5..8")
		}
		if d.Parity != "none" && d.Parity != "odd" && d.Parity != "even" {
			bad("parity", strconv.Quote(c.Parity), "must be none, odd or even")
		}
		if d.StopBits != 1 && d.StopBits != 2 {
			bad("stop_bits", c.StopBits, "must be 1 or 2")
		}
		if d.ReadTimeout < 100*time.Millisecond || d.ReadTimeout > 25500*time.Millisecond || d.ReadTimeout%(100*time.Millisecond) != 0 {
			bad("read_timeout", c.ReadTimeout, "must be a multiple of 100ms from 100ms to 25.5s")
		}
		if c.Address != "" {
			bad("address", strconv.Quote(c.Address), "only for tcp transports")
		}
		if c.DialTimeout != 0 {
			bad("dial_timeout", c.DialTimeout, "only for tcp transports")
		}
	case d.Medium == TCP || d.Medium == TCPListen:
		if c.Address == "" {
			bad("address", `""`, "required for transport "+string(c.Medium))
		} else if _, port, err := net.SplitHostPort(c.Address); err != nil {
			bad("address", strconv.Quote(c.Address), "must be host:port")
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 || (p == 0 && d.Medium == TCP) {
			bad("address", strconv.Quote(c.Address), "port must be 1..65535 (0 only to listen on any port)")
		}
		if d.DialTimeout < time.Millisecond || d.DialTimeout > 5*time.Minute {
			bad("dial_timeout", c.DialTimeout, "must be 1ms..5m")
		}
		if c.Path != "" || c.Baud != 0 || c.DataBits != 0 || c.Parity != "" || c.StopBits != 0 || c.ReadTimeout != 0 {
			bad("path/baud/data_bits/parity/stop_bits/read_timeout", "set", "only for serial transports")
		}
	default:
		bad("transport", strconv.Quote(string(c.Medium)), "must be serial, usb-acm, usb-serial, tcp or tcp-listen")
	}
	return errors.Join(errs...)
}

// Open opens the device c describes, as OpenContext with a background
// context.
func Open(c DeviceConfig) (io.ReadWriteCloser, error) {
	return OpenContext(context.Background(), c)
}

// OpenContext validates c and opens the device: a serial tty (raw mode,
// the configured line settings), a dialled TCP connection, or, for
// tcp-listen, the first device to connect (the listener is closed once it
// has). ctx bounds the dial or the wait for a device. The caller owns the
// returned stream and must Close it; Read and Write on it may be called
// from different goroutines, and Close ends a blocked Read (for a tty
// within ReadTimeout).
func OpenContext(ctx context.Context, c DeviceConfig) (io.ReadWriteCloser, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := c.WithDefaults()
	switch {
	case d.Medium.isTTY():
		return openSerial(d)
	case d.Medium == TCP:
		dialer := net.Dialer{Timeout: d.DialTimeout}
		conn, err := dialer.DialContext(ctx, "tcp", d.Address)
		if err != nil {
			return nil, fmt.Errorf("dial %s device at %s: %w", d.Kind, d.Address, err)
		}
		return conn, nil
	default:
		l, err := Listen(ctx, c)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		return l.Accept(ctx)
	}
}

// Listener accepts devices that connect over TCP. It is safe for
// concurrent use.
type Listener struct {
	l    net.Listener
	kind DeviceKind
}

// Listen validates c (medium tcp-listen) and listens on c.Address.
func Listen(ctx context.Context, c DeviceConfig) (*Listener, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := c.WithDefaults()
	if d.Medium != TCPListen {
		return nil, fmt.Errorf("transport = %q: Listen needs tcp-listen: %w", d.Medium, ErrConfig)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", d.Address)
	if err != nil {
		return nil, fmt.Errorf("listen for %s devices on %s: %w", d.Kind, d.Address, err)
	}
	return &Listener{l: l, kind: d.Kind}, nil
}

// Addr returns the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Accept waits for the next device to connect. It returns ctx's error when
// ctx ends first and net.ErrClosed (wrapped) after Close.
func (l *Listener) Accept(ctx context.Context) (io.ReadWriteCloser, error) {
	stop := context.AfterFunc(ctx, func() {
		// Wake the Accept below without closing the listener.
		if tl, ok := l.l.(*net.TCPListener); ok {
			_ = tl.SetDeadline(time.Unix(1, 0))
		}
	})
	c, err := l.l.Accept()
	if !stop() && ctx.Err() != nil {
		if c != nil {
			_ = c.Close()
		}
		if tl, ok := l.l.(*net.TCPListener); ok {
			_ = tl.SetDeadline(time.Time{})
		}
		return nil, fmt.Errorf("accept %s device: %w", l.kind, context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("accept %s device: %w", l.kind, err)
	}
	return c, nil
}

// Close stops accepting; a blocked Accept returns an error.
func (l *Listener) Close() error { return l.l.Close() }

// Port is one serial device node found by ListPorts.
type Port struct {
	Path   string // for example /dev/ttyUSB0
	Medium Medium // Serial, USBSerial or USBACM, from the node's name
}

// ListPorts lists the serial device nodes that exist: /dev/ttyS*,
// /dev/ttyUSB* and /dev/ttyACM*, in natural order (ttyS2 before ttyS10).
// A /dev/ttyS* node exists for every UART the kernel reserved, whether or
// not hardware is behind it.
func ListPorts() ([]Port, error) { return listPorts("/dev") }

// listPorts lists ports under dir.
func listPorts(dir string) ([]Port, error) {
	var ports []Port
	for _, g := range []struct {
		prefix string
		m      Medium
	}{{"ttyS", Serial}, {"ttyUSB", USBSerial}, {"ttyACM", USBACM}} {
		matches, err := filepath.Glob(filepath.Join(dir, g.prefix+"*"))
		if err != nil {
			return nil, fmt.Errorf("list %s ports: %w", g.prefix, err)
		}
		for _, p := range matches {
			suffix := strings.TrimPrefix(filepath.Base(p), g.prefix)
			if _, err := strconv.Atoi(suffix); err != nil {
				continue
			}
			ports = append(ports, Port{Path: p, Medium: g.m})
		}
	}
	slices.SortFunc(ports, func(a, b Port) int {
		pa, na := splitNum(filepath.Base(a.Path))
		pb, nb := splitNum(filepath.Base(b.Path))
		if c := strings.Compare(pa, pb); c != 0 {
			return c
		}
		return na - nb
	})
	return ports, nil
}

// splitNum splits "ttyUSB12" into "ttyUSB" and 12.
func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(s[i:])
	return s[:i], n
}
