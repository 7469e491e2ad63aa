package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

var (
	// ErrTokenNotFound is returned by Open when no slot holds a token with
	// the configured label.
	ErrTokenNotFound = errors.New("hsm: token not found")
	// ErrKeyNotFound is returned when no key object has the given label.
	ErrKeyNotFound = errors.New("hsm: key not found")
	// ErrKeyExists is returned when creating a key under a label that an
	// object already has.
	ErrKeyExists = errors.New("hsm: key label already exists")
	// ErrDuplicateLabel is returned when more than one object of a class
	// carries the label asked for, so the key is ambiguous.
	ErrDuplicateLabel = errors.New("hsm: label names more than one object")
	// ErrKeyType is returned when a key exists but is of the wrong type or
	// length for the operation.
	ErrKeyType = errors.New("hsm: wrong key type for operation")
	// ErrKeyLength is returned for a key value or requested size the key
	// type does not take.
	ErrKeyLength = errors.New("hsm: wrong key length")
	// ErrKCVMismatch is returned when a key component or an assembled key
	// does not match its expected key check value. Nothing is created.
	ErrKCVMismatch = errors.New("hsm: key check value mismatch")
	// ErrDecrypt is returned when the token cannot decrypt: bad length,
	// bad padding or a failed authentication tag.
	ErrDecrypt = errors.New("hsm: decryption failed")
	// ErrInput is returned for malformed arguments (IV length, data not a
	// whole number of blocks, bad label).
	ErrInput = errors.New("hsm: invalid input")
	// ErrClosed is returned by every method of a closed Token.
	ErrClosed = errors.New("hsm: token closed")
	// ErrConfInUse is returned by UseSoftHSMConf when the process has
	// already initialised SoftHSM with a different configuration.
	ErrConfInUse = errors.New("hsm: another SoftHSM configuration is in use by this process")
	// ErrNotInstalled is returned when the PKCS#11 module or softhsm2-util
	// is missing.
	ErrNotInstalled = errors.New("hsm: PKCS#11 module not installed")
)

// ConfigError reports every invalid field of a Config.
type ConfigError struct {
	Problems []string // one "field: value: rule" line per problem
}

// Error lists the problems.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("hsm config: %v", e.Problems)
}

// rvIs reports whether err is the PKCS#11 return value rv.
func rvIs(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}
