package tlink

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// TLV tags of control payloads. One namespace serves every kind; each kind
// accepts the subset listed on its payload type. Values are at least one
// byte; integers are big-endian with the fixed width given.
const (
	tagRef         byte = 0x01 // ASCII 1..32 printable: correlation reference, echoed by the response
	tagAmount      byte = 0x02 // uint64, minor units, > 0
	tagCurrency    byte = 0x03 // 3 ASCII digits, ISO 4217 numeric
	tagOrigRef     byte = 0x04 // ASCII 1..32 printable: reference of an earlier transaction
	tagText        byte = 0x05 // UTF-8 text
	tagSeconds     byte = 0x06 // uint16 > 0: how long a display stays
	tagOutcome     byte = 0x10 // uint8 Outcome
	tagActionCode  byte = 0x11 // 3 ASCII digits, ISO 8583:1993 action code (DE 39)
	tagApproval    byte = 0x12 // ASCII 1..6 (0x20..0x7E), approval code (DE 38)
	tagSTAN        byte = 0x13 // 6 ASCII digits (DE 11)
	tagRRN         byte = 0x14 // 12 ASCII (0x20..0x7E), retrieval reference number (DE 37)
	tagTime        byte = 0x15 // 14 ASCII digits YYYYMMDDhhmmss, terminal local time
	tagCommand     byte = 0x16 // uint8 Kind of the transaction command
	tagLastTxn     byte = 0x17 // nested TxnResult TLV
	tagPrintStatus byte = 0x18 // uint8 PrintStatus
	tagDeviceKind  byte = 0x20 // uint8 device kind (transport.DeviceKind values)
	tagState       byte = 0x21 // uint8 DeviceState
	tagModel       byte = 0x22 // ASCII 1..32 printable
	tagSerial      byte = 0x23 // ASCII 1..32 printable
	tagFirmware    byte = 0x24 // ASCII 1..32 printable
	tagProtocol    byte = 0x25 // uint8 protocol version, > 0
	tagKey         byte = 0x30 // nested KeyInfo TLV; repeatable
	tagKeySlot     byte = 0x31 // ASCII 1..32 printable
	tagKeyType     byte = 0x32 // uint8 KeyType
	tagKCV         byte = 0x33 // 3 bytes
	tagKSN         byte = 0x34 // 10 bytes (TDES DUKPT) or 12 bytes (AES DUKPT)
	tagImage       byte = 0x40 // ASCII 1..32 printable: firmware image id
	tagOffset      byte = 0x41 // uint32: offset of a chunk
	tagTotal       byte = 0x42 // uint32 > 0: image size
	tagData        byte = 0x43 // 1..maxChunk bytes of image
	tagFwStatus    byte = 0x44 // uint8 FirmwareStatus
	tagNextOffset  byte = 0x45 // uint32: next offset the terminal expects
	tagSigFormat   byte = 0x50 // uint8 SignatureFormat
	tagSigOffset   byte = 0x51 // uint32: offset of a signature chunk
	tagSigTotal    byte = 0x52 // uint32 > 0: encoded signature size
	tagSigData     byte = 0x53 // 1..MaxChunk bytes of the encoded signature
	tagSigStatus   byte = 0x54 // uint8 SignatureStatus
	tagSigNext     byte = 0x55 // uint32: next offset the gateway expects
	maxTLVValue         = 0xFFFF
	tlvHeaderLen        = 3
)

// tagNames names tags in errors.
var tagNames = map[byte]string{
	tagRef: "ref", tagAmount: "amount", tagCurrency: "currency", tagOrigRef: "orig_ref",
	tagText: "text", tagSeconds: "seconds", tagOutcome: "outcome", tagActionCode: "action_code",
	tagApproval: "approval_code", tagSTAN: "stan", tagRRN: "rrn", tagTime: "time",
	tagCommand: "command", tagLastTxn: "last_txn", tagPrintStatus: "print_status",
	tagDeviceKind: "device_kind", tagState: "state", tagModel: "model", tagSerial: "serial",
	tagFirmware: "firmware", tagProtocol: "protocol", tagKey: "key", tagKeySlot: "slot",
	tagKeyType: "key_type", tagKCV: "kcv", tagKSN: "ksn", tagImage: "image",
	tagOffset: "offset", tagTotal: "total", tagData: "data", tagFwStatus: "status",
	tagNextOffset: "next_offset", tagSigFormat: "format", tagSigOffset: "offset",
	tagSigTotal: "total", tagSigData: "data", tagSigStatus: "status", tagSigNext: "next_offset",
}

// fieldError builds a payload error naming the tag and the broken rule,
// never the value.
func fieldError(tag byte, rule string) error {
	return fmt.Errorf("tag 0x%02X (%s): %s: %w", tag, tagNames[tag], rule, ErrPayload)
}

// missing builds the error for an absent required field.
func missing(tag byte) error {
	return fmt.Errorf("tag 0x%02X (%s): %w", tag, tagNames[tag], ErrMissingField)
}

// tlvIter walks a TLV sequence, enforcing the canonical order: tags strictly
// ascending, except that a repeatable tag may follow itself.
type tlvIter struct {
	b    []byte
	prev int
	rep  byte // the one repeatable tag of this payload, 0 if none
}

// next returns the next field; ok is false at the end of the sequence.
func (it *tlvIter) next() (tag byte, v []byte, ok bool, err error) {
	if len(it.b) == 0 {
		return 0, nil, false, nil
	}
	if len(it.b) < tlvHeaderLen {
		return 0, nil, false, fmt.Errorf("truncated TLV header: %w", ErrPayload)
	}
	tag = it.b[0]
	n := int(binary.BigEndian.Uint16(it.b[1:3]))
	if n == 0 {
		return 0, nil, false, fieldError(tag, "empty value")
	}
	if len(it.b)-tlvHeaderLen < n {
		return 0, nil, false, fieldError(tag, "value runs past the payload")
	}
	if int(tag) < it.prev || (int(tag) == it.prev && tag != it.rep) {
		return 0, nil, false, fieldError(tag, "out of order or repeated")
	}
	it.prev = int(tag)
	v = it.b[tlvHeaderLen : tlvHeaderLen+n]
	it.b = it.b[tlvHeaderLen+n:]
	return tag, v, true, nil
}

// putBytes appends one field.
func putBytes(dst []byte, tag byte, v []byte) []byte {
	dst = append(dst, tag, byte(len(v)>>8), byte(len(v)))
	return append(dst, v...)
}

// putStr appends a string field when s is not empty.
func putStr(dst []byte, tag byte, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, tag, byte(len(s)>>8), byte(len(s)))
	return append(dst, s...)
}

// putU8 appends a one-byte field when v is not zero.
func putU8(dst []byte, tag byte, v uint8) []byte {
	if v == 0 {
		return dst
	}
	return append(dst, tag, 0, 1, v)
}

// putU16 appends a two-byte field when v is not zero.
func putU16(dst []byte, tag byte, v uint16) []byte {
	if v == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint16(append(dst, tag, 0, 2), v)
}

// putU32 always appends a four-byte field (zero offsets are meaningful).
func putU32(dst []byte, tag byte, v uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, tag, 0, 4), v)
}

// putU64 appends an eight-byte field when v is not zero.
func putU64(dst []byte, tag byte, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint64(append(dst, tag, 0, 8), v)
}

// Decoding helpers: each checks the width and converts; value rules are
// checked afterwards by the payload's validate, the same code Marshal runs.

func getU8(tag byte, v []byte) (uint8, error) {
	if len(v) != 1 {
		return 0, fieldError(tag, "must be 1 byte")
	}
	if v[0] == 0 {
		return 0, fieldError(tag, "zero must be omitted")
	}
	return v[0], nil
}

func getU16(tag byte, v []byte) (uint16, error) {
	if len(v) != 2 {
		return 0, fieldError(tag, "must be 2 bytes")
	}
	x := binary.BigEndian.Uint16(v)
	if x == 0 {
		return 0, fieldError(tag, "zero must be omitted")
	}
	return x, nil
}

func getU32(tag byte, v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, fieldError(tag, "must be 4 bytes")
	}
	return binary.BigEndian.Uint32(v), nil
}

func getU64(tag byte, v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fieldError(tag, "must be 8 bytes")
	}
	x := binary.BigEndian.Uint64(v)
	if x == 0 {
		return 0, fieldError(tag, "zero must be omitted")
	}
	return x, nil
}

// Value rules shared by encoding and decoding. Empty means absent and is
// checked by the caller where the field is required.

// checkToken: 1..32 printable ASCII without spaces.
func checkToken(tag byte, s string) error {
	if s == "" {
		return nil
	}
	if len(s) > 32 {
		return fieldError(tag, "must be at most 32 bytes")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7E {
			return fieldError(tag, "must be printable ASCII without spaces")
		}
	}
	return nil
}

// checkDigits: exactly n ASCII digits.
func checkDigits(tag byte, s string, n int) error {
	if s == "" {
		return nil
	}
	if len(s) != n {
		return fieldError(tag, fmt.Sprintf("must be %d digits", n))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fieldError(tag, fmt.Sprintf("must be %d digits", n))
		}
	}
	return nil
}

// checkPrintable: minLen..maxLen ASCII 0x20..0x7E.
func checkPrintable(tag byte, s string, minLen, maxLen int) error {
	if s == "" {
		return nil
	}
	if len(s) < minLen || len(s) > maxLen {
		return fieldError(tag, fmt.Sprintf("must be %d..%d bytes", minLen, maxLen))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return fieldError(tag, "must be ASCII 0x20..0x7E")
		}
	}
	return nil
}

// checkText: valid UTF-8 of at most maxLen bytes.
func checkText(tag byte, s string, maxLen int) error {
	if len(s) > maxLen {
		return fieldError(tag, fmt.Sprintf("must be at most %d bytes", maxLen))
	}
	if !utf8.ValidString(s) {
		return fieldError(tag, "must be valid UTF-8")
	}
	return nil
}

// checkEnum: zero (absent) or 1..max.
func checkEnum(tag byte, v, maxV uint8) error {
	if v > maxV {
		return fieldError(tag, fmt.Sprintf("must be 1..%d", maxV))
	}
	return nil
}

// checkMoney: amount and currency go together.
func checkMoney(amount uint64, currency string) error {
	if err := checkDigits(tagCurrency, currency, 3); err != nil {
		return err
	}
	if (amount == 0) != (currency == "") {
		return fieldError(tagCurrency, "amount and currency must be given together")
	}
	return nil
}

// unknownTag reports a tag the kind does not define.
func unknownTag(tag byte) error {
	return fmt.Errorf("tag 0x%02X: not defined for this kind: %w", tag, ErrPayload)
}
