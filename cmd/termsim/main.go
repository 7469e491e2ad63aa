// Command termsim runs simulated JET-S-class terminals against a gateway and
// prints a JSON summary (counts by outcome, latency percentiles) as its last
// line. It has four modes:
//
//	termsim [--gateway ADDR] [--keys DIR] [--terminals N] [--script demo|load] [--sales N] [--amount MINOR]
//	termsim farm [--keys DIR] [--terminals N] [--medium pty|tcp-listen|tcp-dial] [--address ADDR]
//	             [--vendor-key FILE] [--cards CARD[:ENTRY],...] [--duration D]
//	termsim fw-keygen [--key FILE] [--pub FILE]
//	termsim fw-sign --key FILE --version V --in FILE --out FILE
//
// The first (direct) mode sends framed ISO 8583 straight to the gateway's
// terminal TCP port and drives the sales itself. The farm mode runs the
// terminals' firmware on the terminal link (docs/terminal-link.md) and waits
// for the gateway's commands: one pty pair per terminal (the slave paths are
// printed for the gateway's device config), or TCP. fw-keygen and fw-sign
// make the vendor key and signed firmware images. docs/termsim.md has the
// details.
//
// Each terminal needs a key bundle written by `hsmctl inject` (its DUKPT
// initial key and the PAN fingerprint key) in the keys directory, one
// <terminal-id>.json per terminal; its DUKPT counter and STAN persist beside
// it in <terminal-id>.state.
//
// -h or --help, alone or after a mode, prints the usage to standard output
// and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/posgate/posgate/cmd/internal/cli"
	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/p2pe/keybundle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "termsim:", err)
	}
	stop()
	os.Exit(cli.ExitCode(err))
}

const usage = `usage:
  termsim [flags]              direct mode: framed ISO 8583 to the gateway's terminal port (flags below)
  termsim farm [flags]         terminal firmware on the terminal link (pty or TCP)
  termsim fw-keygen [flags]    make the vendor firmware key pair
  termsim fw-sign [flags]      sign a firmware image
  termsim MODE -h              the flags of MODE

flags of the direct mode:
`

// parseFlags parses a mode's flags: help goes to stdout (flag.ErrHelp is
// returned), a bad flag's reason and the usage to stderr.
func parseFlags(fs *flag.FlagSet, args []string, out io.Writer) error {
	return cli.Parse(fs, args, out, os.Stderr)
}

// Summary is termsim's last output line.
type Summary struct {
	Terminals int            `json:"terminals"`
	Sales     int            `json:"sales"`
	ByOutcome map[string]int `json:"by_outcome"`
	Errors    int            `json:"errors"`
	// Unexpected counts sales whose action code differs from the deck's
	// expectation for that card.
	Unexpected int     `json:"unexpected"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	P50ms      float64 `json:"p50_ms"`
	P95ms      float64 `json:"p95_ms"`
	P99ms      float64 `json:"p99_ms"`
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "farm":
			return runFarm(ctx, args[1:], out)
		case "fw-keygen":
			return runKeygen(args[1:], out)
		case "fw-sign":
			return runSign(args[1:], out)
		}
	}
	return runDirect(ctx, args, out)
}

// runDirect is the original mode: framed ISO 8583 over TCP to the gateway.
func runDirect(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("termsim", flag.ContinueOnError)
	gw := fs.String("gateway", "127.0.0.1:7001", "gateway terminal address (TCP)")
	keysDir := fs.String("keys", "./data/termsim", "directory of key bundles (<terminal-id>.json) written by hsmctl inject")
	n := fs.Int("terminals", 0, "terminals to run (default: one per key bundle)")
	script := fs.String("script", "demo", "demo: one sale per deck card, printed; load: --sales random approved-card sales per terminal")
	sales := fs.Int("sales", 100, "sales per terminal for the load script")
	amount := fs.Int64("amount", 1200, "sale amount in minor units")
	currency := fs.String("currency", "392", "ISO 4217 numeric currency code")
	timeout := fs.Duration("timeout", 15*time.Second, "timeout of one sale")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	if *script != "demo" && *script != "load" {
		return fmt.Errorf("--script %q: want demo or load", *script)
	}
	if *sales < 1 || *amount < 1 {
		return errors.New("--sales and --amount must be positive")
	}
	bundles, err := filepath.Glob(filepath.Join(*keysDir, "*.json"))
	if err != nil {
		return err
	}
	slices.Sort(bundles)
	if len(bundles) == 0 {
		return fmt.Errorf("no key bundles in %s: run `hsmctl inject` first", *keysDir)
	}
	if *n > 0 {
		if *n > len(bundles) {
			return fmt.Errorf("--terminals %d but only %d key bundles in %s", *n, len(bundles), *keysDir)
		}
		bundles = bundles[:*n]
	}
	var terms []*device.Terminal
	defer func() {
		for _, t := range terms {
			t.Close()
		}
	}()
	for _, b := range bundles {
		k, err := keybundle.Load(b)
		if err != nil {
			return err
		}
		t, err := device.New(k, device.Options{Currency: *currency, StatePath: strings.TrimSuffix(b, ".json") + ".state"})
		if err != nil {
			return err
		}
		if err := t.Connect(ctx, *gw); err != nil {
			return err
		}
		terms = append(terms, t)
	}

	var (
		mu  sync.Mutex
		sum = Summary{Terminals: len(terms), ByOutcome: map[string]int{}}
		lat []time.Duration
	)
	record := func(c deck.Card, res device.Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		sum.Sales++
		if err != nil {
			sum.Errors++
			fmt.Fprintf(out, "%-12s %s  error: %v\n", c.Name, c.Masked(), err)
			return
		}
		sum.ByOutcome[string(res.ActionCode)]++
		lat = append(lat, res.Latency)
		if string(res.ActionCode) != c.Expect {
			sum.Unexpected++
		}
		if *script == "demo" {
			verdict := "DECLINED"
			if res.Approved() {
				verdict = "APPROVED"
			}
			fmt.Fprintf(out, "%-12s %s  %s %-8s action %s  approval %-6s  stan %s  %.1f ms\n",
				c.Name, res.MaskedPAN, fmt.Sprintf("%d", *amount), verdict, res.ActionCode, res.ApprovalCode, res.STAN, float64(res.Latency.Microseconds())/1000)
		}
	}
	sale := func(t *device.Terminal, c deck.Card) {
		sctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		res, err := t.Sale(sctx, c, *amount)
		record(c, res, err)
	}

	start := time.Now()
	var wg sync.WaitGroup
	switch *script {
	case "demo":
		for _, c := range deck.Cards() {
			sale(terms[0], c)
		}
	case "load":
		var ok []deck.Card
		for _, c := range deck.Cards() {
			if c.Expect == "000" {
				ok = append(ok, c)
			}
		}
		for _, t := range terms {
			wg.Go(func() {
				for i := 0; i < *sales && ctx.Err() == nil; i++ {
					sale(t, ok[rand.IntN(len(ok))])
				}
			})
		}
	}
	wg.Wait()
	el := time.Since(start)
	sum.Seconds = el.Seconds()
	if el > 0 {
		sum.PerSecond = float64(sum.Sales) / el.Seconds()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sum.P50ms, sum.P95ms, sum.P99ms = pct(lat, 50), pct(lat, 95), pct(lat, 99)
	b, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(b))
	if sum.Errors > 0 {
		return fmt.Errorf("%d of %d sales failed", sum.Errors, sum.Sales)
	}
	return nil
}

// pct returns the p-th percentile of sorted durations in milliseconds.
func pct(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return float64(sorted[i].Microseconds()) / 1000
}
