// Command hsmctl is the key custodian's CLI: it sets up a PKCS#11 token,
// generates and imports keys with key check values, lists keys, derives
// DUKPT keys inside the token for checking against published vectors, and
// performs the key-injection step that writes a terminal's key bundle.
//
//	hsmctl init            initialise a SoftHSM2 token in --softhsm-dir (idempotent)
//	hsmctl gen-bdk         generate a DUKPT base derivation key in the token
//	hsmctl gen-component   print a random clear key component and its KCV
//	hsmctl import          import a key from components, checking KCVs
//	hsmctl list            list every key with kind, length, KCV and attributes
//	hsmctl inject          derive a terminal's initial key and write its key bundle
//	hsmctl derive          derive a DUKPT working key in the token and print its KCV
//	hsmctl encrypt-block   encrypt a card-data block as a terminal would (test tool)
//	hsmctl decrypt-block   decrypt a card-data block in the token; print only masked data
//
// Every command takes --format text|json and the token flags --softhsm-dir,
// --module, --token, --pin and --so-pin; `hsmctl COMMAND -h` lists the
// command's flags. docs/keys.md describes the key hierarchy and the key
// ceremony these commands serve.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		// run has already reported err on the stream its format asks for.
		os.Exit(1)
	}
}
