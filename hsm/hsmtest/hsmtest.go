// Package hsmtest gives tests a real SoftHSM2 token: one throw-away token
// per test process, in a directory under os.TempDir, never the user's
// ~/.config/softhsm2 or /etc/softhsm. SoftHSM is configured through the
// process-wide SOFTHSM2_CONF at C_Initialize, which is why there is one
// token per process, shared by every test of the package: give each test's
// keys unique labels (see Label).
//
// A package whose tests use it may call Main from TestMain to remove the
// token directory at the end; otherwise the directory is left in the
// system temp dir (posgate-hsmtest-*).
package hsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/posgate/posgate/hsm"
)

// Token label and PINs of the test token. They protect nothing.
const (
	TokenLabel = "posgate-test"
	SOPIN      = "12345678"
	PIN        = "87654321"
)

var (
	once     sync.Once
	tok      *hsm.Token
	dir      string
	setupErr error
	seq      atomic.Uint64
)

func setup() {
	if _, err := os.Stat(hsm.DefaultModulePath); err != nil {
		setupErr = fmt.Errorf("SoftHSM2 is not installed (%s missing); install it with: %s", hsm.DefaultModulePath, hsm.InstallHint)
		return
	}
	if _, err := exec.LookPath(hsm.SoftHSMUtil); err != nil {
		setupErr = fmt.Errorf("SoftHSM2 is not installed (%s not in PATH); install it with: %s", hsm.SoftHSMUtil, hsm.InstallHint)
		return
	}
	d, err := os.MkdirTemp("", "posgate-hsmtest-")
	if err != nil {
		setupErr = fmt.Errorf("hsmtest: token directory: %w", err)
		return
	}
	dir = d
	conf, err := hsm.InitSoftHSM(d, TokenLabel, SOPIN, PIN)
	if err != nil {
		setupErr = fmt.Errorf("hsmtest: %w", err)
		return
	}
	if err := hsm.UseSoftHSMConf(conf); err != nil {
		setupErr = fmt.Errorf("hsmtest: %w", err)
		return
	}
	tok, err = hsm.Open(Config())
	if err != nil {
		setupErr = fmt.Errorf("hsmtest: open test token: %w", err)
	}
}

// Config returns the configuration of the process's test token. It is
// valid once Token has been called (the token exists from then on); a test
// may Open its own *hsm.Token with it and Close that one.
func Config() hsm.Config {
	return hsm.Config{TokenLabel: TokenLabel, PIN: PIN}
}

// Token returns the process's shared test token, creating it on first use.
// The token is logged in and stays open until Main's cleanup or process
// exit: callers must not Close it. If SoftHSM2 is missing the test fails
// with the install command; it never skips.
func Token(t testing.TB) *hsm.Token {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("hsmtest: %v", setupErr)
	}
	return tok
}

// Label returns a key label unique within the test process, derived from
// the test name and prefix, so tests sharing the token never collide.
func Label(t testing.TB, prefix string) string {
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	l := fmt.Sprintf("%s.%s.%d", prefix, name, seq.Add(1))
	if len(l) > 120 {
		l = fmt.Sprintf("%s.%d", prefix, seq.Add(1))
	}
	return l
}

// Main runs the tests, then closes the shared token and removes its
// directory, and exits with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { hsmtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests and removes the token directory, like Main, but returns
// the exit code instead of exiting, for a TestMain with cleanup of its own.
func Run(m *testing.M) int {
	code := m.Run()
	if tok != nil {
		if err := tok.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "hsmtest: close token: %v\n", err)
		}
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	return code
}
