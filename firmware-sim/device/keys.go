// Package device simulates a JET-S-class payment terminal's firmware: its
// secure side holds the injected DUKPT initial key and the PAN fingerprint
// key, reads cards from the test deck, encrypts them at the "read head" into
// the card-data block and sends ISO 8583:1993 requests to the gateway.
package device

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Keys is what the key-injection step loads into a terminal's secure
// storage. It is written by `hsmctl inject` as a JSON bundle (mode 0600).
// Keys never prints its secrets.
type Keys struct {
	TerminalID     string
	IKID           [8]byte
	InitialKey     []byte // AES DUKPT initial key (16 or 32 bytes)
	FingerprintKey []byte // 32-byte PAN fingerprint key
}

// keysFile is the JSON form of Keys.
type keysFile struct {
	TerminalID     string `json:"terminal_id"`
	IKID           string `json:"ikid"`
	InitialKey     string `json:"initial_key"`
	FingerprintKey string `json:"fingerprint_key"`
}

// ErrBadKeys is returned for a key bundle that cannot be used.
var ErrBadKeys = errors.New("device: bad key bundle")

// String shows only non-secret parts.
func (k Keys) String() string { return fmt.Sprintf("keys{terminal %s, IKID %X}", k.TerminalID, k.IKID) }

// Validate checks lengths.
func (k Keys) Validate() error {
	if len(k.TerminalID) != 8 {
		return fmt.Errorf("terminal id must be 8 characters: %w", ErrBadKeys)
	}
	if n := len(k.InitialKey); n != 16 && n != 32 {
		return fmt.Errorf("initial key of %d bytes, want 16 or 32: %w", n, ErrBadKeys)
	}
	if len(k.FingerprintKey) != 32 {
		return fmt.Errorf("fingerprint key of %d bytes, want 32: %w", len(k.FingerprintKey), ErrBadKeys)
	}
	return nil
}

// SaveKeys writes the bundle to path with mode 0600.
func SaveKeys(path string, k Keys) error {
	if err := k.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(keysFile{
		TerminalID:     k.TerminalID,
		IKID:           hex.EncodeToString(k.IKID[:]),
		InitialKey:     hex.EncodeToString(k.InitialKey),
		FingerprintKey: hex.EncodeToString(k.FingerprintKey),
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save key bundle: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// LoadKeys reads a bundle written by SaveKeys.
func LoadKeys(path string) (Keys, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Keys{}, fmt.Errorf("load key bundle: %w", err)
	}
	var f keysFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return Keys{}, fmt.Errorf("key bundle %s: %w", path, ErrBadKeys)
	}
	var k Keys
	k.TerminalID = f.TerminalID
	id, err := hex.DecodeString(f.IKID)
	if err != nil || len(id) != 8 {
		return Keys{}, fmt.Errorf("key bundle %s: ikid must be 16 hex digits: %w", path, ErrBadKeys)
	}
	copy(k.IKID[:], id)
	if k.InitialKey, err = hex.DecodeString(f.InitialKey); err != nil {
		return Keys{}, fmt.Errorf("key bundle %s: initial_key is not hex: %w", path, ErrBadKeys)
	}
	if k.FingerprintKey, err = hex.DecodeString(f.FingerprintKey); err != nil {
		return Keys{}, fmt.Errorf("key bundle %s: fingerprint_key is not hex: %w", path, ErrBadKeys)
	}
	if err := k.Validate(); err != nil {
		return Keys{}, fmt.Errorf("key bundle %s: %w", path, err)
	}
	return k, nil
}
