package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/posgate/posgate/firmware-sim/deck"
	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/farm"
	"github.com/posgate/posgate/firmware-sim/fwimage"
	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/p2pe/keybundle"
)

// FarmSummary is the farm mode's last output line.
type FarmSummary struct {
	Mode string `json:"mode"` // "farm"
	farm.Summary
}

// parseCards parses "visa-ok,mc-ok:contactless" into deck reads.
func parseCards(s string) ([]device.Read, error) {
	var out []device.Read
	for _, item := range strings.Split(s, ",") {
		name, mode, _ := strings.Cut(strings.TrimSpace(item), ":")
		c, err := deck.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("--cards: %w", err)
		}
		r := device.Read{Card: c, Entry: device.EntryChip}
		if mode != "" {
			if r.Entry, err = device.ParseEntryMode(mode); err != nil {
				return nil, fmt.Errorf("--cards: %w", err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func runFarm(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("termsim farm", flag.ContinueOnError)
	keysDir := fs.String("keys", "./data/termsim", "directory of key bundles (<terminal-id>.json) written by hsmctl inject; state and firmware are kept beside them")
	n := fs.Int("terminals", 0, "terminals to run (default: one per key bundle)")
	medium := fs.String("medium", farm.PTY, "pty: a pty pair per terminal, slave paths printed; tcp-listen: terminal i listens on --address port+i; tcp-dial: every terminal dials the gateway at --address")
	address := fs.String("address", "", "tcp-listen: first listening address; tcp-dial: the gateway's address")
	vendorKey := fs.String("vendor-key", "", "vendor firmware public key (PEM); without it every firmware image is refused")
	cards := fs.String("cards", "visa-ok", "cards presented in turn when a command's ref does not name one (REF@CARD[:ENTRY]); CARD[:magstripe|chip|contactless],...")
	duration := fs.Duration("duration", 0, "stop after this long (default: run until interrupted)")
	floorLimit := fs.Int64("floor-limit", 0, "terminal floor limit in minor units: a contact chip sale at or under it is authenticated offline (DDA, by the farm's card bureau's test CA) and approved offline with a TC, then sent as a 1220 advice; 0: every chip transaction goes online")
	cda := fs.Bool("cda", false, "with --floor-limit: the terminals claim CDA and approve offline with a CDA-signed TC instead of DDA")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error (logs go to stderr; masked PANs only)")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", *logLevel, err)
	}
	if *duration < 0 {
		return fmt.Errorf("--duration %v: must not be negative", *duration)
	}
	if *floorLimit < 0 {
		return fmt.Errorf("--floor-limit %d: must not be negative", *floorLimit)
	}
	reads, err := parseCards(*cards)
	if err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if *vendorKey != "" {
		if pub, err = fwimage.LoadPublicKey(*vendorKey); err != nil {
			return err
		}
	}
	bundles, err := bundlePaths(*keysDir, *n)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	picker := jets.ByRef(jets.Cycle(reads...))
	// The card bureau (test CA, issuers, ICC key) lives in this process:
	// its CA public keys are what the simulated terminals trust. A real
	// terminal gets them from the schemes through its acquirer.
	var bureau *jets.Bureau
	if *floorLimit > 0 {
		if bureau, err = jets.NewBureau(nil); err != nil {
			return err
		}
	}
	var cfgs []jets.Config
	for _, b := range bundles {
		k, err := keybundle.Load(b)
		if err != nil {
			return err
		}
		base := strings.TrimSuffix(b, ".json")
		t, err := device.New(k, device.Options{StatePath: base + ".state"})
		if err != nil {
			return err
		}
		c := jets.Config{Terminal: t, Picker: picker, Logger: log, FloorLimit: *floorLimit, Bureau: bureau, CDA: *cda}
		if pub != nil {
			c.VendorKey, c.FirmwareDir = pub, base+".fw"
		}
		cfgs = append(cfgs, c)
	}
	f, err := farm.New(farm.Config{Terminals: cfgs, Medium: *medium, Address: *address, Logger: log})
	if err != nil {
		return err
	}
	for _, a := range f.Attachments() {
		where := a.Path
		if where == "" {
			where = a.Addr
		}
		fmt.Fprintf(out, "%s %s %s\n", a.Serial, a.Medium, where)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	b, err := json.Marshal(FarmSummary{Mode: "farm", Summary: f.Summary()})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(b))
	return nil
}

// bundlePaths lists the key bundles in dir, the first n when n > 0.
func bundlePaths(dir string, n int) ([]string, error) {
	bundles, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(bundles)
	if len(bundles) == 0 {
		return nil, fmt.Errorf("no key bundles in %s: run `hsmctl inject` first", dir)
	}
	if n < 0 {
		return nil, fmt.Errorf("--terminals %d: must not be negative", n)
	}
	if n > 0 {
		if n > len(bundles) {
			return nil, fmt.Errorf("--terminals %d but only %d key bundles in %s", n, len(bundles), dir)
		}
		bundles = bundles[:n]
	}
	return bundles, nil
}

func runKeygen(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("termsim fw-keygen", flag.ContinueOnError)
	keyPath := fs.String("key", "vendor-fw.key", "private key file to create (PKCS #8 PEM, mode 0600)")
	pubPath := fs.String("pub", "vendor-fw.pub", "public key file to create (PKIX PEM), for the terminals' --vendor-key")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	_, priv, err := fwimage.GenerateKey()
	if err != nil {
		return err
	}
	if err := fwimage.WriteKeyFiles(*keyPath, *pubPath, priv); err != nil {
		return err
	}
	kcv := fwimage.KCV(priv.Public().(ed25519.PublicKey))
	fmt.Fprintf(out, "wrote %s and %s; key check value %X\n", *keyPath, *pubPath, kcv[:])
	return nil
}

func runSign(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("termsim fw-sign", flag.ContinueOnError)
	keyPath := fs.String("key", "", "vendor private key file (from fw-keygen)")
	version := fs.String("version", "", "firmware version MAJOR.MINOR.PATCH")
	in := fs.String("in", "", "firmware body to sign")
	outPath := fs.String("out", "", "signed image to write")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"--key": *keyPath, "--version": *version, "--in": *in, "--out": *outPath} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("fw-sign needs %s", strings.Join(missing, ", "))
	}
	v, err := fwimage.ParseVersion(*version)
	if err != nil {
		return err
	}
	priv, err := fwimage.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(*in)
	if err != nil {
		return fmt.Errorf("read firmware body: %w", err)
	}
	img, err := fwimage.Sign(priv, v, body)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*outPath, img, 0o644); err != nil {
		return fmt.Errorf("write image: %w", err)
	}
	sum := sha256.Sum256(body)
	fmt.Fprintf(out, "signed %s: version %s, body %d bytes, sha256 %x, image %d bytes\n", *outPath, v, len(body), sum, len(img))
	return nil
}
