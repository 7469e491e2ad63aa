// Package pinblock builds and opens ISO 9564-1 PIN blocks: format 0 (8 bytes,
// enciphered with TDES) and format 4 (16 bytes, enciphered with AES).
//
// A PAN is passed as its clear digit string (card.PAN.Digits): PIN blocks
// bind the PIN to the account number, and test PANs from the standards do
// not always pass Luhn, so only length and digits are checked here. Errors
// never carry PIN or PAN digits. All functions are safe for concurrent use;
// the io.Reader given for format 4 fill must be safe for the caller's use.
package pinblock

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

var (
	// ErrPIN is returned for a PIN that is not 4 to 12 decimal digits.
	ErrPIN = errors.New("pinblock: PIN must have 4 to 12 digits")
	// ErrPAN is returned for a PAN that is not decimal digits of an
	// acceptable length (13 to 19 for format 0, 12 to 19 for format 4).
	ErrPAN = errors.New("pinblock: PAN must be 12 to 19 digits")
	// ErrBlockLength is returned for a block of the wrong size.
	ErrBlockLength = errors.New("pinblock: wrong block length")
	// ErrFormat is returned when a block does not decode as the expected
	// format: wrong control field, PIN length, PIN digits or fill. The PAN
	// given for decoding being the wrong one usually shows up as this error.
	ErrFormat = errors.New("pinblock: block is not a valid PIN block of this format")
	// ErrKeyLength is returned for a key of a length the cipher does not
	// take (16 or 24 bytes for TDES; 16, 24 or 32 for AES).
	ErrKeyLength = errors.New("pinblock: wrong key length")
)

// Sizes of the two block formats, in bytes.
const (
	Format0Size = 8
	Format4Size = 16
)

// PIN is a cardholder PIN of 4 to 12 digits. The zero PIN is absent. It
// prints as "[redacted]" through fmt and slog; Digits returns the clear
// value. Safe for concurrent use.
type PIN struct {
	digits string
}

// ParsePIN checks that s is 4 to 12 decimal digits.
func ParsePIN(s string) (PIN, error) {
	if len(s) < 4 || len(s) > 12 || !isDigits(s) {
		return PIN{}, ErrPIN
	}
	return PIN{digits: s}, nil
}

// IsZero reports whether p is the zero (absent) PIN.
func (p PIN) IsZero() bool { return p.digits == "" }

// Digits returns the clear PIN. Call it only to build a block or to verify;
// never log or store the result.
func (p PIN) Digits() string { return p.digits }

// String returns "[redacted]".
func (p PIN) String() string { return "[redacted]" }

// GoString returns a redacted Go form, so %#v cannot leak the PIN.
func (p PIN) GoString() string { return "pinblock.PIN([redacted])" }

// Format prints "[redacted]" for every verb.
func (p PIN) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, p.GoString())
		return
	}
	io.WriteString(f, "[redacted]")
}

// LogValue returns "[redacted]".
func (p PIN) LogValue() slog.Value { return slog.StringValue("[redacted]") }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// nibble returns the value of the i-th 4-bit nibble of b, high first.
func nibble(b []byte, i int) byte {
	if i%2 == 0 {
		return b[i/2] >> 4
	}
	return b[i/2] & 0x0F
}

// setNibble sets the i-th nibble of b to v.
func setNibble(b []byte, i int, v byte) {
	if i%2 == 0 {
		b[i/2] = b[i/2]&0x0F | v<<4
	} else {
		b[i/2] = b[i/2]&0xF0 | v&0x0F
	}
}

// EncodeFormat0 returns the clear ISO 9564 format 0 block for pin and pan:
// the PIN field 0 N P..P F..F XOR the account field 0000 followed by the 12
// rightmost PAN digits excluding the check digit. pan must be 13 to 19
// digits.
func EncodeFormat0(pin PIN, pan string) ([Format0Size]byte, error) {
	var b [Format0Size]byte
	if pin.IsZero() {
		return b, ErrPIN
	}
	acct, err := format0Account(pan)
	if err != nil {
		return b, err
	}
	for i := range b {
		b[i] = 0xFF
	}
	setNibble(b[:], 0, 0)
	setNibble(b[:], 1, byte(len(pin.digits)))
	for i := 0; i < len(pin.digits); i++ {
		setNibble(b[:], 2+i, pin.digits[i]-'0')
	}
	for i := range b {
		b[i] ^= acct[i]
	}
	return b, nil
}

// format0Account returns the format 0 account field for pan.
func format0Account(pan string) ([8]byte, error) {
	var a [8]byte
	if len(pan) < 13 || len(pan) > 19 || !isDigits(pan) {
		return a, fmt.Errorf("format 0 account field from a %d-character PAN: %w", len(pan), ErrPAN)
	}
	d := pan[len(pan)-13 : len(pan)-1]
	for i := 0; i < 12; i++ {
		setNibble(a[:], 4+i, d[i]-'0')
	}
	return a, nil
}

// DecodeFormat0 returns the PIN in a clear format 0 block, given the PAN the
// block was built with. It returns ErrFormat when the control nibble is not
// 0, the length is outside 4 to 12, a PIN nibble is not a digit or a fill
// nibble is not F.
func DecodeFormat0(block []byte, pan string) (PIN, error) {
	if len(block) != Format0Size {
		return PIN{}, fmt.Errorf("format 0 block of %d bytes: %w", len(block), ErrBlockLength)
	}
	acct, err := format0Account(pan)
	if err != nil {
		return PIN{}, err
	}
	var f [8]byte
	for i := range f {
		f[i] = block[i] ^ acct[i]
	}
	if nibble(f[:], 0) != 0 {
		return PIN{}, fmt.Errorf("format 0 control field: %w", ErrFormat)
	}
	return pinFromField(f[:], 16, 0x0F)
}

// pinFromField reads N and the PIN digits from a PIN field of n nibbles
// whose fill nibbles after the PIN must all equal fill (only the first 16
// nibbles are checked for format 4: the rest is random).
func pinFromField(f []byte, n int, fill byte) (PIN, error) {
	l := int(nibble(f, 1))
	if l < 4 || l > 12 {
		return PIN{}, fmt.Errorf("PIN length nibble %d: %w", l, ErrFormat)
	}
	d := make([]byte, l)
	for i := range l {
		v := nibble(f, 2+i)
		if v > 9 {
			return PIN{}, fmt.Errorf("PIN digit nibble: %w", ErrFormat)
		}
		d[i] = '0' + v
	}
	for i := 2 + l; i < n; i++ {
		if nibble(f, i) != fill {
			return PIN{}, fmt.Errorf("PIN fill nibble %d: %w", i, ErrFormat)
		}
	}
	return PIN{digits: string(d)}, nil
}

// tdes returns a TDES cipher for a 16-byte (two-key) or 24-byte key.
func tdes(key []byte) (cipher.Block, error) {
	var k [24]byte
	switch len(key) {
	case 16:
		copy(k[:], key)
		copy(k[16:], key[:8])
	case 24:
		copy(k[:], key)
	default:
		return nil, fmt.Errorf("TDES key of %d bytes: %w", len(key), ErrKeyLength)
	}
	c, err := des.NewTripleDESCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("TDES key: %w", err)
	}
	return c, nil
}

// EncryptFormat0 builds the format 0 block for pin and pan and enciphers it
// with TDES-ECB under key (16 or 24 bytes).
func EncryptFormat0(key []byte, pin PIN, pan string) ([]byte, error) {
	c, err := tdes(key)
	if err != nil {
		return nil, fmt.Errorf("encrypt format 0 PIN block: %w", err)
	}
	b, err := EncodeFormat0(pin, pan)
	if err != nil {
		return nil, fmt.Errorf("encrypt format 0 PIN block: %w", err)
	}
	out := make([]byte, Format0Size)
	c.Encrypt(out, b[:])
	return out, nil
}

// DecryptFormat0 deciphers a format 0 block under key (16 or 24 bytes) and
// returns its PIN, given the PAN it was built with.
func DecryptFormat0(key, block []byte, pan string) (PIN, error) {
	if len(block) != Format0Size {
		return PIN{}, fmt.Errorf("decrypt format 0 block of %d bytes: %w", len(block), ErrBlockLength)
	}
	c, err := tdes(key)
	if err != nil {
		return PIN{}, fmt.Errorf("decrypt format 0 PIN block: %w", err)
	}
	var b [Format0Size]byte
	c.Decrypt(b[:], block)
	p, err := DecodeFormat0(b[:], pan)
	if err != nil {
		return PIN{}, fmt.Errorf("decrypt format 0 PIN block: %w", err)
	}
	return p, nil
}

// Format 4 control and fill nibbles.
const (
	format4Control = 0x4
	format4Fill    = 0xA
)

// PINField4 returns the format 4 plaintext PIN field: control nibble 4,
// length N, the PIN digits, fill nibbles A up to nibble 16, then 8 bytes read
// from fill (crypto/rand.Reader when fill is nil). It fails only for a zero
// PIN or a failing reader.
func PINField4(pin PIN, fill io.Reader) ([Format4Size]byte, error) {
	var f [Format4Size]byte
	if pin.IsZero() {
		return f, ErrPIN
	}
	if fill == nil {
		fill = rand.Reader
	}
	if _, err := io.ReadFull(fill, f[8:]); err != nil {
		return f, fmt.Errorf("format 4 random fill: %w", err)
	}
	for i := range 8 {
		f[i] = format4Fill<<4 | format4Fill
	}
	setNibble(f[:], 0, format4Control)
	setNibble(f[:], 1, byte(len(pin.digits)))
	for i := 0; i < len(pin.digits); i++ {
		setNibble(f[:], 2+i, pin.digits[i]-'0')
	}
	return f, nil
}

// ParsePINField4 returns the PIN and the 8 random fill bytes of a clear
// format 4 PIN field; PINField4 with that fill rebuilds the same field.
func ParsePINField4(f []byte) (PIN, [8]byte, error) {
	var r [8]byte
	if len(f) != Format4Size {
		return PIN{}, r, fmt.Errorf("format 4 PIN field of %d bytes: %w", len(f), ErrBlockLength)
	}
	if nibble(f, 0) != format4Control {
		return PIN{}, r, fmt.Errorf("format 4 control field: %w", ErrFormat)
	}
	p, err := pinFromField(f, 16, format4Fill)
	if err != nil {
		return PIN{}, r, err
	}
	copy(r[:], f[8:])
	return p, r, nil
}

// PANField4 returns the format 4 plaintext PAN field: nibble M (number of
// PAN digits minus 12), the PAN digits, zero nibbles to 32. pan must be 12
// to 19 digits (a PAN shorter than 12 digits is not supported).
func PANField4(pan string) ([Format4Size]byte, error) {
	var f [Format4Size]byte
	if len(pan) < 12 || len(pan) > 19 || !isDigits(pan) {
		return f, fmt.Errorf("format 4 PAN field from a %d-character PAN: %w", len(pan), ErrPAN)
	}
	setNibble(f[:], 0, byte(len(pan)-12))
	for i := 0; i < len(pan); i++ {
		setNibble(f[:], 1+i, pan[i]-'0')
	}
	return f, nil
}

// ParsePANField4 returns the PAN digits of a format 4 PAN field; PANField4
// of the result rebuilds the same field. It returns ErrFormat for a non-digit
// nibble or non-zero padding.
func ParsePANField4(f []byte) (string, error) {
	if len(f) != Format4Size {
		return "", fmt.Errorf("format 4 PAN field of %d bytes: %w", len(f), ErrBlockLength)
	}
	n := 12 + int(nibble(f, 0))
	if n > 19 {
		return "", fmt.Errorf("format 4 PAN length nibble: %w", ErrFormat)
	}
	d := make([]byte, n)
	for i := range n {
		v := nibble(f, 1+i)
		if v > 9 {
			return "", fmt.Errorf("format 4 PAN digit nibble: %w", ErrFormat)
		}
		d[i] = '0' + v
	}
	for i := 1 + n; i < 2*Format4Size; i++ {
		if nibble(f, i) != 0 {
			return "", fmt.Errorf("format 4 PAN padding: %w", ErrFormat)
		}
	}
	return string(d), nil
}

// EncipherFormat4 enciphers a format 4 PIN field under an AES key (16, 24 or
// 32 bytes) as ISO 9564-1:2017 specifies: encrypt the PIN field, XOR the PAN
// field, encrypt again.
func EncipherFormat4(key []byte, pinField, panField [Format4Size]byte) ([Format4Size]byte, error) {
	var b [Format4Size]byte
	c, err := aes.NewCipher(key)
	if err != nil {
		return b, fmt.Errorf("format 4 AES key of %d bytes: %w", len(key), ErrKeyLength)
	}
	c.Encrypt(b[:], pinField[:])
	for i := range b {
		b[i] ^= panField[i]
	}
	c.Encrypt(b[:], b[:])
	return b, nil
}

// DecipherFormat4 reverses EncipherFormat4 and returns the clear PIN field:
// decrypt, XOR the PAN field, decrypt again.
func DecipherFormat4(key, block []byte, panField [Format4Size]byte) ([Format4Size]byte, error) {
	var f [Format4Size]byte
	if len(block) != Format4Size {
		return f, fmt.Errorf("format 4 block of %d bytes: %w", len(block), ErrBlockLength)
	}
	c, err := aes.NewCipher(key)
	if err != nil {
		return f, fmt.Errorf("format 4 AES key of %d bytes: %w", len(key), ErrKeyLength)
	}
	c.Decrypt(f[:], block)
	for i := range f {
		f[i] ^= panField[i]
	}
	c.Decrypt(f[:], f[:])
	return f, nil
}

// EncryptFormat4 builds and enciphers a format 4 block for pin and pan under
// an AES key, reading the 8 fill bytes from fill (crypto/rand.Reader when
// nil).
func EncryptFormat4(key []byte, pin PIN, pan string, fill io.Reader) ([]byte, error) {
	pf, err := PINField4(pin, fill)
	if err != nil {
		return nil, fmt.Errorf("encrypt format 4 PIN block: %w", err)
	}
	af, err := PANField4(pan)
	if err != nil {
		return nil, fmt.Errorf("encrypt format 4 PIN block: %w", err)
	}
	b, err := EncipherFormat4(key, pf, af)
	if err != nil {
		return nil, fmt.Errorf("encrypt format 4 PIN block: %w", err)
	}
	return b[:], nil
}

// DecryptFormat4 deciphers a format 4 block under an AES key and returns its
// PIN, given the PAN it was built with. A wrong key or PAN gives ErrFormat
// (with overwhelming probability).
func DecryptFormat4(key, block []byte, pan string) (PIN, error) {
	af, err := PANField4(pan)
	if err != nil {
		return PIN{}, fmt.Errorf("decrypt format 4 PIN block: %w", err)
	}
	pf, err := DecipherFormat4(key, block, af)
	if err != nil {
		return PIN{}, fmt.Errorf("decrypt format 4 PIN block: %w", err)
	}
	p, _, err := ParsePINField4(pf[:])
	if err != nil {
		return PIN{}, fmt.Errorf("decrypt format 4 PIN block: %w", err)
	}
	return p, nil
}
