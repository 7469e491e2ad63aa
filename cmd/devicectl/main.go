// Command devicectl is the field engineer's tool for a posgate gateway.
//
//	devicectl ports [--json]
//
// ports lists the serial device nodes of this machine (/dev/ttyS*,
// /dev/ttyUSB*, /dev/ttyACM*) a terminal, sign pad or DTMF box can be
// attached by: a table by default, JSON with --json for scripts.
//
//	devicectl offline status|rejected|forward [--gateway http://127.0.0.1:8081] [--json]
//
// offline reads the gateway's offline admin routes (docs/offline.md), which
// answer loopback clients only: status shows the store-and-forward queue's
// counts and amounts per state, the exposure, the oldest queued approval
// and the negative file's version, load state and sync time; rejected lists
// the offline approvals the center declined; forward asks for a forwarding
// pass now.
//
// The other commands that talk to a running gateway (attached devices,
// link health, key status, test transactions, firmware push, logs) need the
// gateway's local admin socket, which is not built yet; devicectl does not
// offer them until it is.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/posgate/posgate/cmd/internal/cli"
	"github.com/posgate/posgate/terminal/transport"
)

const usage = `devicectl — field engineer's tool for a posgate gateway

usage:
  devicectl ports [--json]   list serial ports (/dev/ttyS*, /dev/ttyUSB*, /dev/ttyACM*)
  devicectl offline status   [--gateway URL] [--json]   queue per state, exposure, oldest, negative file
  devicectl offline rejected [--gateway URL] [--json]   offline approvals the center declined
  devicectl offline forward  [--gateway URL] [--json]   start a forwarding pass now

--gateway is the gateway's http.listen (default http://127.0.0.1:8081); the
offline routes answer loopback clients only.

Output is text by default; --json prints one JSON document for scripts.

Not available yet: devices, link, key status, test transactions, firmware
push and logs go through the gateway's local admin socket, which posgate
does not provide yet.
`

// errUsage is returned for a command line devicectl does not understand;
// main exits 2 for it.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, env{ports: transport.ListPorts, http: http.DefaultClient})
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "devicectl:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "devicectl:", err)
		os.Exit(1)
	}
}

// portJSON is one port in `devicectl ports --json`.
type portJSON struct {
	Path   string `json:"path"`
	Medium string `json:"medium"`
}

// portsJSON is the document `devicectl ports --json` prints.
type portsJSON struct {
	Ports []portJSON `json:"ports"`
}

// env is what run reaches the machine through, replaced in tests.
type env struct {
	ports func() ([]transport.Port, error)
	http  *http.Client
}

func run(ctx context.Context, args []string, out, errOut io.Writer, e env) error {
	if len(args) == 0 {
		fmt.Fprint(errOut, usage)
		return fmt.Errorf("no command given: %w", errUsage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(out, usage)
		return nil
	case "ports":
		return runPorts(args[1:], out, errOut, e.ports)
	case "offline":
		return runOffline(ctx, args[1:], out, errOut, e.http)
	}
	fmt.Fprint(errOut, usage)
	return fmt.Errorf("unknown command %q: %w", args[0], errUsage)
}

func runPorts(args []string, out, errOut io.Writer, list func() ([]transport.Port, error)) error {
	fs := flag.NewFlagSet("devicectl ports", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := cli.Parse(fs, args, out, errOut); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ports takes no arguments, got %q: %w", fs.Args(), errUsage)
	}
	ports, err := list()
	if err != nil {
		return fmt.Errorf("list serial ports: %w", err)
	}
	if *asJSON {
		doc := portsJSON{Ports: make([]portJSON, 0, len(ports))}
		for _, p := range ports {
			doc.Ports = append(doc.Ports, portJSON{Path: p.Path, Medium: string(p.Medium)})
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	if len(ports) == 0 {
		_, err := fmt.Fprintln(out, "no serial ports found")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tMEDIUM")
	for _, p := range ports {
		fmt.Fprintf(tw, "%s\t%s\n", p.Path, p.Medium)
	}
	return tw.Flush()
}
