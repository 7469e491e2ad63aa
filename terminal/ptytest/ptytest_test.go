package ptytest_test

import (
	"io"
	"os"
	"testing"

	"github.com/posgate/posgate/terminal/ptytest"
	"golang.org/x/sys/unix"
)

func TestOpenGivesConnectedPair(t *testing.T) {
	m, path := ptytest.Open(t)
	s, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open slave %s: %v", path, err)
	}
	defer s.Close()
	// Raw mode on the slave so bytes pass unchanged.
	rc, err := s.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		var tio *unix.Termios
		if tio, ioErr = unix.IoctlGetTermios(int(fd), unix.TCGETS); ioErr != nil {
			return
		}
		tio.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG
		tio.Iflag &^= unix.ICRNL
		tio.Oflag &^= unix.OPOST
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tio)
	}); err != nil || ioErr != nil {
		t.Fatalf("raw mode: %v %v", err, ioErr)
	}
	tests := []struct {
		name     string
		from, to *os.File
	}{{"master_to_slave", m, s}, {"slave_to_master", s, m}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := "\x02\x00\r\n\x03"
			if _, err := tt.from.Write([]byte(want)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(want))
			if _, err := io.ReadFull(tt.to, got); err != nil || string(got) != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		})
	}
	// Closing the master is a hangup on the slave.
	_ = m.Close()
	if _, err := s.Write([]byte{1}); err == nil {
		t.Fatal("slave write succeeded after master closed")
	}
}
