package e2e_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpExitsZero runs every binary and every subcommand with -h and
// --help: each prints its usage to stdout, nothing to stderr, and exits 0.
func TestHelpExitsZero(t *testing.T) {
	bin := binaries(t)
	for _, cmdline := range [][]string{
		{"posgate"}, {"posgate", "csr"},
		{"cardcenter"}, {"cardcenter", "enrol"}, {"cardcenter", "seed-demo"}, {"cardcenter", "ledger"},
		{"cardcenter", "ledger", "check"}, {"cardcenter", "api-key"},
		{"devicectl"}, {"devicectl", "ports"}, {"devicectl", "offline", "status"}, {"devicectl", "offline", "rejected"},
		{"devicectl", "offline", "forward"},
		{"termsim"}, {"termsim", "farm"}, {"termsim", "fw-keygen"}, {"termsim", "fw-sign"},
		{"hsmctl"}, {"hsmctl", "init"}, {"hsmctl", "inject"}, {"hsmctl", "derive"},
	} {
		for _, flag := range []string{"-h", "--help"} {
			name := strings.Join(append(cmdline, flag), " ")
			t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
				cmd := exec.Command(filepath.Join(bin, cmdline[0]), append(cmdline[1:], flag)...)
				cmd.Dir = t.TempDir()
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("%s exited %d\nstdout:\n%s\nstderr:\n%s", name, ee.ExitCode(), stdout.String(), stderr.String())
				}
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(strings.ToLower(stdout.String()), "usage") {
					t.Errorf("%s printed no usage on stdout:\n%s", name, stdout.String())
				}
				if stderr.Len() > 0 {
					t.Errorf("%s wrote to stderr:\n%s", name, stderr.String())
				}
			})
		}
	}
}
