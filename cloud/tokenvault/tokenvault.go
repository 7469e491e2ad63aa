// Package tokenvault is the center's card-data vault on the PKCS#11 token:
// it seals PANs (AES-GCM under the token-vault key), computes PAN
// fingerprints (HMAC-SHA256 under the fingerprint key, first 16 bytes, lower
// hex) and opens DE 120 card-data blocks (AES DUKPT, decrypted inside the
// token). Clear PANs exist only in this process's memory, never in the
// store, logs or errors.
package tokenvault

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/posgate/posgate/hsm"
	"github.com/posgate/posgate/p2pe/card"
	"github.com/posgate/posgate/p2pe/cardblock"
	"github.com/posgate/posgate/p2pe/dukpt"
)

// Default key labels, used when a Vault label field is empty.
const (
	DefaultVaultLabel       = "vault"
	DefaultFingerprintLabel = "fingerprint"
	DefaultBDKLabel         = "bdk"
	DefaultTDESBDKLabel     = "bdk-tdes"
)

// sealAAD binds sealed PANs to their purpose and format version.
var sealAAD = []byte("posgate/tokenvault/pan/v1")

// Vault performs the center's card-data operations in a token. It
// implements issuing.Vault and authz.Fingerprinter, and opens card-data
// blocks for authz.CardDecrypter (a block it cannot open wraps
// cardblock.ErrMalformed). It is safe for concurrent use (the token pools
// its sessions).
type Vault struct {
	Token *hsm.Token
	// VaultLabel names the AES key sealing PANs; "" means DefaultVaultLabel.
	VaultLabel string
	// FingerprintLabel names the HMAC key of fingerprints; "" means
	// DefaultFingerprintLabel.
	FingerprintLabel string
	// BDKLabel names the AES BDK of the terminals' DUKPT keys; "" means
	// DefaultBDKLabel.
	BDKLabel string
	// TDESBDKLabel names the legacy TDES BDK (imported with
	// hsm.ImportTDESBDK) of readers that still use TDES DUKPT; "" means
	// DefaultTDESBDKLabel. A center without that key answers TDES blocks as
	// malformed.
	TDESBDKLabel string
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Seal encrypts the PAN under the token-vault key. The result is
// nonce || ciphertext || tag.
func (v *Vault) Seal(pan card.PAN) ([]byte, error) {
	if pan.IsZero() {
		return nil, errors.New("seal PAN: empty PAN")
	}
	digits := []byte(pan.Digits())
	defer clear(digits)
	sealed, err := v.Token.SealGCM(or(v.VaultLabel, DefaultVaultLabel), digits, sealAAD)
	if err != nil {
		return nil, fmt.Errorf("seal PAN %s: %w", pan.Masked(), err)
	}
	return sealed, nil
}

// Open decrypts a PAN sealed by Seal.
func (v *Vault) Open(sealed []byte) (card.PAN, error) {
	pt, err := v.Token.OpenGCM(or(v.VaultLabel, DefaultVaultLabel), sealed, sealAAD)
	if err != nil {
		return card.PAN{}, fmt.Errorf("open sealed PAN: %w", err)
	}
	defer clear(pt)
	pan, err := card.ParsePAN(string(pt))
	if err != nil {
		return card.PAN{}, fmt.Errorf("open sealed PAN: %w", err)
	}
	return pan, nil
}

// Fingerprint returns the PAN's fingerprint: the first 16 bytes of
// HMAC-SHA256 over the ASCII digits under the fingerprint key, as 32
// lower-case hex digits (the same value p2pe/fingerprint computes in
// software from the same key).
func (v *Vault) Fingerprint(pan card.PAN) (string, error) {
	if pan.IsZero() {
		return "", errors.New("fingerprint PAN: empty PAN")
	}
	digits := []byte(pan.Digits())
	defer clear(digits)
	mac, err := v.Token.HMACSHA256(or(v.FingerprintLabel, DefaultFingerprintLabel), digits)
	if err != nil {
		return "", fmt.Errorf("fingerprint PAN %s: %w", pan.Masked(), err)
	}
	return hex.EncodeToString(mac[:16]), nil
}

// OpenCardBlock parses a DE 120 block, has the token decrypt it, and parses
// the clear TLV. AES blocks (the default): the token derives the AES DUKPT
// data-encryption key (usage 3000, AES-128) of the KSN from the BDK entirely
// with C_DeriveKey and decrypts (CBC, zero IV). TDES blocks (legacy readers):
// the token computes the reader's initial key from the TDES BDK and the
// data-request variant with the one-way step, as hsm.DecryptTDESDUKPT
// describes (per-device keys are in process memory for the call; see
// docs/keys.md). It returns the card data, the device id (the KSN's Initial
// Key ID in upper hex for AES; the KSN with its counter cleared for TDES) and
// the transaction counter. A block that does not parse, a ciphertext the
// token rejects, a TDES block when no TDES BDK exists, or a plaintext that is
// not card data wraps cardblock.ErrMalformed; other errors (token
// unavailable, AES BDK missing) are faults.
func (v *Vault) OpenCardBlock(_ context.Context, block []byte) (cardblock.ClearData, string, uint64, error) {
	b, err := cardblock.Parse(block)
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", cardblock.ErrMalformed, err)
	}
	if b.Algorithm == cardblock.AlgTDES {
		return v.openTDES(b)
	}
	ksn, err := b.AESKSN()
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", cardblock.ErrMalformed, err)
	}
	pt, err := v.Token.DecryptDUKPT(or(v.BDKLabel, DefaultBDKLabel), ksn, dukpt.UsageDataEncrypt, dukpt.AlgAES128,
		make([]byte, 16), b.Ciphertext)
	if errors.Is(err, hsm.ErrDecrypt) || errors.Is(err, hsm.ErrInput) {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", cardblock.ErrMalformed, err)
	}
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w", err)
	}
	defer clear(pt)
	cd, err := cardblock.ParsePlaintext(pt)
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", cardblock.ErrMalformed, err)
	}
	ikid := ksn.InitialKeyID()
	return cd, fmt.Sprintf("%X", ikid[:]), uint64(ksn.Counter()), nil
}

// openTDES decrypts a legacy TDES DUKPT block.
func (v *Vault) openTDES(b cardblock.Block) (cardblock.ClearData, string, uint64, error) {
	ksn, err := b.TDESKSN()
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open TDES card block: %w: %w", cardblock.ErrMalformed, err)
	}
	pt, err := v.Token.DecryptTDESDUKPT(or(v.TDESBDKLabel, DefaultTDESBDKLabel), ksn, dukpt.UsageDataEncrypt, make([]byte, 8), b.Ciphertext)
	switch {
	case errors.Is(err, hsm.ErrKeyNotFound):
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open TDES card block: no TDES BDK in the token: %w", cardblock.ErrMalformed)
	case errors.Is(err, hsm.ErrDecrypt) || errors.Is(err, hsm.ErrInput):
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open TDES card block: %w: %w", cardblock.ErrMalformed, err)
	case err != nil:
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open TDES card block: %w", err)
	}
	defer clear(pt)
	cd, err := cardblock.ParsePlaintext(pt)
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open TDES card block: %w: %w", cardblock.ErrMalformed, err)
	}
	return cd, ksn.Initial().String(), uint64(ksn.Counter()), nil
}
