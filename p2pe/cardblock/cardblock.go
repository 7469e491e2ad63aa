// Package cardblock encodes the encrypted card-data block a terminal puts in
// ISO 8583 DE 120, and the clear TLV inside it.
//
// The layout is documented in docs/card-data-block.md. In short:
//
//	version(1)=01 | algorithm(1) | usage(2) | KSN length(1) | KSN | ciphertext length(2) | ciphertext
//
// The ciphertext is the TLV of the clear fields (see ClearData), padded with
// ISO 9797-1 method 2 and encrypted in CBC mode with a zero IV under the
// DUKPT data-encryption key of the KSN: AES DUKPT usage 3000 (an AES-128
// working key, whatever the length of the BDK), or the TDES DUKPT
// data-request variant after the one-way step.
//
// Terminals (and the firmware simulator) call SealAES or SealTDES. The
// center calls Parse, has its token derive the key and decrypt, and then
// calls ParsePlaintext; it never decrypts with this package. OpenAES and
// OpenTDES are for tests and the key-injection tool.
//
// Block and ClearData are plain values; the functions keep no state and are
// safe for concurrent use. Errors never carry card data or key bytes.
package cardblock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/posgate/posgate/p2pe/dukpt"
)

// Version is the only block format version this package reads and writes.
const Version = 0x01

// Algorithm names the DUKPT scheme a block was encrypted under.
type Algorithm byte

// Algorithms of the block header.
const (
	// AlgAES is AES DUKPT (ANSI X9.24-3-2017), 12-byte KSN, AES-CBC.
	AlgAES Algorithm = 0x01
	// AlgTDES is TDES DUKPT (ANSI X9.24-1:2009), 10-byte KSN, TDES-CBC.
	AlgTDES Algorithm = 0x02
)

// String returns "AES-DUKPT", "TDES-DUKPT" or the hex value of an unknown
// algorithm.
func (a Algorithm) String() string {
	switch a {
	case AlgAES:
		return "AES-DUKPT"
	case AlgTDES:
		return "TDES-DUKPT"
	}
	return fmt.Sprintf("Algorithm(%#02x)", byte(a))
}

// ksnLen returns the KSN length of the algorithm, or 0 if it is unknown.
func (a Algorithm) ksnLen() int {
	switch a {
	case AlgAES:
		return dukpt.AESKSNLen
	case AlgTDES:
		return dukpt.TDESKSNLen
	}
	return 0
}

// blockSize returns the cipher block size of the algorithm.
func (a Algorithm) blockSize() int {
	if a == AlgTDES {
		return 8
	}
	return 16
}

// UsageDataEncrypt is the only key usage a block carries: X9.24-3 usage 3000
// (data encryption, request direction). For TDES it names the data-request
// variant followed by the one-way step.
const UsageDataEncrypt = uint16(dukpt.UsageDataEncrypt)

// Limits of the format.
const (
	// HeaderLen is the length of the fixed part before the KSN.
	HeaderLen = 5
	// MaxCiphertextLen is the longest ciphertext accepted: the largest
	// possible plaintext (all five fields at their maximum length, 77 bytes
	// of TLV) padded to 16 bytes.
	MaxCiphertextLen = 80
	// MaxLen is the longest marshalled block.
	MaxLen = HeaderLen + dukpt.AESKSNLen + 2 + MaxCiphertextLen
)

var (
	// ErrTruncated is returned when the input ends before a field the
	// header says is there.
	ErrTruncated = errors.New("cardblock: block truncated")
	// ErrTrailing is returned when bytes follow the ciphertext.
	ErrTrailing = errors.New("cardblock: trailing bytes after the ciphertext")
	// ErrVersion is returned for a version other than 0x01.
	ErrVersion = errors.New("cardblock: unknown block version")
	// ErrAlgorithm is returned for an algorithm byte other than AlgAES or
	// AlgTDES.
	ErrAlgorithm = errors.New("cardblock: unknown algorithm")
	// ErrUsage is returned for a key usage other than UsageDataEncrypt.
	ErrUsage = errors.New("cardblock: unsupported key usage")
	// ErrKSN is returned for a KSN of the wrong length for the algorithm,
	// or whose counter names no transaction key.
	ErrKSN = errors.New("cardblock: bad KSN")
	// ErrCiphertextLength is returned for a ciphertext that is empty,
	// longer than MaxCiphertextLen, or not a multiple of the cipher block.
	ErrCiphertextLength = errors.New("cardblock: bad ciphertext length")
	// ErrMalformed is what a decrypter of blocks (the center's token vault)
	// wraps when a block does not open into card data: it does not parse,
	// its ciphertext is rejected, the key it names is not held, or its
	// plaintext is not card data. Other decrypter errors are faults.
	ErrMalformed = errors.New("cardblock: malformed card-data block")
)

// Block is a parsed encrypted card-data block. Parse returns a Block whose
// slices do not alias its input.
type Block struct {
	// Algorithm is the DUKPT scheme.
	Algorithm Algorithm
	// Usage is the key usage of the data key, always UsageDataEncrypt in
	// version 1.
	Usage uint16
	// KSN is the key serial number: 12 bytes for AES, 10 for TDES.
	KSN []byte
	// Ciphertext is the encrypted, padded TLV.
	Ciphertext []byte
}

// check validates every header rule of Block; Parse and MarshalBinary apply
// it alike.
func (b Block) check() error {
	n := b.Algorithm.ksnLen()
	if n == 0 {
		return fmt.Errorf("algorithm %#02x: %w", byte(b.Algorithm), ErrAlgorithm)
	}
	if b.Usage != UsageDataEncrypt {
		return fmt.Errorf("usage %04X: %w", b.Usage, ErrUsage)
	}
	if len(b.KSN) != n {
		return fmt.Errorf("%s KSN of %d bytes, want %d: %w", b.Algorithm, len(b.KSN), n, ErrKSN)
	}
	var err error
	if b.Algorithm == AlgAES {
		err = dukpt.AESKSN(b.KSN).Validate()
	} else {
		err = dukpt.TDESKSN(b.KSN).Validate()
	}
	if err != nil {
		return fmt.Errorf("%s KSN %X: %w: %w", b.Algorithm, b.KSN, ErrKSN, err)
	}
	if l := len(b.Ciphertext); l == 0 || l > MaxCiphertextLen || l%b.Algorithm.blockSize() != 0 {
		return fmt.Errorf("%s ciphertext of %d bytes (non-zero multiple of %d, at most %d): %w",
			b.Algorithm, l, b.Algorithm.blockSize(), MaxCiphertextLen, ErrCiphertextLength)
	}
	return nil
}

// AESKSN returns the KSN as an AES KSN, or ErrKSN if the block is not an
// AES block.
func (b Block) AESKSN() (dukpt.AESKSN, error) {
	if b.Algorithm != AlgAES || len(b.KSN) != dukpt.AESKSNLen {
		return dukpt.AESKSN{}, fmt.Errorf("%s block has no AES KSN: %w", b.Algorithm, ErrKSN)
	}
	return dukpt.AESKSN(b.KSN), nil
}

// TDESKSN returns the KSN as a TDES KSN, or ErrKSN if the block is not a
// TDES block.
func (b Block) TDESKSN() (dukpt.TDESKSN, error) {
	if b.Algorithm != AlgTDES || len(b.KSN) != dukpt.TDESKSNLen {
		return dukpt.TDESKSN{}, fmt.Errorf("%s block has no TDES KSN: %w", b.Algorithm, ErrKSN)
	}
	return dukpt.TDESKSN(b.KSN), nil
}

// LogValue shows the algorithm, KSN and ciphertext length; none of them is
// secret, and the ciphertext itself is left out.
func (b Block) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("alg", b.Algorithm.String()),
		slog.String("ksn", fmt.Sprintf("%X", b.KSN)),
		slog.Int("ciphertext_len", len(b.Ciphertext)),
	)
}

// MarshalBinary encodes the block. It refuses, with the same errors as
// Parse, a block that Parse would not accept.
func (b Block) MarshalBinary() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("marshal card-data block: %w", err)
	}
	out := make([]byte, 0, HeaderLen+len(b.KSN)+2+len(b.Ciphertext))
	out = append(out, Version, byte(b.Algorithm))
	out = binary.BigEndian.AppendUint16(out, b.Usage)
	out = append(out, byte(len(b.KSN)))
	out = append(out, b.KSN...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.Ciphertext)))
	return append(out, b.Ciphertext...), nil
}

// UnmarshalBinary sets b to the parsed p; see Parse.
func (b *Block) UnmarshalBinary(p []byte) error {
	v, err := Parse(p)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Parse decodes a card-data block strictly: the input must be exactly one
// block of version 1 with a known algorithm, usage 3000, a KSN of the
// algorithm's length whose counter is valid, and a ciphertext that is a
// non-zero multiple of the cipher block of at most MaxCiphertextLen bytes.
// Anything else returns an error matching ErrTruncated, ErrTrailing,
// ErrVersion, ErrAlgorithm, ErrUsage, ErrKSN or ErrCiphertextLength.
func Parse(p []byte) (Block, error) {
	if len(p) < HeaderLen {
		return Block{}, fmt.Errorf("parse card-data block header of %d bytes: %w", len(p), ErrTruncated)
	}
	if p[0] != Version {
		return Block{}, fmt.Errorf("parse card-data block version %#02x: %w", p[0], ErrVersion)
	}
	b := Block{Algorithm: Algorithm(p[1]), Usage: binary.BigEndian.Uint16(p[2:4])}
	n := b.Algorithm.ksnLen()
	if n == 0 {
		return Block{}, fmt.Errorf("parse card-data block algorithm %#02x: %w", p[1], ErrAlgorithm)
	}
	if b.Usage != UsageDataEncrypt {
		return Block{}, fmt.Errorf("parse card-data block usage %04X: %w", b.Usage, ErrUsage)
	}
	if int(p[4]) != n {
		return Block{}, fmt.Errorf("parse card-data block: %s KSN length %d, want %d: %w", b.Algorithm, p[4], n, ErrKSN)
	}
	rest := p[HeaderLen:]
	if len(rest) < n+2 {
		return Block{}, fmt.Errorf("parse card-data block KSN and ciphertext length: %w", ErrTruncated)
	}
	b.KSN = append([]byte(nil), rest[:n]...)
	l := int(binary.BigEndian.Uint16(rest[n:]))
	rest = rest[n+2:]
	if l == 0 || l > MaxCiphertextLen || l%b.Algorithm.blockSize() != 0 {
		return Block{}, fmt.Errorf("parse card-data block: %s ciphertext length %d: %w", b.Algorithm, l, ErrCiphertextLength)
	}
	if len(rest) < l {
		return Block{}, fmt.Errorf("parse card-data block: ciphertext of %d bytes, header says %d: %w", len(rest), l, ErrTruncated)
	}
	if len(rest) > l {
		return Block{}, fmt.Errorf("parse card-data block: %d bytes after the ciphertext: %w", len(rest)-l, ErrTrailing)
	}
	b.Ciphertext = append([]byte(nil), rest...)
	if err := b.check(); err != nil {
		return Block{}, fmt.Errorf("parse card-data block: %w", err)
	}
	return b, nil
}
