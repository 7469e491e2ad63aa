package tlink

import (
	"errors"
	"fmt"
)

// Payload value limits.
const (
	MaxDisplayText = 512   // bytes of UTF-8 in a Display
	MaxReceiptText = 16384 // bytes of UTF-8 in a Print
	MaxChunk       = 4096  // bytes of image data in a FirmwareChunk
)

// ProtocolVersion is the terminal link protocol version this package speaks,
// reported in Status.Protocol.
const ProtocolVersion = 1

// Outcome is the result of a transaction command.
type Outcome uint8

// Outcomes.
const (
	OutcomePending   Outcome = iota + 1 // still in progress (only in a LastTxn)
	OutcomeApproved                     // approved by the host or by stand-in
	OutcomeDeclined                     // declined
	OutcomeCancelled                    // cancelled by the cardholder, the clerk or KindCancel
	OutcomeFailed                       // not completed: card error, timeout, host unreachable
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case OutcomePending:
		return "pending"
	case OutcomeApproved:
		return "approved"
	case OutcomeDeclined:
		return "declined"
	case OutcomeCancelled:
		return "cancelled"
	case OutcomeFailed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// PrintStatus is the result of a print.
type PrintStatus uint8

// Print statuses.
const (
	PrintOK       PrintStatus = iota + 1 // printed
	PrintPaperOut                        // out of paper, nothing or part printed
	PrintError                           // printer fault
)

// DeviceState is a device's state in a Status.
type DeviceState uint8

// Device states.
const (
	StateIdle     DeviceState = iota + 1 // ready for a command
	StateBusy                            // a command is in progress
	StateError                           // needs attention (tamper, printer, keys missing)
	StateUpdating                        // receiving or installing firmware
)

// KeyType is the kind of key in a KeyInfo.
type KeyType uint8

// Key types.
const (
	KeyTDESDUKPT   KeyType = iota + 1 // ANSI X9.24-1 TDES DUKPT, 10-byte KSN
	KeyAES128DUKPT                    // X9.24-3 AES-128 DUKPT, 12-byte KSN
	KeyAES256DUKPT                    // X9.24-3 AES-256 DUKPT, 12-byte KSN
	KeyFingerprint                    // PAN fingerprint HMAC key, no KSN
	KeyFirmware                       // firmware signature verification key, no KSN
)

// FirmwareStatus is a terminal's answer to a firmware chunk.
type FirmwareStatus uint8

// Firmware statuses.
const (
	FirmwareOK        FirmwareStatus = iota + 1 // chunk stored; send NextOffset
	FirmwareResend                              // unexpected offset; resend from NextOffset
	FirmwareBadImage                            // signature or size check failed; image discarded
	FirmwareInstalled                           // last chunk stored, image verified and installed
)

// TxnCommand is the payload of KindSale, KindRefund, KindVoid, KindPreAuth
// and KindCapture. Which fields a kind requires is checked by Validate.
type TxnCommand struct {
	Ref      string // tag 0x01, required: the ECR's reference, echoed in the TxnResult
	Amount   uint64 // tag 0x02, minor units; zero means absent
	Currency string // tag 0x03, ISO 4217 numeric; given with Amount
	OrigRef  string // tag 0x04, reference of the transaction voided, captured or refunded
}

func (c *TxnCommand) validate() error {
	if c.Ref == "" {
		return missing(tagRef)
	}
	return errors.Join(checkToken(tagRef, c.Ref), checkToken(tagOrigRef, c.OrigRef), checkMoney(c.Amount, c.Currency))
}

// Validate checks c as the payload of kind k: sale and pre-auth need an
// amount and no OrigRef; refund needs an amount and may name OrigRef; void
// needs OrigRef and may give an amount; capture needs both.
func (c *TxnCommand) Validate(k Kind) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("%v payload: %w", k, err)
	}
	var err error
	switch k {
	case KindSale, KindPreAuth:
		if c.Amount == 0 {
			err = missing(tagAmount)
		} else if c.OrigRef != "" {
			err = fieldError(tagOrigRef, "not allowed for this kind")
		}
	case KindRefund:
		if c.Amount == 0 {
			err = missing(tagAmount)
		}
	case KindVoid:
		if c.OrigRef == "" {
			err = missing(tagOrigRef)
		}
	case KindCapture:
		if c.OrigRef == "" {
			err = missing(tagOrigRef)
		} else if c.Amount == 0 {
			err = missing(tagAmount)
		}
	default:
		err = fmt.Errorf("not a transaction command: %w", ErrPayload)
	}
	if err != nil {
		return fmt.Errorf("%v payload: %w", k, err)
	}
	return nil
}

// MarshalBinary returns the canonical TLV encoding of c, or an error naming
// the first broken rule.
func (c *TxnCommand) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("encode transaction command: %w", err)
	}
	b := putStr(nil, tagRef, c.Ref)
	b = putU64(b, tagAmount, c.Amount)
	b = putStr(b, tagCurrency, c.Currency)
	return putStr(b, tagOrigRef, c.OrigRef), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into c; c is unchanged
// on error.
func (c *TxnCommand) UnmarshalBinary(b []byte) error {
	var out TxnCommand
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagAmount:
				out.Amount, err = getU64(tag, v)
			case tagCurrency:
				out.Currency = string(v)
			case tagOrigRef:
				out.OrigRef = string(v)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode transaction command: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode transaction command: %w", err)
	}
	*c = out
	return nil
}

// TxnResult is the payload of KindTxnResult and the nested last transaction
// of a LastTxn. It carries no card data: no PAN, masked or not.
type TxnResult struct {
	Ref          string  // tag 0x01, required: the command's Ref
	Amount       uint64  // tag 0x02, amount processed; zero means absent
	Currency     string  // tag 0x03, with Amount
	Outcome      Outcome // tag 0x10, required
	ActionCode   string  // tag 0x11, ISO 8583:1993 action code, e.g. "000"
	ApprovalCode string  // tag 0x12, 1..6 characters
	STAN         string  // tag 0x13, 6 digits
	RRN          string  // tag 0x14, 12 characters
	Time         string  // tag 0x15, YYYYMMDDhhmmss terminal local time
}

func (r *TxnResult) validate() error {
	if r.Ref == "" {
		return missing(tagRef)
	}
	if r.Outcome == 0 {
		return missing(tagOutcome)
	}
	var rrn error
	if r.RRN != "" && len(r.RRN) != 12 {
		rrn = fieldError(tagRRN, "must be 12 bytes")
	}
	return errors.Join(checkToken(tagRef, r.Ref), checkMoney(r.Amount, r.Currency),
		checkEnum(tagOutcome, uint8(r.Outcome), uint8(OutcomeFailed)),
		checkDigits(tagActionCode, r.ActionCode, 3), checkPrintable(tagApproval, r.ApprovalCode, 1, 6),
		checkDigits(tagSTAN, r.STAN, 6), checkPrintable(tagRRN, r.RRN, 12, 12), rrn,
		checkDigits(tagTime, r.Time, 14))
}

func (r *TxnResult) appendTLV(b []byte) []byte {
	b = putStr(b, tagRef, r.Ref)
	b = putU64(b, tagAmount, r.Amount)
	b = putStr(b, tagCurrency, r.Currency)
	b = putU8(b, tagOutcome, uint8(r.Outcome))
	b = putStr(b, tagActionCode, r.ActionCode)
	b = putStr(b, tagApproval, r.ApprovalCode)
	b = putStr(b, tagSTAN, r.STAN)
	b = putStr(b, tagRRN, r.RRN)
	return putStr(b, tagTime, r.Time)
}

// MarshalBinary returns the canonical TLV encoding of r.
func (r *TxnResult) MarshalBinary() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("encode transaction result: %w", err)
	}
	return r.appendTLV(nil), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into r; r is unchanged
// on error.
func (r *TxnResult) UnmarshalBinary(b []byte) error {
	var out TxnResult
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagAmount:
				out.Amount, err = getU64(tag, v)
			case tagCurrency:
				out.Currency = string(v)
			case tagOutcome:
				var o uint8
				o, err = getU8(tag, v)
				out.Outcome = Outcome(o)
			case tagActionCode:
				out.ActionCode = string(v)
			case tagApproval:
				out.ApprovalCode = string(v)
			case tagSTAN:
				out.STAN = string(v)
			case tagRRN:
				out.RRN = string(v)
			case tagTime:
				out.Time = string(v)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode transaction result: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode transaction result: %w", err)
	}
	*r = out
	return nil
}

// RefOnly is the payload of KindCancel, KindStatusRequest, KindLastTxnQuery
// and KindKeyStatusRequest: an optional reference. For a cancel it names
// the command to cancel (empty: whatever is in progress); for the requests
// it is echoed by the response. The empty RefOnly encodes as an empty
// payload.
type RefOnly struct {
	Ref string // tag 0x01, optional
}

// MarshalBinary returns the canonical TLV encoding of r.
func (r *RefOnly) MarshalBinary() ([]byte, error) {
	if err := checkToken(tagRef, r.Ref); err != nil {
		return nil, fmt.Errorf("encode reference: %w", err)
	}
	return putStr([]byte{}, tagRef, r.Ref), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into r; r is unchanged
// on error.
func (r *RefOnly) UnmarshalBinary(b []byte) error {
	var out RefOnly
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			if tag == tagRef {
				out.Ref = string(v)
				err = checkToken(tagRef, out.Ref)
			} else {
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode reference: %w", err)
		}
		if !ok {
			break
		}
	}
	*r = out
	return nil
}

// Display is the payload of KindDisplay.
type Display struct {
	Text    string // tag 0x05, required: UTF-8, at most MaxDisplayText bytes, lines split by "\n"
	Seconds uint16 // tag 0x06: how long to show it; zero means until replaced
}

func (d *Display) validate() error {
	if d.Text == "" {
		return missing(tagText)
	}
	return checkText(tagText, d.Text, MaxDisplayText)
}

// MarshalBinary returns the canonical TLV encoding of d.
func (d *Display) MarshalBinary() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("encode display: %w", err)
	}
	return putU16(putStr(nil, tagText, d.Text), tagSeconds, d.Seconds), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into d; d is unchanged
// on error.
func (d *Display) UnmarshalBinary(b []byte) error {
	var out Display
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagText:
				out.Text = string(v)
			case tagSeconds:
				out.Seconds, err = getU16(tag, v)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode display: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode display: %w", err)
	}
	*d = out
	return nil
}

// Print is the payload of KindPrint.
type Print struct {
	Ref  string // tag 0x01, optional, echoed in the PrintResult
	Text string // tag 0x05, required: UTF-8 receipt, at most MaxReceiptText bytes
}

func (p *Print) validate() error {
	if p.Text == "" {
		return missing(tagText)
	}
	return errors.Join(checkToken(tagRef, p.Ref), checkText(tagText, p.Text, MaxReceiptText))
}

// MarshalBinary returns the canonical TLV encoding of p.
func (p *Print) MarshalBinary() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("encode print: %w", err)
	}
	return putStr(putStr(nil, tagRef, p.Ref), tagText, p.Text), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into p; p is unchanged
// on error.
func (p *Print) UnmarshalBinary(b []byte) error {
	var out Print
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagText:
				out.Text = string(v)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode print: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode print: %w", err)
	}
	*p = out
	return nil
}

// PrintResult is the payload of KindPrintResult.
type PrintResult struct {
	Ref    string      // tag 0x01: the Print's Ref
	Status PrintStatus // tag 0x18, required
}

func (p *PrintResult) validate() error {
	if p.Status == 0 {
		return missing(tagPrintStatus)
	}
	return errors.Join(checkToken(tagRef, p.Ref), checkEnum(tagPrintStatus, uint8(p.Status), uint8(PrintError)))
}

// MarshalBinary returns the canonical TLV encoding of p.
func (p *PrintResult) MarshalBinary() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("encode print result: %w", err)
	}
	return putU8(putStr(nil, tagRef, p.Ref), tagPrintStatus, uint8(p.Status)), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into p; p is unchanged
// on error.
func (p *PrintResult) UnmarshalBinary(b []byte) error {
	var out PrintResult
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagPrintStatus:
				var s uint8
				s, err = getU8(tag, v)
				out.Status = PrintStatus(s)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode print result: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode print result: %w", err)
	}
	*p = out
	return nil
}

// Status is the payload of KindStatusResponse.
type Status struct {
	Ref        string      // tag 0x01: the request's Ref
	DeviceKind uint8       // tag 0x20, required: transport.DeviceKind value (1 terminal, 2 sign pad, 3 DTMF box)
	State      DeviceState // tag 0x21, required
	Model      string      // tag 0x22
	Serial     string      // tag 0x23
	Firmware   string      // tag 0x24, firmware version
	Protocol   uint8       // tag 0x25, required: link protocol version (ProtocolVersion)
}

func (s *Status) validate() error {
	switch {
	case s.DeviceKind == 0:
		return missing(tagDeviceKind)
	case s.State == 0:
		return missing(tagState)
	case s.Protocol == 0:
		return missing(tagProtocol)
	}
	return errors.Join(checkToken(tagRef, s.Ref), checkEnum(tagDeviceKind, s.DeviceKind, 3),
		checkEnum(tagState, uint8(s.State), uint8(StateUpdating)), checkToken(tagModel, s.Model),
		checkToken(tagSerial, s.Serial), checkToken(tagFirmware, s.Firmware))
}

// MarshalBinary returns the canonical TLV encoding of s.
func (s *Status) MarshalBinary() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	b := putStr(nil, tagRef, s.Ref)
	b = putU8(b, tagDeviceKind, s.DeviceKind)
	b = putU8(b, tagState, uint8(s.State))
	b = putStr(b, tagModel, s.Model)
	b = putStr(b, tagSerial, s.Serial)
	b = putStr(b, tagFirmware, s.Firmware)
	return putU8(b, tagProtocol, s.Protocol), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into s; s is unchanged
// on error.
func (s *Status) UnmarshalBinary(b []byte) error {
	var out Status
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			var x uint8
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagDeviceKind:
				out.DeviceKind, err = getU8(tag, v)
			case tagState:
				x, err = getU8(tag, v)
				out.State = DeviceState(x)
			case tagModel:
				out.Model = string(v)
			case tagSerial:
				out.Serial = string(v)
			case tagFirmware:
				out.Firmware = string(v)
			case tagProtocol:
				out.Protocol, err = getU8(tag, v)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode status: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	*s = out
	return nil
}

// LastTxn is the payload of KindLastTxnResponse: the terminal's most recent
// transaction command and its state. Txn is nil when the terminal has none
// (fresh from the factory or after a reset).
type LastTxn struct {
	Ref     string     // tag 0x01: the query's Ref
	Command Kind       // tag 0x16: kind of the command that started it; required with Txn
	Txn     *TxnResult // tag 0x17, nested: its result so far (Outcome OutcomePending while in progress)
}

func (l *LastTxn) validate() error {
	if err := checkToken(tagRef, l.Ref); err != nil {
		return err
	}
	if l.Txn == nil {
		if l.Command != 0 {
			return fieldError(tagCommand, "given without a last transaction")
		}
		return nil
	}
	if !IsTxnCommand(l.Command) {
		return fieldError(tagCommand, "must be a transaction command kind")
	}
	return l.Txn.validate()
}

// MarshalBinary returns the canonical TLV encoding of l.
func (l *LastTxn) MarshalBinary() ([]byte, error) {
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("encode last transaction: %w", err)
	}
	b := putStr([]byte{}, tagRef, l.Ref)
	if l.Txn != nil {
		b = putU8(b, tagCommand, uint8(l.Command))
		b = putBytes(b, tagLastTxn, l.Txn.appendTLV(nil))
	}
	return b, nil
}

// UnmarshalBinary decodes a canonical TLV encoding into l; l is unchanged
// on error.
func (l *LastTxn) UnmarshalBinary(b []byte) error {
	var out LastTxn
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagCommand:
				var k uint8
				k, err = getU8(tag, v)
				out.Command = Kind(k)
			case tagLastTxn:
				out.Txn = new(TxnResult)
				err = out.Txn.UnmarshalBinary(v)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode last transaction: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode last transaction: %w", err)
	}
	*l = out
	return nil
}

// KeyInfo describes one key in a terminal's secure storage: never key
// bytes, only what identifies and checks them.
type KeyInfo struct {
	Slot string  // tag 0x31, required: the terminal's name for the key
	Type KeyType // tag 0x32, required
	KCV  [3]byte // tag 0x33, required: key check value
	KSN  []byte  // tag 0x34: current KSN, 10 bytes (TDES) or 12 bytes (AES); DUKPT keys only
}

func (k *KeyInfo) validate() error {
	switch {
	case k.Slot == "":
		return missing(tagKeySlot)
	case k.Type == 0:
		return missing(tagKeyType)
	}
	var ksn error
	switch {
	case k.Type == KeyTDESDUKPT && len(k.KSN) != 10:
		ksn = fieldError(tagKSN, "must be 10 bytes for a TDES DUKPT key")
	case (k.Type == KeyAES128DUKPT || k.Type == KeyAES256DUKPT) && len(k.KSN) != 12:
		ksn = fieldError(tagKSN, "must be 12 bytes for an AES DUKPT key")
	case (k.Type == KeyFingerprint || k.Type == KeyFirmware) && len(k.KSN) != 0:
		ksn = fieldError(tagKSN, "not allowed for a non-DUKPT key")
	}
	return errors.Join(checkToken(tagKeySlot, k.Slot), checkEnum(tagKeyType, uint8(k.Type), uint8(KeyFirmware)), ksn)
}

// KeyStatus is the payload of KindKeyStatusResponse.
type KeyStatus struct {
	Ref  string    // tag 0x01: the request's Ref
	Keys []KeyInfo // tag 0x30, repeated, nested: one per key, in the terminal's order
}

// MarshalBinary returns the canonical TLV encoding of s.
func (s *KeyStatus) MarshalBinary() ([]byte, error) {
	if err := checkToken(tagRef, s.Ref); err != nil {
		return nil, fmt.Errorf("encode key status: %w", err)
	}
	b := putStr([]byte{}, tagRef, s.Ref)
	for i := range s.Keys {
		k := &s.Keys[i]
		if err := k.validate(); err != nil {
			return nil, fmt.Errorf("encode key status: key %d: %w", i, err)
		}
		e := putStr(nil, tagKeySlot, k.Slot)
		e = putU8(e, tagKeyType, uint8(k.Type))
		e = putBytes(e, tagKCV, k.KCV[:])
		if len(k.KSN) > 0 {
			e = putBytes(e, tagKSN, k.KSN)
		}
		b = putBytes(b, tagKey, e)
	}
	return b, nil
}

// UnmarshalBinary decodes a canonical TLV encoding into s; s is unchanged
// on error.
func (s *KeyStatus) UnmarshalBinary(b []byte) error {
	var out KeyStatus
	it := tlvIter{b: b, rep: tagKey}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
				err = checkToken(tagRef, out.Ref)
			case tagKey:
				var k KeyInfo
				if err = k.unmarshal(v); err == nil {
					out.Keys = append(out.Keys, k)
				}
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode key status: %w", err)
		}
		if !ok {
			break
		}
	}
	*s = out
	return nil
}

// unmarshal decodes one nested key entry.
func (k *KeyInfo) unmarshal(b []byte) error {
	var out KeyInfo
	var haveKCV bool
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagKeySlot:
				out.Slot = string(v)
			case tagKeyType:
				var t uint8
				t, err = getU8(tag, v)
				out.Type = KeyType(t)
			case tagKCV:
				if len(v) != 3 {
					err = fieldError(tag, "must be 3 bytes")
				}
				copy(out.KCV[:], v)
				haveKCV = true
			case tagKSN:
				out.KSN = append([]byte(nil), v...)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return err
		}
		if !ok {
			break
		}
	}
	if !haveKCV {
		return missing(tagKCV)
	}
	if err := out.validate(); err != nil {
		return err
	}
	*k = out
	return nil
}

// FirmwareChunk is the payload of KindFirmwareChunk. Chunks are sent in
// order; the chunk with Offset+len(Data) == Total is the last.
type FirmwareChunk struct {
	Ref    string // tag 0x01, optional, echoed in the FirmwareAck
	Image  string // tag 0x40, required: image id (for example its version)
	Offset uint32 // tag 0x41, always present
	Total  uint32 // tag 0x42, required: whole image size
	Data   []byte // tag 0x43, required: 1..MaxChunk bytes
}

func (c *FirmwareChunk) validate() error {
	switch {
	case c.Image == "":
		return missing(tagImage)
	case c.Total == 0:
		return missing(tagTotal)
	case len(c.Data) == 0:
		return missing(tagData)
	case len(c.Data) > MaxChunk:
		return fieldError(tagData, fmt.Sprintf("must be at most %d bytes", MaxChunk))
	case uint64(c.Offset)+uint64(len(c.Data)) > uint64(c.Total):
		return fieldError(tagOffset, "chunk ends past the image size")
	}
	return errors.Join(checkToken(tagRef, c.Ref), checkToken(tagImage, c.Image))
}

// MarshalBinary returns the canonical TLV encoding of c.
func (c *FirmwareChunk) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("encode firmware chunk: %w", err)
	}
	b := putStr(nil, tagRef, c.Ref)
	b = putStr(b, tagImage, c.Image)
	b = putU32(b, tagOffset, c.Offset)
	b = putU32(b, tagTotal, c.Total)
	return putBytes(b, tagData, c.Data), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into c; c is unchanged
// on error. c.Data is a copy.
func (c *FirmwareChunk) UnmarshalBinary(b []byte) error {
	var out FirmwareChunk
	var haveOffset bool
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagImage:
				out.Image = string(v)
			case tagOffset:
				out.Offset, err = getU32(tag, v)
				haveOffset = true
			case tagTotal:
				out.Total, err = getU32(tag, v)
			case tagData:
				out.Data = append([]byte(nil), v...)
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode firmware chunk: %w", err)
		}
		if !ok {
			break
		}
	}
	if !haveOffset {
		return fmt.Errorf("decode firmware chunk: %w", missing(tagOffset))
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode firmware chunk: %w", err)
	}
	*c = out
	return nil
}

// FirmwareAck is the payload of KindFirmwareAck.
type FirmwareAck struct {
	Ref        string         // tag 0x01: the chunk's Ref
	Image      string         // tag 0x40, required
	NextOffset uint32         // tag 0x45, always present: the offset the terminal expects next
	Status     FirmwareStatus // tag 0x44, required
}

func (a *FirmwareAck) validate() error {
	switch {
	case a.Image == "":
		return missing(tagImage)
	case a.Status == 0:
		return missing(tagFwStatus)
	}
	return errors.Join(checkToken(tagRef, a.Ref), checkToken(tagImage, a.Image),
		checkEnum(tagFwStatus, uint8(a.Status), uint8(FirmwareInstalled)))
}

// MarshalBinary returns the canonical TLV encoding of a.
func (a *FirmwareAck) MarshalBinary() ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, fmt.Errorf("encode firmware ack: %w", err)
	}
	b := putStr(nil, tagRef, a.Ref)
	b = putStr(b, tagImage, a.Image)
	b = putU8(b, tagFwStatus, uint8(a.Status))
	return putU32(b, tagNextOffset, a.NextOffset), nil
}

// UnmarshalBinary decodes a canonical TLV encoding into a; a is unchanged
// on error.
func (a *FirmwareAck) UnmarshalBinary(b []byte) error {
	var out FirmwareAck
	var haveNext bool
	it := tlvIter{b: b}
	for {
		tag, v, ok, err := it.next()
		if err == nil && ok {
			switch tag {
			case tagRef:
				out.Ref = string(v)
			case tagImage:
				out.Image = string(v)
			case tagFwStatus:
				var s uint8
				s, err = getU8(tag, v)
				out.Status = FirmwareStatus(s)
			case tagNextOffset:
				out.NextOffset, err = getU32(tag, v)
				haveNext = true
			default:
				err = unknownTag(tag)
			}
		}
		if err != nil {
			return fmt.Errorf("decode firmware ack: %w", err)
		}
		if !ok {
			break
		}
	}
	if !haveNext {
		return fmt.Errorf("decode firmware ack: %w", missing(tagNextOffset))
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode firmware ack: %w", err)
	}
	*a = out
	return nil
}

// refOf returns the correlation reference (tag 0x01) of a control payload,
// or "" when the kind has none or the payload does not parse.
func refOf(k Kind, payload []byte) string {
	if !isTLV(k) {
		return ""
	}
	it := tlvIter{b: payload, rep: tagKey}
	for {
		tag, v, ok, err := it.next()
		if err != nil || !ok || tag > tagRef {
			return ""
		}
		if tag == tagRef {
			return string(v)
		}
	}
}
