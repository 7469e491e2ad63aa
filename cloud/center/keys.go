package center

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/posgate/posgate/emv/cryptogram"
	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/keybundle"
)

// Tokener is the part of the token the key bootstrap needs.
type keyToken interface {
	HasKey(label string) (bool, error)
	GenerateAES(label string, bits int, usages ...hsm.Usage) error
	ImportKeyFromComponents(label string, kind hsm.KeyKind, components [][]byte, kcvs [][]byte, usages ...hsm.Usage) error
	KCV(label string) (string, error)
	ImportCVK(label string, value []byte) error
}

// ErrKeyMissing is returned at start when a required key is not in the token
// and bootstrapping is off.
var ErrKeyMissing = errors.New("center: key missing from the token")

// FingerprintComponents is the file the bootstrap writes the PAN fingerprint
// key's components to, for the key-injection step to load into terminals and
// gateways: a keybundle.Components. It exists only on a demo or first-run
// center; custodians should take the components into their own custody and
// delete the file.
type FingerprintComponents = keybundle.Components

// ComponentsPath is where the bootstrap writes the fingerprint components.
func ComponentsPath(dataDir string) string {
	return filepath.Join(dataDir, "ceremony", "fingerprint-components.json")
}

// EnsureKeys checks that the BDK, the vault key, the IMK-AC, IMK-SMI,
// IMK-SMC, the CVK and the fingerprint key are in the token and, when
// bootstrap is true, creates the missing ones (the issuer master keys and
// the CVK from random values assembled in the
// process and imported, since SoftHSM cannot generate a DES2 derive key
// with its CVK-A||CVK-A companion; see ensureIssuerKeys): the BDK
// (AES-128) and the vault key (AES-256) are generated inside the token; the
// fingerprint key, which terminals must also hold, is assembled in the token
// from two random components that are written to ComponentsPath (mode 0600)
// for the key-injection step.
func EnsureKeys(tok keyToken, keys KeysConfig, dataDir string, log *slog.Logger) error {
	for _, k := range []struct {
		label string
		bits  int
		usage hsm.Usage
		what  string
	}{{keys.BDK, 128, hsm.UsageBDK, "AES-128 BDK"}, {keys.Vault, 256, hsm.UseEncrypt | hsm.UseDecrypt, "AES-256 token-vault key"}} {
		ok, err := tok.HasKey(k.label)
		if err != nil {
			return fmt.Errorf("look up %s %q: %w", k.what, k.label, err)
		}
		if ok {
			continue
		}
		if !*keys.Bootstrap {
			return fmt.Errorf("%s %q: %w", k.what, k.label, ErrKeyMissing)
		}
		if err := tok.GenerateAES(k.label, k.bits, k.usage); err != nil {
			return fmt.Errorf("generate %s %q: %w", k.what, k.label, err)
		}
		kcv, _ := tok.KCV(k.label)
		log.Warn("bootstrap: generated key in the token", "label", k.label, "kind", k.what, "kcv", kcv)
	}
	if err := ensureIssuerKeys(tok, keys, dataDir, log); err != nil {
		return err
	}
	ok, err := tok.HasKey(keys.Fingerprint)
	if err != nil {
		return fmt.Errorf("look up fingerprint key %q: %w", keys.Fingerprint, err)
	}
	if ok {
		return nil
	}
	if !*keys.Bootstrap {
		return fmt.Errorf("fingerprint key %q: %w", keys.Fingerprint, ErrKeyMissing)
	}
	comps := make([][]byte, 2)
	for i := range comps {
		comps[i] = make([]byte, 32)
		if _, err := rand.Read(comps[i]); err != nil {
			return fmt.Errorf("fingerprint key component: %w", err)
		}
	}
	if err := tok.ImportKeyFromComponents(keys.Fingerprint, hsm.KindHMAC, comps, nil); err != nil {
		return fmt.Errorf("import fingerprint key %q: %w", keys.Fingerprint, err)
	}
	kcv, err := tok.KCV(keys.Fingerprint)
	if err != nil {
		return fmt.Errorf("fingerprint key KCV: %w", err)
	}
	out := FingerprintComponents{Label: keys.Fingerprint, KCV: kcv}
	for _, c := range comps {
		out.Components = append(out.Components, hex.EncodeToString(c))
	}
	path := ComponentsPath(dataDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write fingerprint components: %w", err)
	}
	b, err := keybundle.MarshalComponents(out)
	if err != nil {
		return fmt.Errorf("write fingerprint components: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write fingerprint components: %w", err)
	}
	log.Warn("bootstrap: fingerprint key assembled in the token; its components were written for key injection — take them into custody and delete the file",
		"label", keys.Fingerprint, "kcv", kcv, "file", path)
	return nil
}

// IMKComponentsPath is where the bootstrap writes the components of the
// IMK-AC it creates, for the simulator playing the card bureau (see
// ensureIssuerKeys). The file has the FingerprintComponents layout with
// 16-byte components.
func IMKComponentsPath(dataDir string) string {
	return filepath.Join(dataDir, "ceremony", "imk-components.json")
}

// SMIComponentsPath and SMCComponentsPath are where the bootstrap writes
// the components of the IMK-SMI and IMK-SMC it creates, for the simulator
// playing the card bureau, in IMKComponentsPath's layout.
func SMIComponentsPath(dataDir string) string {
	return filepath.Join(dataDir, "ceremony", "imk-smi-components.json")
}

// SMCComponentsPath: see SMIComponentsPath.
func SMCComponentsPath(dataDir string) string {
	return filepath.Join(dataDir, "ceremony", "imk-smc-components.json")
}

// LoadFingerprintKey reads the components file written by EnsureKeys and
// returns the assembled key, for the key-injection step only.
func LoadFingerprintKey(dataDir string) ([]byte, error) {
	raw, err := os.ReadFile(ComponentsPath(dataDir))
	if err != nil {
		return nil, fmt.Errorf("read fingerprint components: %w", err)
	}
	f, err := keybundle.ParseComponents(raw)
	if err != nil {
		return nil, fmt.Errorf("fingerprint components file: %w", err)
	}
	var key []byte
	for i, h := range f.Components {
		c, err := hex.DecodeString(h)
		if err != nil || len(c) != 32 {
			return nil, fmt.Errorf("fingerprint component %d is not 32 bytes of hex", i+1)
		}
		if key == nil {
			key = make([]byte, 32)
		}
		for j := range key {
			key[j] ^= c[j]
		}
	}
	if key == nil {
		return nil, errors.New("fingerprint components file holds no component")
	}
	return key, nil
}

// ensureIssuerKeys checks the default IMK-AC, IMK-SMI, IMK-SMC and CVK
// and, with bootstrap, makes the missing ones: each issuer master key from
// two random components XORed and imported as a sensitive,
// non-extractable, derive-only DES2 key (as `hsmctl gen-bdk --alg tdes`
// does), the CVK from a random 16-byte value imported with its
// CVK-A||CVK-A object. The CVK value is wiped. An issuer master key's
// components are written to IMKComponentsPath (SMIComponentsPath,
// SMCComponentsPath; mode 0600), like the fingerprint key's: a demo or
// test center's deck cards are personalised under those IMKs by the card
// bureau, which the terminal simulator plays (firmware-sim/device
// IssuerTestKeys); terminals never hold issuer keys. Production imports
// the issuer's keys from custodians' components instead and has no such
// file.
func ensureIssuerKeys(tok keyToken, keys KeysConfig, dataDir string, log *slog.Logger) error {
	for _, k := range []struct{ label, what, components string }{
		{keys.IMKAC, "IMK-AC", IMKComponentsPath(dataDir)},
		{keys.IMKSMI, "IMK-SMI", SMIComponentsPath(dataDir)},
		{keys.IMKSMC, "IMK-SMC", SMCComponentsPath(dataDir)},
		{keys.CVK, "CVK", ""},
	} {
		ok, err := tok.HasKey(k.label)
		if err != nil {
			return fmt.Errorf("look up %s %q: %w", k.what, k.label, err)
		}
		if ok {
			continue
		}
		if !*keys.Bootstrap {
			return fmt.Errorf("%s %q: %w", k.what, k.label, ErrKeyMissing)
		}
		comps := [][]byte{make([]byte, 16), make([]byte, 16)}
		for _, c := range comps {
			if _, err := rand.Read(c); err != nil {
				return fmt.Errorf("%s component: %w", k.what, err)
			}
			cryptogram.SetParity(c)
		}
		var imkOut *FingerprintComponents
		if k.components != "" {
			err = tok.ImportKeyFromComponents(k.label, hsm.KindTDES, comps, nil, hsm.UseDerive)
			imkOut = &FingerprintComponents{Label: k.label, Components: []string{hex.EncodeToString(comps[0]), hex.EncodeToString(comps[1])}}
		} else {
			for i := range comps[0] {
				comps[0][i] ^= comps[1][i]
			}
			cryptogram.SetParity(comps[0])
			err = tok.ImportCVK(k.label, comps[0])
		}
		clear(comps[0])
		clear(comps[1])
		if err != nil {
			return fmt.Errorf("bootstrap %s %q: %w", k.what, k.label, err)
		}
		kcv, _ := tok.KCV(k.label)
		log.Warn("bootstrap: generated key in the token", "label", k.label, "kind", k.what, "kcv", kcv)
		if imkOut != nil {
			imkOut.KCV = kcv
			if err := writeComponents(k.components, imkOut); err != nil {
				return fmt.Errorf("write %s components: %w", k.what, err)
			}
			log.Warn("bootstrap: "+k.what+" components written for the simulator's card personalisation — a demo/test center only; delete the file in production",
				"label", k.label, "kcv", kcv, "file", k.components)
		}
	}
	return nil
}

// writeComponents writes c as JSON to path with mode 0600.
func writeComponents(path string, c *FingerprintComponents) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := keybundle.MarshalComponents(*c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
