// Package confkey reports configuration problems the one way every posgate
// daemon reports them: the key's full YAML name, its value and the rule it
// breaks, as in
//
//	http.listen = "nocolon": must be host:port
//
// It holds the rules that several daemons' configurations share (listen
// and dial addresses); the shared sections themselves live with what they
// configure (hsm.TokenConfig, redact.LogConfig).
package confkey

import (
	"fmt"
	"net"
)

// Error is one bad configuration key. Value is the value as written, or a
// placeholder for a secret (a PIN is never echoed).
type Error struct {
	Key   string
	Value string
	Rule  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s = %q: %s", e.Key, e.Value, e.Rule) }

// Bad returns the *Error for key holding val (printed with fmt.Sprint) that
// breaks rule.
func Bad(key string, val any, rule string) error {
	return &Error{Key: key, Value: fmt.Sprint(val), Rule: rule}
}

// HostPortRule is the rule a listen or dial address must follow.
const HostPortRule = "must be host:port"

// HostPort returns a *Error for key when addr is not host:port (host may be
// empty, ":7443" listens on every address), nil otherwise.
func HostPort(key, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Bad(key, addr, HostPortRule)
	}
	return nil
}
