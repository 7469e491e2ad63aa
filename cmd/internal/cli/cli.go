// Package cli holds the command-line conventions every posgate binary
// follows: asked for help (-h, -help, --help) a command prints its usage to
// standard output and exits 0; a command line it does not understand gets
// the reason and the usage on standard error and a non-zero exit.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
)

// Parse parses args with fs. When args ask for help it writes fs's usage to
// stdout and returns flag.ErrHelp, which the caller treats as success (see
// ExitCode). On a bad flag the flag package's reason and the usage go to
// stderr and the parse error is returned. fs writes to stderr afterwards.
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = stdout.Write(buf.Bytes())
	} else {
		_, _ = stderr.Write(buf.Bytes())
	}
	return err
}

// IsHelp reports whether arg asks for help on its own: -h, -help, --help
// (or "help" as a command word, which callers check where a command is
// expected).
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// ExitCode is the process exit status for the error a command's run
// returned: 0 for nil and for flag.ErrHelp (help was asked for and
// printed), 1 otherwise.
func ExitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 1
}
