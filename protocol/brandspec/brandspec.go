// Package brandspec is the message specification of the brand-host link:
// ISO 8583:1993 as iso93.Spec defines it plus DE 14, date expiration, which
// the brand hosts need next to the clear PAN (DE 2) and the edge protocol
// does not carry. Messages travel framed by protocol/frame. The center's
// switch (cloud/routing) and the brand-host simulator (firmware-sim/brandhost)
// both speak it; docs/switching.md is the reference.
//
// The package does no I/O; its values are safe for concurrent use.
package brandspec

import (
	"maps"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"

	"github.com/posgate/posgate/protocol/iso93"
)

// FieldExpiry is DE 14, date expiration (n4, YYMM, fixed length).
const FieldExpiry = 14

// Spec is the brand-host link's message specification: iso93.Spec plus
// DE 14. It must not be modified.
var Spec = func() *iso8583.MessageSpec {
	fields := maps.Clone(iso93.Spec.Fields)
	fields[FieldExpiry] = field.NewString(&field.Spec{
		Length: 4, Description: "Date, Expiration", Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed,
	})
	return &iso8583.MessageSpec{Name: "posgate brand-host ISO 8583:1993", Fields: fields}
}()

// NewMessage returns an empty Spec message with the MTI.
func NewMessage(mti string) *iso8583.Message {
	m := iso8583.NewMessage(Spec)
	m.MTI(mti)
	return m
}
