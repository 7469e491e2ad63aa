package hsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SoftHSMUtil is the name of SoftHSM2's token tool, looked up in PATH.
const SoftHSMUtil = "softhsm2-util"

// InstallHint is the command that installs SoftHSM2 on Debian and Ubuntu.
const InstallHint = "apt-get install -y softhsm2"

// InitSoftHSM prepares a SoftHSM2 token for tests, demos and embedded
// defaults: it writes dir/softhsm2.conf whose token directory is
// dir/tokens (both created), and initialises a token with label, SO PIN and
// user PIN by running softhsm2-util with SOFTHSM2_CONF set in the child's
// environment only. It is idempotent: a token that already has label is
// reused and its PINs are not checked. It returns the absolute path of the
// configuration, which the process must pass to UseSoftHSMConf before Open.
//
// SoftHSM lists tokens at C_Initialize: a token created here while this
// process has the module initialised under the same configuration is not
// visible to Open (ErrTokenNotFound) until every Token has closed and the
// next Open initialises again. Initialise every token before the first
// Open.
//
// The PINs appear on softhsm2-util's command line, visible to other local
// users through the process table for the moment it runs: use it for
// test and demo tokens, not for production HSMs.
func InitSoftHSM(dir, label, soPIN, userPIN string) (confPath string, err error) {
	if label == "" || len(label) > 32 {
		return "", fmt.Errorf("init SoftHSM token: label %q must be 1..32 bytes: %w", label, ErrInput)
	}
	if len(soPIN) < 4 || len(userPIN) < 4 {
		return "", fmt.Errorf("init SoftHSM token %q: PINs must be at least 4 characters: %w", label, ErrInput)
	}
	util, err := exec.LookPath(SoftHSMUtil)
	if err != nil {
		return "", fmt.Errorf("init SoftHSM token %q: %s not found (install with: %s): %w", label, SoftHSMUtil, InstallHint, ErrNotInstalled)
	}
	if _, err := os.Stat(DefaultModulePath); err != nil {
		return "", fmt.Errorf("init SoftHSM token %q: %s missing (install with: %s): %w", label, DefaultModulePath, InstallHint, ErrNotInstalled)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("init SoftHSM token %q: %w", label, err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("init SoftHSM token %q: create token directory: %w", label, err)
	}
	confPath = filepath.Join(dir, "softhsm2.conf")
	conf := fmt.Sprintf("# Written by posgate hsm.InitSoftHSM.\ndirectories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if old, err := os.ReadFile(confPath); err != nil || string(old) != conf {
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			return "", fmt.Errorf("init SoftHSM token %q: write %s: %w", label, confPath, err)
		}
	}
	env := append(os.Environ(), "SOFTHSM2_CONF="+confPath)

	show := exec.Command(util, "--show-slots")
	show.Env = env
	out, err := show.Output()
	if err != nil {
		return "", fmt.Errorf("init SoftHSM token %q: %s --show-slots: %w", label, SoftHSMUtil, err)
	}
	if hasTokenLabel(out, label) {
		return confPath, nil
	}
	initCmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", soPIN, "--pin", userPIN)
	initCmd.Env = env
	var stderr bytes.Buffer
	initCmd.Stderr = &stderr
	initCmd.Stdout = &stderr
	if err := initCmd.Run(); err != nil {
		// softhsm2-util's output names no PIN; pass its first line on.
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		return "", fmt.Errorf("init SoftHSM token %q: %s --init-token: %s: %w", label, SoftHSMUtil, msg, err)
	}
	return confPath, nil
}

// hasTokenLabel reports whether softhsm2-util --show-slots output lists an
// initialised token with label.
func hasTokenLabel(out []byte, label string) bool {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "Label:"); ok && strings.TrimSpace(v) == label {
			return true
		}
	}
	return false
}

// UseSoftHSMConf sets SOFTHSM2_CONF for this process so that the next Open
// of the SoftHSM2 module reads path. SoftHSM reads the variable once, at
// C_Initialize, so this returns ErrConfInUse when a module is initialised
// in this process under a different configuration (Open shares one
// initialisation per process until the last Token closes). Setting the
// path already in use is a no-op.
func UseSoftHSMConf(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("use SoftHSM config %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("use SoftHSM config: %w", err)
	}
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if len(modules) > 0 && softhsmConf != abs {
		return fmt.Errorf("use SoftHSM config %s while %q is initialised: %w", abs, softhsmConf, ErrConfInUse)
	}
	if err := os.Setenv("SOFTHSM2_CONF", abs); err != nil {
		return errors.Join(fmt.Errorf("use SoftHSM config %s: set SOFTHSM2_CONF", abs), err)
	}
	if len(modules) == 0 {
		softhsmConf = abs
	}
	return nil
}

// OpenSoftHSMDir opens the token cfg names after, when dir is neither empty
// nor "-", creating (or reusing) a SoftHSM2 token with that label in dir and
// pointing the process at its configuration. The SO PIN of a token it
// creates is cfg.PIN + "-so" (demo and first-run tokens only; initialise
// production tokens with the HSM's own tools). Daemons use it so that their
// embedded defaults need no set-up step.
func OpenSoftHSMDir(dir string, cfg Config) (*Token, error) {
	if dir != "" && dir != "-" {
		conf, err := InitSoftHSM(dir, cfg.TokenLabel, cfg.PIN+"-so", cfg.PIN)
		if err != nil {
			return nil, fmt.Errorf("prepare SoftHSM token in %s: %w", dir, err)
		}
		if err := UseSoftHSMConf(conf); err != nil {
			return nil, err
		}
	}
	tok, err := Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open token %q: %w", cfg.TokenLabel, err)
	}
	return tok, nil
}
