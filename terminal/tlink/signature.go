package tlink

import (
	"errors"
	"fmt"

	"github.com/posgate/posgate/protocol/sigcap"
)

// MaxSignature is the largest encoded signature (Signature.Total) the link
// carries: sigcap.MaxTotal, 64 KiB, about 20,000 points in the sign pad's
// version 1 encoding.
const MaxSignature = sigcap.MaxTotal

// SignatureFormat says how a signature's bytes are encoded.
type SignatureFormat uint8

// Signature formats.
const (
	// SignatureSignpadV1 is the sign pad's stroke encoding, version 1
	// (sigcap.Signature, "SG" 0x01 …, docs/signatures.md).
	SignatureSignpadV1 SignatureFormat = sigcap.FormatSignpadV1
)

// SignatureStatus is the gateway's answer to a signature chunk.
type SignatureStatus uint8

// Signature statuses.
const (
	// SignatureOK: chunk stored; send the chunk at NextOffset.
	SignatureOK SignatureStatus = iota + 1
	// SignatureResend: unexpected offset (or the partial signature expired);
	// send again from NextOffset.
	SignatureResend
	// SignatureRefused: the signature breaks a rule (size, no matching
	// transaction) and was discarded; do not send it again.
	SignatureRefused
	// SignatureComplete: the last chunk arrived and the gateway has taken
	// the whole signature for delivery to the center.
	SignatureComplete
)

// Signature is the payload of KindSignature: one chunk of the encoded
// signature the cardholder gave for the transaction named by Ref and STAN.
// Chunks are sent in order, each after the previous chunk's SignatureAck;
// the chunk with Offset+len(Data) == Total is the last. It carries no card
// data: the transaction is named by its ref and STAN, never by PAN.
type Signature struct {
	Ref    string          // tag 0x01, required: the transaction command's ref
	STAN   string          // tag 0x13, required: the transaction's STAN (DE 11)
	Format SignatureFormat // tag 0x50, required
	Offset uint32          // tag 0x51, always present
	Total  uint32          // tag 0x52, required: encoded size, 1..MaxSignature
	Data   []byte          // tag 0x53, required: 1..MaxChunk bytes
}

func (s *Signature) validate() error {
	switch {
	case s.Ref == "":
		return missing(tagRef)
	case s.STAN == "":
		return missing(tagSTAN)
	case s.Format == 0:
		return missing(tagSigFormat)
	case s.Total == 0:
		return missing(tagSigTotal)
	case len(s.Data) == 0:
		return missing(tagSigData)
	case s.Total > MaxSignature:
		return fieldError(tagSigTotal, fmt.Sprintf("must be at most %d bytes", MaxSignature))
	case len(s.Data) > MaxChunk:
		return fieldError(tagSigData, fmt.Sprintf("must be at most %d bytes", MaxChunk))
	case uint64(s.Offset)+uint64(len(s.Data)) > uint64(s.Total):
		return fieldError(tagSigOffset, "chunk ends past the signature size")
	}
	return errors.Join(checkToken(tagRef, s.Ref), checkDigits(tagSTAN, s.STAN, 6),
		checkEnum(tagSigFormat, uint8(s.Format), uint8(SignatureSignpadV1)))
}

// fields is s's field table, in tag order.
func (s *Signature) fields() []field {
	return []field{
		{tag: tagRef, val: str{&s.Ref}},
		{tag: tagSTAN, val: str{&s.STAN}},
		{tag: tagSigFormat, val: u8[SignatureFormat]{&s.Format}},
		{tag: tagSigOffset, val: u32{&s.Offset}, always: true},
		{tag: tagSigTotal, val: u32{&s.Total}},
		{tag: tagSigData, val: octets{&s.Data}},
	}
}

// MarshalBinary returns the canonical TLV encoding of s.
func (s *Signature) MarshalBinary() ([]byte, error) { return marshalFields("signature", s) }

// UnmarshalBinary decodes a canonical TLV encoding into s; s is unchanged
// on error. s.Data is a copy.
func (s *Signature) UnmarshalBinary(b []byte) error {
	var out Signature
	if err := unmarshalFields("signature", b, &out); err != nil {
		return err
	}
	*s = out
	return nil
}

// SignatureAck is the payload of KindSignatureAck.
type SignatureAck struct {
	Ref        string          // tag 0x01, required: the chunk's Ref
	Status     SignatureStatus // tag 0x54, required
	NextOffset uint32          // tag 0x55, always present: the offset the gateway expects next
}

func (a *SignatureAck) validate() error {
	switch {
	case a.Ref == "":
		return missing(tagRef)
	case a.Status == 0:
		return missing(tagSigStatus)
	}
	return errors.Join(checkToken(tagRef, a.Ref), checkEnum(tagSigStatus, uint8(a.Status), uint8(SignatureComplete)))
}

// fields is a's field table, in tag order.
func (a *SignatureAck) fields() []field {
	return []field{
		{tag: tagRef, val: str{&a.Ref}},
		{tag: tagSigStatus, val: u8[SignatureStatus]{&a.Status}},
		{tag: tagSigNext, val: u32{&a.NextOffset}, always: true},
	}
}

// MarshalBinary returns the canonical TLV encoding of a.
func (a *SignatureAck) MarshalBinary() ([]byte, error) { return marshalFields("signature ack", a) }

// UnmarshalBinary decodes a canonical TLV encoding into a; a is unchanged
// on error.
func (a *SignatureAck) UnmarshalBinary(b []byte) error {
	var out SignatureAck
	if err := unmarshalFields("signature ack", b, &out); err != nil {
		return err
	}
	*a = out
	return nil
}
