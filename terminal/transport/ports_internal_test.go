package transport

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestListPortsIn(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ttyS10", "ttyS2", "ttyUSB0", "ttyACM1", "ttyACM0", "ttySx", "tty0", "console", "ttyUSB"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := listPorts(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{
		{filepath.Join(dir, "ttyACM0"), USBACM}, {filepath.Join(dir, "ttyACM1"), USBACM},
		{filepath.Join(dir, "ttyS2"), Serial}, {filepath.Join(dir, "ttyS10"), Serial},
		{filepath.Join(dir, "ttyUSB0"), USBSerial},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listPorts = %v, want %v", got, want)
	}
}

func TestListPorts(t *testing.T) {
	ports, err := ListPorts()
	if err != nil {
		t.Fatalf("ListPorts: %v", err)
	}
	for _, p := range ports {
		if _, err := os.Stat(p.Path); err != nil {
			t.Fatalf("listed %s does not exist: %v", p.Path, err)
		}
	}
}
