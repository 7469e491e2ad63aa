// Package routing is the center's switching towards external brand hosts:
// the BIN routing decision (on-us, a brand host, or no route), the
// brand-host client (ISO 8583:1993 over TCP with a 2-byte length header, on
// github.com/moov-io/iso8583-connection), and the host outbox worker that
// delivers timeout reversals (1420, repeated as 1421) and stand-in advices
// (1220, repeated as 1221) until the host answers. docs/switching.md is the
// reference.
//
// The clear PAN travels only on the center-to-host link (DE 2); it is never
// logged, never put into an error and never stored in clear: messages kept
// for later delivery hold the PAN sealed under the token-vault key.
package routing

import (
	"errors"
	"fmt"

	"github.com/moov-io/iso8583"

	"github.com/posgate/posgate/protocol/iso93"
)

// ErrNoMatchKey is returned by MatchKey for a message lacking its MTI,
// DE 7 or DE 11.
var ErrNoMatchKey = errors.New("routing: message has no match key")

// MatchKey is the key that pairs a brand host's response with the request
// waiting for it: the message class (first two MTI digits, so 1100 and 1110
// agree), DE 41 (terminal id, may be absent on 1804), DE 11 (STAN) and DE 7
// (transmission date and time), joined by '|'. STAN alone is not unique on
// the link: every terminal numbers its own STANs, and a repeat days later
// may reuse one; DE 7 makes a late response to an earlier send unmatched.
func MatchKey(msg *iso8583.Message) (string, error) {
	mti, err := msg.GetMTI()
	if err != nil || len(mti) != 4 {
		return "", fmt.Errorf("%w: MTI", ErrNoMatchKey)
	}
	stan, _ := msg.GetString(iso93.FieldSTAN)
	when, _ := msg.GetString(iso93.FieldTransmissionTime)
	if stan == "" || when == "" {
		return "", fmt.Errorf("%w: DE 7 and DE 11 are required", ErrNoMatchKey)
	}
	term, _ := msg.GetString(iso93.FieldTerminalID)
	return mti[:2] + "|" + term + "|" + stan + "|" + when, nil
}

// matchKeyGenerator is MatchKey as iso8583-connection's RequestIDGenerator.
type matchKeyGenerator struct{}

func (matchKeyGenerator) GenerateRequestID(msg *iso8583.Message) (string, error) {
	if msg == nil {
		return "", fmt.Errorf("%w: no message", ErrNoMatchKey)
	}
	return MatchKey(msg)
}
