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

// TimeLayout is the layout (for time.Format) of TxnResult.Time, tag 0x15:
// YYYYMMDDhhmmss in the terminal's local time.
const TimeLayout = "20060102150405"

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

// fields is c's field table, in tag order.
func (c *TxnCommand) fields() []field {
	return []field{
		{tag: tagRef, val: str{&c.Ref}},
		{tag: tagAmount, val: u64{&c.Amount}},
		{tag: tagCurrency, val: str{&c.Currency}},
		{tag: tagOrigRef, val: str{&c.OrigRef}},
	}
}

// MarshalBinary returns the canonical TLV encoding of c, or an error naming
// the first broken rule.
func (c *TxnCommand) MarshalBinary() ([]byte, error) { return marshalFields("transaction command", c) }

// UnmarshalBinary decodes a canonical TLV encoding into c; c is unchanged
// on error.
func (c *TxnCommand) UnmarshalBinary(b []byte) error {
	var out TxnCommand
	if err := unmarshalFields("transaction command", b, &out); err != nil {
		return err
	}
	*c = out
	return nil
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
	Time         string  // tag 0x15, YYYYMMDDhhmmss terminal local time (TimeLayout)
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

// fields is r's field table, in tag order.
func (r *TxnResult) fields() []field {
	return []field{
		{tag: tagRef, val: str{&r.Ref}},
		{tag: tagAmount, val: u64{&r.Amount}},
		{tag: tagCurrency, val: str{&r.Currency}},
		{tag: tagOutcome, val: u8[Outcome]{&r.Outcome}},
		{tag: tagActionCode, val: str{&r.ActionCode}},
		{tag: tagApproval, val: str{&r.ApprovalCode}},
		{tag: tagSTAN, val: str{&r.STAN}},
		{tag: tagRRN, val: str{&r.RRN}},
		{tag: tagTime, val: str{&r.Time}},
	}
}

// MarshalBinary returns the canonical TLV encoding of r.
func (r *TxnResult) MarshalBinary() ([]byte, error) { return marshalFields("transaction result", r) }

// UnmarshalBinary decodes a canonical TLV encoding into r; r is unchanged
// on error.
func (r *TxnResult) UnmarshalBinary(b []byte) error {
	var out TxnResult
	if err := unmarshalFields("transaction result", b, &out); err != nil {
		return err
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

func (r *RefOnly) validate() error { return checkToken(tagRef, r.Ref) }

// fields is r's field table, in tag order.
func (r *RefOnly) fields() []field {
	return []field{{tag: tagRef, val: str{&r.Ref}}}
}

// MarshalBinary returns the canonical TLV encoding of r.
func (r *RefOnly) MarshalBinary() ([]byte, error) { return marshalFields("reference", r) }

// UnmarshalBinary decodes a canonical TLV encoding into r; r is unchanged
// on error.
func (r *RefOnly) UnmarshalBinary(b []byte) error {
	var out RefOnly
	if err := unmarshalFields("reference", b, &out); err != nil {
		return err
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

// fields is d's field table, in tag order.
func (d *Display) fields() []field {
	return []field{
		{tag: tagText, val: str{&d.Text}},
		{tag: tagSeconds, val: u16{&d.Seconds}},
	}
}

// MarshalBinary returns the canonical TLV encoding of d.
func (d *Display) MarshalBinary() ([]byte, error) { return marshalFields("display", d) }

// UnmarshalBinary decodes a canonical TLV encoding into d; d is unchanged
// on error.
func (d *Display) UnmarshalBinary(b []byte) error {
	var out Display
	if err := unmarshalFields("display", b, &out); err != nil {
		return err
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

// fields is p's field table, in tag order.
func (p *Print) fields() []field {
	return []field{
		{tag: tagRef, val: str{&p.Ref}},
		{tag: tagText, val: str{&p.Text}},
	}
}

// MarshalBinary returns the canonical TLV encoding of p.
func (p *Print) MarshalBinary() ([]byte, error) { return marshalFields("print", p) }

// UnmarshalBinary decodes a canonical TLV encoding into p; p is unchanged
// on error.
func (p *Print) UnmarshalBinary(b []byte) error {
	var out Print
	if err := unmarshalFields("print", b, &out); err != nil {
		return err
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

// fields is p's field table, in tag order.
func (p *PrintResult) fields() []field {
	return []field{
		{tag: tagRef, val: str{&p.Ref}},
		{tag: tagPrintStatus, val: u8[PrintStatus]{&p.Status}},
	}
}

// MarshalBinary returns the canonical TLV encoding of p.
func (p *PrintResult) MarshalBinary() ([]byte, error) { return marshalFields("print result", p) }

// UnmarshalBinary decodes a canonical TLV encoding into p; p is unchanged
// on error.
func (p *PrintResult) UnmarshalBinary(b []byte) error {
	var out PrintResult
	if err := unmarshalFields("print result", b, &out); err != nil {
		return err
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

// fields is s's field table, in tag order.
func (s *Status) fields() []field {
	return []field{
		{tag: tagRef, val: str{&s.Ref}},
		{tag: tagDeviceKind, val: u8[uint8]{&s.DeviceKind}},
		{tag: tagState, val: u8[DeviceState]{&s.State}},
		{tag: tagModel, val: str{&s.Model}},
		{tag: tagSerial, val: str{&s.Serial}},
		{tag: tagFirmware, val: str{&s.Firmware}},
		{tag: tagProtocol, val: u8[uint8]{&s.Protocol}},
	}
}

// MarshalBinary returns the canonical TLV encoding of s.
func (s *Status) MarshalBinary() ([]byte, error) { return marshalFields("status", s) }

// UnmarshalBinary decodes a canonical TLV encoding into s; s is unchanged
// on error.
func (s *Status) UnmarshalBinary(b []byte) error {
	var out Status
	if err := unmarshalFields("status", b, &out); err != nil {
		return err
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

// fields is l's field table, in tag order.
func (l *LastTxn) fields() []field {
	return []field{
		{tag: tagRef, val: str{&l.Ref}},
		{tag: tagCommand, val: u8[Kind]{&l.Command}},
		{tag: tagLastTxn, val: nested[TxnResult, *TxnResult]{&l.Txn, (*TxnResult).UnmarshalBinary}},
	}
}

// MarshalBinary returns the canonical TLV encoding of l.
func (l *LastTxn) MarshalBinary() ([]byte, error) { return marshalFields("last transaction", l) }

// UnmarshalBinary decodes a canonical TLV encoding into l; l is unchanged
// on error.
func (l *LastTxn) UnmarshalBinary(b []byte) error {
	var out LastTxn
	if err := unmarshalFields("last transaction", b, &out); err != nil {
		return err
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

// fields is k's field table, in tag order.
func (k *KeyInfo) fields() []field {
	return []field{
		{tag: tagKeySlot, val: str{&k.Slot}},
		{tag: tagKeyType, val: u8[KeyType]{&k.Type}},
		{tag: tagKCV, val: kcv{&k.KCV}, always: true},
		{tag: tagKSN, val: octets{&k.KSN}},
	}
}

// KeyStatus is the payload of KindKeyStatusResponse.
type KeyStatus struct {
	Ref  string    // tag 0x01: the request's Ref
	Keys []KeyInfo // tag 0x30, repeated, nested: one per key, in the terminal's order
}

func (s *KeyStatus) validate() error {
	if err := checkToken(tagRef, s.Ref); err != nil {
		return err
	}
	for i := range s.Keys {
		if err := s.Keys[i].validate(); err != nil {
			return fmt.Errorf("key %d: %w", i, err)
		}
	}
	return nil
}

// fields is s's field table, in tag order.
func (s *KeyStatus) fields() []field {
	return []field{
		{tag: tagRef, val: str{&s.Ref}},
		{tag: tagKey, val: list[KeyInfo, *KeyInfo]{&s.Keys}},
	}
}

// MarshalBinary returns the canonical TLV encoding of s.
func (s *KeyStatus) MarshalBinary() ([]byte, error) { return marshalFields("key status", s) }

// UnmarshalBinary decodes a canonical TLV encoding into s; s is unchanged
// on error.
func (s *KeyStatus) UnmarshalBinary(b []byte) error {
	var out KeyStatus
	if err := unmarshalFields("key status", b, &out); err != nil {
		return err
	}
	*s = out
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

// fields is c's field table, in tag order.
func (c *FirmwareChunk) fields() []field {
	return []field{
		{tag: tagRef, val: str{&c.Ref}},
		{tag: tagImage, val: str{&c.Image}},
		{tag: tagOffset, val: u32{&c.Offset}, always: true},
		{tag: tagTotal, val: u32{&c.Total}},
		{tag: tagData, val: octets{&c.Data}},
	}
}

// MarshalBinary returns the canonical TLV encoding of c.
func (c *FirmwareChunk) MarshalBinary() ([]byte, error) { return marshalFields("firmware chunk", c) }

// UnmarshalBinary decodes a canonical TLV encoding into c; c is unchanged
// on error. c.Data is a copy.
func (c *FirmwareChunk) UnmarshalBinary(b []byte) error {
	var out FirmwareChunk
	if err := unmarshalFields("firmware chunk", b, &out); err != nil {
		return err
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

// fields is a's field table, in tag order.
func (a *FirmwareAck) fields() []field {
	return []field{
		{tag: tagRef, val: str{&a.Ref}},
		{tag: tagImage, val: str{&a.Image}},
		{tag: tagFwStatus, val: u8[FirmwareStatus]{&a.Status}},
		{tag: tagNextOffset, val: u32{&a.NextOffset}, always: true},
	}
}

// MarshalBinary returns the canonical TLV encoding of a.
func (a *FirmwareAck) MarshalBinary() ([]byte, error) { return marshalFields("firmware ack", a) }

// UnmarshalBinary decodes a canonical TLV encoding into a; a is unchanged
// on error.
func (a *FirmwareAck) UnmarshalBinary(b []byte) error {
	var out FirmwareAck
	if err := unmarshalFields("firmware ack", b, &out); err != nil {
		return err
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
