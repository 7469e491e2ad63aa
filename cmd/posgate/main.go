// Command posgate is the edge gateway daemon: it accepts terminal
// connections, forwards their ISO 8583:1993 messages to the center over the
// QUIC link, and serves /metrics.
//
//	posgate [--config FILE]        run the gateway
//	posgate csr [--config FILE]    create the link identity key in the token and write a CSR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/posgate/posgate/cmd/internal/daemon"
	"github.com/posgate/posgate/gateway"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "posgate:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := ""
	if len(args) > 0 && args[0] == "csr" {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("posgate", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (default: embedded defaults under ./data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (commands: csr)", fs.Arg(0))
	}
	var cfg gateway.Config
	if err := daemon.LoadConfig(*configPath, &cfg); err != nil {
		return err
	}
	log, err := daemon.NewLogger(os.Stderr, cfg.Log.Format, cfg.Log.Level)
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
		fmt.Println(p)
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
