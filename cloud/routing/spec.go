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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"

	"github.com/posgate/posgate/protocol/iso93"
)

// FieldExpiry is DE 14, date expiration (n4, YYMM). The brand-host link
// carries it next to DE 2; the edge protocol (iso93.Spec) does not.
const FieldExpiry = 14

// HostSpec is the message specification of the brand-host link: iso93.Spec
// plus DE 14 (n4 YYMM, fixed length). It must not be modified.
var HostSpec = hostSpec()

func hostSpec() *iso8583.MessageSpec {
	fields := maps.Clone(iso93.Spec.Fields)
	fields[FieldExpiry] = field.NewString(&field.Spec{
		Length: 4, Description: "Date, Expiration", Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed,
	})
	return &iso8583.MessageSpec{Name: "posgate brand-host ISO 8583:1993", Fields: fields}
}

// NewHostMessage returns an empty HostSpec message with the MTI.
func NewHostMessage(mti string) *iso8583.Message {
	m := iso8583.NewMessage(HostSpec)
	m.MTI(mti)
	return m
}

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

// readLength and writeLength are the 2-byte big-endian length header of
// protocol/frame, in iso8583-connection's form.
func readLength(r io.Reader) (int, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n == 0 {
		return 0, errors.New("routing: empty frame from host")
	}
	return n, nil
}

func writeLength(w io.Writer, n int) (int, error) {
	if n <= 0 || n > 0xFFFF {
		return 0, fmt.Errorf("routing: message of %d bytes does not fit a 2-byte header", n)
	}
	var h [2]byte
	binary.BigEndian.PutUint16(h[:], uint16(n))
	return w.Write(h[:])
}
