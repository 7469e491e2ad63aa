package farm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the master for the simulated
// terminal, and the slave, held open by the farm and put in raw mode at once,
// so that the line never hangs up when the gateway closes and reopens its
// side, and the terminal's own output is never echoed back to it.
func openPTY() (master, slave *os.File, path string, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, "", fmt.Errorf("open /dev/ptmx: %w", err)
	}
	rc, err := m.SyscallConn()
	if err != nil {
		m.Close()
		return nil, nil, "", fmt.Errorf("pty master: %w", err)
	}
	var n int
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		m.Close()
		return nil, nil, "", fmt.Errorf("unlock pty: %w", err)
	}
	path = fmt.Sprintf("/dev/pts/%d", n)
	s, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, "", fmt.Errorf("open pty slave %s: %w", path, err)
	}
	src, err := s.SyscallConn()
	if err == nil {
		err = src.Control(func(fd uintptr) {
			var tio *unix.Termios
			if tio, ioErr = unix.IoctlGetTermios(int(fd), unix.TCGETS); ioErr != nil {
				return
			}
			// cfmakeraw
			tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
			tio.Oflag &^= unix.OPOST
			tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
			tio.Cflag &^= unix.CSIZE | unix.PARENB
			tio.Cflag |= unix.CS8 | unix.CLOCAL
			tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
			ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tio)
		})
	}
	if err == nil {
		err = ioErr
	}
	if err != nil {
		s.Close()
		m.Close()
		return nil, nil, "", fmt.Errorf("raw mode on %s: %w", path, err)
	}
	return m, s, path, nil
}
