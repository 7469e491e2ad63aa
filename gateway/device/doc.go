// Package device is the gateway's device manager: it keeps every configured
// payment terminal, sign pad and DTMF box open over its transport (serial
// port, USB tty, dialled or accepted TCP), runs the terminal link
// (terminal/tlink) on it, reopens it with capped backoff when it vanishes,
// polls its status for health, relays its financial requests to the center
// through a Handler, and runs transaction commands (sale, refund, void,
// pre-auth, capture) for the POS API.
//
// A transaction command is never resent blindly: when its result is lost
// (no acknowledgement, no txn-result in time, the link dropped), the device
// refuses further commands until a last-transaction query, on the same link
// or on the next one after a reopen, has told what happened; the outcome is
// reported as it is known: approved, declined, cancelled, failed,
// not started, or unknown.
package device
