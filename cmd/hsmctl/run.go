package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/posgate/posgate/cmd/internal/cli"
	"github.com/posgate/posgate/hsm"
)

// Conditions the tests and scripts branch on; each error hsmctl prints
// wraps one of these or an error of package hsm, p2pe/... or os.
var (
	// errUsage is a missing or malformed command line.
	errUsage = errors.New("usage")
	// errInput is a flag value that is syntactically wrong (bad hex,
	// wrong length, unknown name).
	errInput = errors.New("invalid input")
	// errExists is an output file that is already there.
	errExists = errors.New("output file exists (pass --force to replace it)")
	// errUnsupported is an operation the token layer offers no way to do.
	errUnsupported = errors.New("not supported")
)

// defaultPIN is the demo token's user PIN, the same default cardcenter
// uses. Production tokens must be given --pin or HSM_PIN.
const defaultPIN = "1234"

// defaultToken is the token label used when --token is not given: the
// center's token.
const defaultToken = "cardcenter"

// result is what a command prints on success: JSON-encoded as one object in
// json mode, written by text otherwise. No result holds a key value except
// those whose command's job is to output one (gen-component).
type result interface {
	text(w io.Writer) error
}

// command is one subcommand. setup registers the command's own flags on fs
// and returns the function to run once fs is parsed.
type command struct {
	name    string
	summary string
	setup   func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error)
}

func commands() []command {
	return []command{
		{"init", "initialise a SoftHSM2 token in --softhsm-dir (idempotent)", setupInit},
		{"gen-bdk", "generate a DUKPT base derivation key in the token and print its KCV", setupGenBDK},
		{"gen-component", "print a random clear key component and its KCV (key ceremony)", setupGenComponent},
		{"import", "import a key from clear components, checking each KCV", setupImport},
		{"list", "list every key: label, kind, length, KCV, sensitive, extractable", setupList},
		{"inject", "derive a terminal's AES DUKPT initial key and write its key bundle", setupInject},
		{"derive", "derive a DUKPT working key in the token and print its KCV", setupDerive},
		{"encrypt-block", "encrypt a card-data block with a terminal key bundle (test tool)", setupEncryptBlock},
		{"decrypt-block", "decrypt a card-data block in the token; print only the masked PAN", setupDecryptBlock},
	}
}

// globals are the flags every command takes.
type globals struct {
	format     string
	softhsmDir string
	module     string
	token      string
	pin        string
	soPIN      string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.format, "format", "text", "output format: text or json")
	fs.StringVar(&g.softhsmDir, "softhsm-dir", "", "create (if needed) and use a SoftHSM2 token configuration in this directory")
	fs.StringVar(&g.module, "module", hsm.DefaultModulePath, "PKCS#11 module")
	fs.StringVar(&g.token, "token", defaultToken, "token label")
	fs.StringVar(&g.pin, "pin", "", "user PIN (default: $HSM_PIN, else the demo PIN "+defaultPIN+")")
	fs.StringVar(&g.soPIN, "so-pin", "", "security officer PIN for a new SoftHSM token (default: the user PIN followed by \"-so\", as cardcenter does)")
}

// resolve fills the PIN defaults and checks the format.
func (g *globals) resolve() error {
	if g.format != "text" && g.format != "json" {
		return fmt.Errorf("--format %q: want text or json: %w", g.format, errInput)
	}
	if g.pin == "" {
		g.pin = os.Getenv("HSM_PIN")
	}
	if g.pin == "" {
		g.pin = defaultPIN
	}
	if g.soPIN == "" {
		g.soPIN = g.pin + "-so"
	}
	return nil
}

// openToken prepares the SoftHSM configuration when --softhsm-dir is set
// and opens the token. The caller must Close it.
func (g *globals) openToken() (*hsm.Token, error) {
	if g.softhsmDir != "" {
		conf, err := hsm.InitSoftHSM(g.softhsmDir, g.token, g.soPIN, g.pin)
		if err != nil {
			return nil, err
		}
		if err := hsm.UseSoftHSMConf(conf); err != nil {
			return nil, err
		}
	}
	tok, err := hsm.Open(hsm.Config{ModulePath: g.module, TokenLabel: g.token, PIN: g.pin, PoolSize: 1})
	if err != nil {
		return nil, fmt.Errorf("open token %q: %w", g.token, err)
	}
	return tok, nil
}

// run executes the command named by args[0]. It writes the result to
// stdout; on failure it reports the error, as {"error": "..."} on stdout in
// json mode or as one line on stderr otherwise, and returns it, so that
// main only has to set the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	jsonMode := wantsJSON(args)
	fail := func(name string, err error) error {
		if jsonMode {
			b, _ := json.Marshal(map[string]string{"error": err.Error()})
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprintf(stderr, "hsmctl%s: %v\n", name, err)
		}
		return err
	}
	if len(args) == 0 {
		printUsage(stderr)
		return fail("", fmt.Errorf("no command given: %w", errUsage))
	}
	if args[0] == "help" || cli.IsHelp(args[0]) {
		printUsage(stdout)
		return nil
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] {
			cmd = &c
			break
		}
	}
	if cmd == nil {
		return fail("", fmt.Errorf("unknown command %q (run hsmctl help): %w", args[0], errUsage))
	}
	name := " " + cmd.name
	fs := flag.NewFlagSet("hsmctl "+cmd.name, flag.ContinueOnError)
	g := &globals{}
	g.register(fs)
	exec := cmd.setup(fs, g)
	if err := cli.Parse(fs, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		// The flag package has printed the reason and the usage.
		return fail(name, fmt.Errorf("%v: %w", err, errUsage))
	}
	if fs.NArg() > 0 {
		// Not echoed: a stray argument may be card data or a key.
		return fail(name, fmt.Errorf("%d unexpected argument(s) after the flags: %w", fs.NArg(), errUsage))
	}
	if err := g.resolve(); err != nil {
		return fail(name, err)
	}
	res, err := exec(ctx)
	if err != nil {
		return fail(name, err)
	}
	if g.format == "json" {
		b, err := json.Marshal(res)
		if err != nil {
			return fail(name, fmt.Errorf("encode result: %w", err))
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return res.text(stdout)
}

// wantsJSON reports whether args ask for --format json, looked up before
// parsing so that a flag error is reported in the asked-for format too.
func wantsJSON(args []string) bool {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == "format=json" {
			return true
		}
		if a == "format" && i+1 < len(args) && args[i+1] == "json" {
			return true
		}
	}
	return false
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: hsmctl COMMAND [flags]   (hsmctl COMMAND -h lists the flags)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
}

// fields writes name/value lines aligned, in the given order.
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], kv[i+1])
	}
	return tw.Flush()
}

// parseHex decodes s as hex after removing blanks (custodians write keys in
// groups). want is the required length in bytes, 0 for any. Errors name
// what but never echo s, which may be a key.
func parseHex(what, s string, want ...int) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, fmt.Errorf("%s: empty: %w", what, errInput)
	}
	if len(want) > 0 && !slices.Contains(want, len(s)/2) || len(s)%2 != 0 {
		digits := make([]string, len(want))
		for i, n := range want {
			digits[i] = fmt.Sprint(2 * n)
		}
		rule := "an even number"
		if len(want) > 0 {
			rule = strings.Join(digits, " or ")
		}
		return nil, fmt.Errorf("%s: %d hex digits, want %s: %w", what, len(s), rule, errInput)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: not hexadecimal: %w", what, errInput)
	}
	return b, nil
}

// oneOf parses a name from a fixed table, listing the choices on error.
func oneOf[T any](flagName, v string, table map[string]T) (T, error) {
	if x, ok := table[v]; ok {
		return x, nil
	}
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	var zero T
	return zero, fmt.Errorf("--%s %q: want one of %s: %w", flagName, v, strings.Join(names, ", "), errInput)
}

// required reports the first of the named string flags that is empty.
func required(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			return fmt.Errorf("--%s is required: %w", kv[i], errUsage)
		}
	}
	return nil
}

// closeToken closes tok, keeping the first error.
func closeToken(tok *hsm.Token, err *error) {
	if cerr := tok.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close token: %w", cerr)
	}
}
