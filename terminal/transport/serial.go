package transport

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tarm/serial"
)

// serialPort adapts a tarm/serial port. tarm opens the tty in blocking
// mode with VMIN=0 and VTIME=ReadTimeout, so a read with no data returns
// (0, io.EOF) after ReadTimeout; serialPort turns those timeouts into a
// retry, which is what lets Close end a blocked Read. A hung-up tty (USB
// adapter unplugged, pty master closed) also reads (0, io.EOF), but at
// once: two immediate empty reads in a row are reported as ErrHangup, and
// so is EIO from a read or write.
type serialPort struct {
	p       *serial.Port
	path    string
	timeout time.Duration
	closed  atomic.Bool
}

// openSerial opens a validated, defaulted tty config.
func openSerial(c DeviceConfig) (*serialPort, error) {
	sc := &serial.Config{
		Name:        c.Path,
		Baud:        c.Baud,
		ReadTimeout: c.ReadTimeout,
		Size:        byte(c.DataBits),
		StopBits:    serial.StopBits(c.StopBits),
	}
	switch c.Parity {
	case "odd":
		sc.Parity = serial.ParityOdd
	case "even":
		sc.Parity = serial.ParityEven
	default:
		sc.Parity = serial.ParityNone
	}
	p, err := serial.OpenPort(sc)
	if err != nil {
		return nil, fmt.Errorf("open %s %s at %s (%d baud %d%c%d): %w", c.Medium, c.Kind, c.Path,
			c.Baud, c.DataBits, sc.Parity, c.StopBits, err)
	}
	return &serialPort{p: p, path: c.Path, timeout: c.ReadTimeout}, nil
}

// Read reads at least one byte, retrying across read timeouts, until the
// port is closed or hung up.
func (s *serialPort) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	quick := 0
	for {
		if s.closed.Load() {
			return 0, fmt.Errorf("read %s: %w", s.path, ErrClosed)
		}
		start := time.Now()
		n, err := s.p.Read(b)
		if n > 0 {
			return n, nil
		}
		if s.closed.Load() {
			return 0, fmt.Errorf("read %s: %w", s.path, ErrClosed)
		}
		if errors.Is(err, syscall.EIO) {
			// The other side is gone (pty master closed, device reset).
			return 0, fmt.Errorf("%w: %w", ErrHangup, err)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err // an *os.PathError naming the device
		}
		if time.Since(start) < s.timeout/2 {
			if quick++; quick >= 2 {
				return 0, fmt.Errorf("read %s: %w", s.path, ErrHangup)
			}
			continue
		}
		quick = 0
	}
}

// Write writes all of b.
func (s *serialPort) Write(b []byte) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("write %s: %w", s.path, ErrClosed)
	}
	n, err := s.p.Write(b)
	if errors.Is(err, syscall.EIO) {
		return n, fmt.Errorf("%w: %w", ErrHangup, err)
	}
	if err != nil {
		return n, err // an *os.PathError naming the device
	}
	return n, nil
}

// Close closes the port; a Read blocked in the kernel returns within the
// read timeout.
func (s *serialPort) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.p.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}
