// Command cardcenter is the cloud center daemon and its operator commands.
//
//	cardcenter [--config FILE]                       run the center
//	cardcenter enrol --gateway-id ID --csr FILE [--out FILE] [--ca-out FILE]
//	                                                 sign a gateway's link certificate
//	cardcenter seed-demo [--gateway-id ID] [--first-terminal K] [--terminals N]
//	                                                 register demo merchant, terminals and deck cards
//	cardcenter ledger check                          prove every transfer sums to zero and every balance equals its postings
//	cardcenter api-key --role admin|head_office [--merchant ID]
//	                                                 create a REST API key; it is printed once
//
// Every command takes --config FILE; without it the embedded defaults under
// ./data/cardcenter apply. -h or --help, alone or after a command, prints
// the usage to standard output and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/posgate/posgate/cloud/api"
	"github.com/posgate/posgate/cloud/center"
	"github.com/posgate/posgate/cloud/ledger"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cmd/internal/cli"
	"github.com/posgate/posgate/cmd/internal/daemon"
	"github.com/posgate/posgate/cmd/internal/demo"
	"github.com/posgate/posgate/p2pe/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "cardcenter:", err)
	}
	stop()
	os.Exit(cli.ExitCode(err))
}

const usage = `usage:
  cardcenter [--config FILE]                       run the center
  cardcenter enrol --gateway-id ID --csr FILE [--out FILE] [--ca-out FILE]
                                                   sign a gateway's link certificate
  cardcenter seed-demo [--gateway-id ID] [--first-terminal K] [--terminals N]
                                                   register demo merchant, terminals and deck cards
  cardcenter ledger check [--json]                 prove every transfer sums to zero and every balance equals its postings
  cardcenter api-key --role admin|head_office [--merchant ID]
                                                   create a REST API key; it is printed once
  cardcenter COMMAND -h                            the flags of COMMAND

Every command takes --config FILE (default: embedded defaults under ./data/cardcenter).
`

// run runs the command args name, writing its result to out and its
// diagnostics to errOut. Asked for help it prints the usage to out and
// returns flag.ErrHelp.
func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] == "help" {
		fmt.Fprint(out, usage)
		return flag.ErrHelp
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "ledger" {
		if len(args) > 0 && cli.IsHelp(args[0]) {
			fmt.Fprint(out, usage)
			return flag.ErrHelp
		}
		if len(args) == 0 || args[0] != "check" {
			return errors.New("usage: cardcenter ledger check [--config FILE]")
		}
		cmd, args = "ledger check", args[1:]
	}
	fs := flag.NewFlagSet("cardcenter "+cmd, flag.ContinueOnError)
	if cmd == "serve" {
		fs.Usage = func() {
			fmt.Fprint(fs.Output(), usage)
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	configPath := fs.String("config", "", "YAML configuration file (default: embedded defaults under ./data)")
	var gatewayID, csrPath, outPath, caOut string
	var terminals, firstTerminal int
	var asJSON bool
	var role, merchant string
	switch cmd {
	case "serve", "ledger check":
		fs.BoolVar(&asJSON, "json", false, "print the ledger check report as JSON")
	case "enrol":
		fs.StringVar(&gatewayID, "gateway-id", "", "the gateway's ID (the CSR's common name)")
		fs.StringVar(&csrPath, "csr", "", "the gateway's certificate signing request (PEM)")
		fs.StringVar(&outPath, "out", "", "write the gateway certificate here (default: print it)")
		fs.StringVar(&caOut, "ca-out", "", "also write the link CA certificate here")
	case "seed-demo":
		fs.StringVar(&gatewayID, "gateway-id", "GW000001", "the demo gateway's ID")
		fs.IntVar(&terminals, "terminals", 4, "demo terminals to register behind the gateway")
		fs.IntVar(&firstTerminal, "first-terminal", 1, "number of the first of them (1 is T0000001)")
	case "api-key":
		fs.StringVar(&role, "role", "", "admin or head_office")
		fs.StringVar(&merchant, "merchant", "", "the merchant a head-office key is scoped to")
	default:
		return fmt.Errorf("unknown command %q (commands: enrol, seed-demo, ledger check, api-key)", cmd)
	}
	if err := cli.Parse(fs, args, out, errOut); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var cfg center.Config
	if err := daemon.LoadConfig(*configPath, &cfg); err != nil {
		return err
	}
	log, err := redact.NewLogger(errOut, cfg.Log)
	if err != nil {
		return err
	}
	switch cmd {
	case "enrol":
		if gatewayID == "" || csrPath == "" {
			return errors.New("enrol needs --gateway-id and --csr")
		}
		csr, err := os.ReadFile(csrPath)
		if err != nil {
			return err
		}
		certPEM, caPEM, err := center.Enrol(cfg.DataDir, gatewayID, csr)
		if err != nil {
			return err
		}
		if caOut != "" {
			if err := os.WriteFile(caOut, caPEM, 0o644); err != nil {
				return err
			}
		}
		if outPath == "" {
			_, err = out.Write(certPEM)
			return err
		}
		if err := os.WriteFile(outPath, certPEM, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "gateway %s enrolled: certificate written to %s\n", gatewayID, outPath)
		return nil
	case "seed-demo":
		if terminals < 1 || firstTerminal < 1 || firstTerminal+terminals-1 > 9999999 {
			return fmt.Errorf("--first-terminal %d --terminals %d: terminals are numbered 1 to 9999999", firstTerminal, terminals)
		}
		p, err := center.Open(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer p.Close()
		return demo.Seed(ctx, p.Store, p.Vault, gatewayID, firstTerminal, terminals, out)
	case "api-key":
		r := store.APIRole(role)
		if r != store.RoleAdmin && r != store.RoleHeadOffice {
			return fmt.Errorf("--role %q: want %s or %s", role, store.RoleAdmin, store.RoleHeadOffice)
		}
		p, err := center.Open(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer p.Close()
		key, err := api.CreateKey(ctx, p.Store, r, merchant)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, key)
		return nil
	case "ledger check":
		p, err := center.Open(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer p.Close()
		rep, err := ledger.Check(ctx, p.Store)
		if err != nil {
			return err
		}
		if asJSON {
			b, _ := json.Marshal(rep)
			fmt.Fprintln(out, string(b))
		} else {
			fmt.Fprintln(out, rep)
		}
		if !rep.OK() {
			return errors.New("ledger check failed")
		}
		return nil
	}
	err = center.Run(ctx, cfg, log)
	if errors.Is(err, context.Canceled) {
		log.Info("cardcenter stopped")
		return nil
	}
	return err
}
