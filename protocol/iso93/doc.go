// Package iso93 is posgate's ISO 8583:1993 message layer on
// github.com/moov-io/iso8583: the message specification (Spec), typed
// messages for each message class with Pack and UnpackInto, per-MTI
// validation, a fast header read for the forwarding path (Peek), the
// action, function and reason codes, and the 1804/1814 network management
// messages of the QUIC link (NetworkCodec).
//
// Messages travel framed by protocol/frame (a 2-byte big-endian length
// prefix). The wire format is documented field by field in
// docs/message-spec.md.
//
// Errors never quote field values: a bad message yields a *FieldError
// naming the data element and the reason, wrapping one of the package's
// sentinel errors. Functions of this package are safe for concurrent use;
// an *iso8583.Message is safe for concurrent use as moov documents it
// (its methods lock), but a typed message struct is a plain value.
package iso93
