// Package keybundle is the key bundle the key-injection step hands to a
// terminal: the terminal id, the DUKPT initial key and its IKID, the PAN
// fingerprint key and, for the simulator's card bureau only, issuer test
// keys. `hsmctl inject` writes it (Save), the terminal firmware loads it
// (Load). It also reads the key components files a demo center's bootstrap
// writes (LoadIssuerKeyComponents). docs/keys.md describes both.
//
// The wire form is a JSON object, keys as hex:
//
//	{"terminal_id": "T0000001", "ikid": "<16 hex>", "initial_key": "<32 or 64 hex>",
//	 "fingerprint_key": "<64 hex>", "issuer_test_keys": {"imk_ac": "<32 hex>",
//	 "imk_smi": "<32 hex>", "imk_smc": "<32 hex>"}}
//
// issuer_test_keys and its imk_smi/imk_smc are omitted when absent. Marshal
// writes lower-case hex, indented by two spaces, with a final newline;
// Parse accepts either case. Errors never carry key bytes. The package's
// functions are safe for concurrent use.
package keybundle

import (
	"crypto/des"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Keys is what the key-injection step loads into a terminal's secure
// storage. It is written by `hsmctl inject` as a JSON bundle (mode 0600).
// Keys never prints its secrets.
type Keys struct {
	TerminalID     string
	IKID           [8]byte
	InitialKey     []byte // AES DUKPT initial key (16 or 32 bytes)
	FingerprintKey []byte // 32-byte PAN fingerprint key
	// Issuer holds optional issuer test keys, nil when none (see
	// IssuerTestKeys).
	Issuer *IssuerTestKeys
}

// IssuerTestKeys are the issuer keys the simulator needs to personalise
// its deck's chip cards: the work of the card bureau, which the simulator
// also plays. A real terminal never holds them, and nothing on the
// terminal's side of the simulation uses them beyond creating the
// simulated cards (emv/card) — the terminal kernel only sees what the
// card answers. `hsmctl inject --imk-components` (--smi-components,
// --smc-components) copies them into the bundle from the components files
// a demo or test center's bootstrap writes (cloud/center
// IMKComponentsPath, SMIComponentsPath, SMCComponentsPath); the token's
// IMKs themselves are non-extractable.
type IssuerTestKeys struct {
	// IMKAC is the issuer master key for application cryptograms
	// (double-length TDES, 16 bytes).
	IMKAC []byte
	// IMKSMI and IMKSMC are the issuer master keys for secure messaging
	// integrity and confidentiality (double-length TDES, 16 bytes each),
	// nil when the bundle has none: the simulated cards are then not
	// personalised for secure messaging and refuse every issuer script
	// command.
	IMKSMI, IMKSMC []byte
}

// keysFile is the JSON form of Keys.
type keysFile struct {
	TerminalID     string          `json:"terminal_id"`
	IKID           string          `json:"ikid"`
	InitialKey     string          `json:"initial_key"`
	FingerprintKey string          `json:"fingerprint_key"`
	Issuer         *issuerKeysFile `json:"issuer_test_keys,omitempty"`
}

type issuerKeysFile struct {
	IMKAC  string `json:"imk_ac"`
	IMKSMI string `json:"imk_smi,omitempty"`
	IMKSMC string `json:"imk_smc,omitempty"`
}

// ErrBadKeys is returned for a key bundle that cannot be used.
var ErrBadKeys = errors.New("keybundle: bad key bundle")

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
	if k.Issuer != nil {
		if len(k.Issuer.IMKAC) != 16 {
			return fmt.Errorf("issuer test IMK-AC of %d bytes, want 16: %w", len(k.Issuer.IMKAC), ErrBadKeys)
		}
		for _, sm := range []struct {
			what string
			key  []byte
		}{{"IMK-SMI", k.Issuer.IMKSMI}, {"IMK-SMC", k.Issuer.IMKSMC}} {
			if sm.key != nil && len(sm.key) != 16 {
				return fmt.Errorf("issuer test %s of %d bytes, want 16 or none: %w", sm.what, len(sm.key), ErrBadKeys)
			}
		}
	}
	return nil
}

// Marshal returns the wire form of k. It refuses, with ErrBadKeys, a
// bundle that is not valid.
func Marshal(k Keys) ([]byte, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	kf := keysFile{
		TerminalID:     k.TerminalID,
		IKID:           hex.EncodeToString(k.IKID[:]),
		InitialKey:     hex.EncodeToString(k.InitialKey),
		FingerprintKey: hex.EncodeToString(k.FingerprintKey),
	}
	if k.Issuer != nil {
		kf.Issuer = &issuerKeysFile{IMKAC: hex.EncodeToString(k.Issuer.IMKAC)}
		if k.Issuer.IMKSMI != nil {
			kf.Issuer.IMKSMI = hex.EncodeToString(k.Issuer.IMKSMI)
		}
		if k.Issuer.IMKSMC != nil {
			kf.Issuer.IMKSMC = hex.EncodeToString(k.Issuer.IMKSMC)
		}
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes a bundle and validates it: Parse(Marshal(k)) is k for
// every valid k. Errors wrap ErrBadKeys and never carry key bytes.
func Parse(raw []byte) (Keys, error) {
	var f keysFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return Keys{}, fmt.Errorf("not a JSON key bundle: %w", ErrBadKeys)
	}
	var k Keys
	k.TerminalID = f.TerminalID
	id, err := hex.DecodeString(f.IKID)
	if err != nil || len(id) != 8 {
		return Keys{}, fmt.Errorf("ikid must be 16 hex digits: %w", ErrBadKeys)
	}
	copy(k.IKID[:], id)
	if k.InitialKey, err = hex.DecodeString(f.InitialKey); err != nil {
		return Keys{}, fmt.Errorf("initial_key is not hex: %w", ErrBadKeys)
	}
	if k.FingerprintKey, err = hex.DecodeString(f.FingerprintKey); err != nil {
		return Keys{}, fmt.Errorf("fingerprint_key is not hex: %w", ErrBadKeys)
	}
	if f.Issuer != nil {
		imk, err := hex.DecodeString(f.Issuer.IMKAC)
		if err != nil {
			return Keys{}, fmt.Errorf("issuer_test_keys.imk_ac is not hex: %w", ErrBadKeys)
		}
		k.Issuer = &IssuerTestKeys{IMKAC: imk}
		for _, sm := range []struct {
			name, hex string
			key       *[]byte
		}{{"imk_smi", f.Issuer.IMKSMI, &k.Issuer.IMKSMI}, {"imk_smc", f.Issuer.IMKSMC, &k.Issuer.IMKSMC}} {
			if sm.hex == "" {
				continue
			}
			if *sm.key, err = hex.DecodeString(sm.hex); err != nil {
				return Keys{}, fmt.Errorf("issuer_test_keys.%s is not hex: %w", sm.name, ErrBadKeys)
			}
		}
	}
	if err := k.Validate(); err != nil {
		return Keys{}, err
	}
	return k, nil
}

// Save writes the bundle to path with mode 0600, creating its directory
// (mode 0700) when missing.
func Save(path string, k Keys) error {
	b, err := Marshal(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save key bundle: %w", err)
	}
	return os.WriteFile(path, b, 0o600)
}

// Load reads a bundle written by Save.
func Load(path string) (Keys, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Keys{}, fmt.Errorf("load key bundle: %w", err)
	}
	k, err := Parse(raw)
	if err != nil {
		return Keys{}, fmt.Errorf("key bundle %s: %w", path, err)
	}
	return k, nil
}

// LoadIMKComponents reads the IMK-AC components file a demo or test
// center's bootstrap writes (cloud/center IMKComponentsPath) and returns
// issuer test keys holding that IMK-AC (see LoadIssuerKeyComponents). It
// is for the card bureau's side of the simulator only.
func LoadIMKComponents(path string) (*IssuerTestKeys, error) {
	imk, err := LoadIssuerKeyComponents("IMK-AC", path)
	if err != nil {
		return nil, err
	}
	return &IssuerTestKeys{IMKAC: imk}, nil
}

// LoadIssuerKeyComponents reads the components file of one double-length
// TDES issuer master key (what names it in errors: "IMK-AC", "IMK-SMI",
// "IMK-SMC") that a demo or test center's bootstrap writes (cloud/center
// IMKComponentsPath, SMIComponentsPath, SMCComponentsPath), XORs the
// 16-byte components and, when the file names a KCV, checks the result
// against it (TDES-ECB of zeros, first three bytes). It is for the card
// bureau's side of the simulator only. Errors never carry key bytes.
func LoadIssuerKeyComponents(what, path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s components: %w", what, err)
	}
	f, err := ParseComponents(raw)
	if err != nil {
		return nil, fmt.Errorf("%s components %s: %w (%w)", what, path, err, ErrBadKeys)
	}
	if len(f.Components) < 2 {
		return nil, fmt.Errorf("%s components %s: %d components, want at least 2: %w", what, path, len(f.Components), ErrBadKeys)
	}
	imk := make([]byte, 16)
	for i, h := range f.Components {
		c, err := hex.DecodeString(h)
		if err != nil || len(c) != 16 {
			clear(imk)
			return nil, fmt.Errorf("%s components %s: component %d is not 16 bytes of hex: %w", what, path, i+1, ErrBadKeys)
		}
		for j := range imk {
			imk[j] ^= c[j]
		}
		clear(c)
	}
	if f.KCV != "" {
		kcv, err := tdesKCV(imk)
		if err != nil {
			clear(imk)
			return nil, fmt.Errorf("%s components %s: %w", what, path, err)
		}
		if !strings.EqualFold(f.KCV, kcv) && !strings.HasPrefix(strings.ToUpper(kcv), strings.ToUpper(f.KCV)) {
			clear(imk)
			return nil, fmt.Errorf("%s components %s assemble to KCV %s, the file says %s: %w", what, path, kcv, f.KCV, ErrBadKeys)
		}
	}
	return imk, nil
}

// tdesKCV returns the check value of a double-length TDES key: the first
// three bytes of TDES-ECB of a zero block, upper-case hex.
func tdesKCV(k []byte) (string, error) {
	b, err := des.NewTripleDESCipher(append(append([]byte(nil), k...), k[:8]...))
	if err != nil {
		return "", fmt.Errorf("key check value: %w", err)
	}
	var out [8]byte
	b.Encrypt(out[:], make([]byte, 8))
	return strings.ToUpper(hex.EncodeToString(out[:3])), nil
}
