// Command posgate is the edge gateway daemon: it accepts terminal
// connections, forwards their ISO 8583:1993 messages to the center over the
// QUIC link, and serves /metrics.
//
//	posgate [--config FILE]        run the gateway
//	posgate csr [--config FILE]    create the link identity key in the token and write a CSR
//
// -h or --help prints the usage to standard output and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/posgate/posgate/cmd/internal/cli"
	"github.com/posgate/posgate/cmd/internal/daemon"
	"github.com/posgate/posgate/gateway"
	"github.com/posgate/posgate/p2pe/redact"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "posgate:", err)
	}
	os.Exit(cli.ExitCode(err))
}

const usage = `usage:
  posgate [--config FILE]        run the gateway
  posgate csr [--config FILE]    create the link identity key in the token and write a CSR

flags:
`

// run runs the command args name. Asked for help it prints the usage to
// stdout and returns flag.ErrHelp.
func run(args []string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 0 && args[0] == "csr" {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("posgate", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default: embedded defaults under ./data)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (commands: csr)", fs.Arg(0))
	}
	var cfg gateway.Config
	if err := daemon.LoadConfig(*configPath, &cfg); err != nil {
		return err
	}
	log, err := redact.NewLogger(stderr, cfg.Log)
	if err != nil {
		return err
	}
	if cmd == "csr" {
		tok, err := gateway.OpenToken(cfg)
		if err != nil {
			return err
		}
		defer tok.Close()
		p, err := gateway.WriteCSR(cfg, tok)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, p)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	err = g.Run(ctx)
	if errors.Is(err, context.Canceled) {
		log.Info("posgate stopped")
		return nil
	}
	return err
}
