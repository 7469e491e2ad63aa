// Package tlink implements the terminal link protocol: the framed,
// acknowledged byte protocol between the posgate gateway and the devices
// attached to it (payment terminals, sign pads, serial DTMF boxes) over a
// serial line, a USB tty or TCP. docs/terminal-link.md is its
// specification.
//
// A data frame is STX | seq | kind | length (2, BE) | payload | ETX | CRC
// (2, BE; CRC-16/CCITT-FALSE over seq..ETX), with DLE stuffing of the five
// special bytes so that a raw STX always starts a frame and a receiver
// resynchronises after line noise. ACK seq and NAK seq are two-byte control
// frames. Data frames are sent stop-and-wait: retransmitted on NAK or ack
// timeout up to MaxRetries times, and a retransmission the receiver already
// delivered is acknowledged again but not delivered twice.
//
// Control payloads are canonical TLV (tag 1 byte, length 2 bytes BE, value)
// with one Go type per payload; financial payloads are opaque ISO 8583:1993
// messages.
//
// After a lost acknowledgement or result of a transaction command the
// endpoint refuses further transaction commands (ErrUnresolved) until
// LastTransaction has asked the terminal what happened: a sale is never
// blindly resent.
package tlink
