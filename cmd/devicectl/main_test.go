package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/posgate/posgate/terminal/transport"
)

func fakePorts() ([]transport.Port, error) {
	return []transport.Port{
		{Path: "/dev/ttyS0", Medium: transport.Serial},
		{Path: "/dev/ttyUSB0", Medium: transport.USBSerial},
		{Path: "/dev/ttyACM1", Medium: transport.USBACM},
	}, nil
}

func TestRun(t *testing.T) {
	noPorts := func() ([]transport.Port, error) { return nil, nil }
	failing := func() ([]transport.Port, error) { return nil, errors.New("read /dev: permission denied") }
	tests := []struct {
		name string
		args []string
		list func() ([]transport.Port, error)
		want string
		err  error
	}{
		{"table", []string{"ports"}, fakePorts, "PATH          MEDIUM\n/dev/ttyS0    serial\n/dev/ttyUSB0  usb-serial\n/dev/ttyACM1  usb-acm\n", nil},
		{"json", []string{"ports", "--json"}, fakePorts, `{
  "ports": [
    {
      "path": "/dev/ttyS0",
      "medium": "serial"
    },
    {
      "path": "/dev/ttyUSB0",
      "medium": "usb-serial"
    },
    {
      "path": "/dev/ttyACM1",
      "medium": "usb-acm"
    }
  ]
}
`, nil},
		{"json_empty", []string{"ports", "--json"}, noPorts, "{\n  \"ports\": []\n}\n", nil},
		{"table_empty", []string{"ports"}, noPorts, "no serial ports found\n", nil},
		{"no_command", nil, fakePorts, "", errUsage},
		{"unknown_command", []string{"status"}, fakePorts, "", errUsage},
		{"extra_argument", []string{"ports", "x"}, fakePorts, "", errUsage},
		{"bad_flag", []string{"ports", "--yaml"}, fakePorts, "", errUsage},
		{"flag_help", []string{"ports", "-h"}, fakePorts, "Usage of devicectl ports:\n  -json\n    \tprint JSON instead of a table\n", flag.ErrHelp},
		{"list_fails", []string{"ports"}, failing, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut, env{ports: tt.list})
			if tt.name == "list_fails" {
				if err == nil || !strings.Contains(err.Error(), "list serial ports") {
					t.Fatalf("err %v", err)
				}
				return
			}
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if out.String() != tt.want {
				t.Fatalf("output\n%s\nwant\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestHelpSaysAdminSocketMissing(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, &out, env{ports: fakePorts}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "admin socket, which posgate\ndoes not provide yet") {
		t.Fatalf("help does not say the admin socket is missing:\n%s", out.String())
	}
}

func TestRealPorts(t *testing.T) {
	// The real lister on this machine: whatever it finds must print.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"ports", "--json"}, &out, &out, env{ports: transport.ListPorts}); err != nil {
		t.Fatal(err)
	}
	var doc portsJSON
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc.Ports == nil {
		t.Fatalf("ports --json: %v\n%s", err, out.String())
	}
}
