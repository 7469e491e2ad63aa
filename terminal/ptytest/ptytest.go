// Package ptytest opens real pseudo-terminal pairs for tests, so that code
// which opens serial devices can be tested through the same path that opens
// hardware: the test keeps the master side and opens the slave path (for
// example /dev/pts/3) with github.com/tarm/serial exactly as it would open
// /dev/ttyUSB0.
package ptytest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Open opens a new pseudo-terminal pair and returns the master side and the
// path of the slave device. The master is registered with the Go poller, so
// a Read blocked on it ends when it is closed; closing the master is how a
// test "pulls the cable": the slave side then reads and writes with EIO.
// The master is closed by t.Cleanup unless the test closes it first. Open
// fails the test (t.Fatal) when the system has no /dev/ptmx.
func Open(t testing.TB) (master *os.File, slavePath string) {
	t.Helper()
	m, p, err := open()
	if err != nil {
		t.Fatalf("ptytest: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, p
}

// open does the work of Open without a testing.TB.
func open() (*os.File, string, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open /dev/ptmx: %w", err)
	}
	rc, err := m.SyscallConn()
	if err != nil {
		_ = m.Close()
		return nil, "", fmt.Errorf("pty master raw conn: %w", err)
	}
	var n int
	var ioErr error
	// Control keeps the descriptor non-blocking and registered with the
	// poller; (*os.File).Fd would switch it to blocking mode.
	err = rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			ioErr = fmt.Errorf("unlock pty (TIOCSPTLCK): %w", ioErr)
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		if ioErr != nil {
			ioErr = fmt.Errorf("pty number (TIOCGPTN): %w", ioErr)
		}
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		_ = m.Close()
		return nil, "", err
	}
	return m, fmt.Sprintf("/dev/pts/%d", n), nil
}
