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

	"github.com/posgate/posgate/cloud/authz"
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
)

// sealAAD binds sealed PANs to their purpose and format version.
var sealAAD = []byte("posgate/tokenvault/pan/v1")

// Vault performs the center's card-data operations in a token. It
// implements issuing.Vault, authz.Fingerprinter and authz.CardDecrypter and
// is safe for concurrent use (the token pools its sessions).
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

// OpenCardBlock parses a DE 120 block, has the token derive the AES DUKPT
// data-encryption key (usage 3000, AES-128) of its KSN from the BDK and
// decrypt the ciphertext (CBC, zero IV), and parses the clear TLV. It
// returns the card data, the device id (the KSN's Initial Key ID in upper
// hex) and the transaction counter. A block that does not parse, a TDES
// block (not served by the center yet), a ciphertext the token rejects or a
// plaintext that is not card data wraps authz.ErrMalformedBlock; other
// errors (token unavailable, BDK missing) are faults.
func (v *Vault) OpenCardBlock(_ context.Context, block []byte) (cardblock.ClearData, string, uint64, error) {
	b, err := cardblock.Parse(block)
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", authz.ErrMalformedBlock, err)
	}
	if b.Algorithm != cardblock.AlgAES {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %s blocks are not served: %w", b.Algorithm, authz.ErrMalformedBlock)
	}
	ksn, err := b.AESKSN()
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", authz.ErrMalformedBlock, err)
	}
	pt, err := v.Token.DecryptDUKPT(or(v.BDKLabel, DefaultBDKLabel), ksn, dukpt.UsageDataEncrypt, dukpt.AlgAES128,
		make([]byte, 16), b.Ciphertext)
	if errors.Is(err, hsm.ErrDecrypt) || errors.Is(err, hsm.ErrInput) {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", authz.ErrMalformedBlock, err)
	}
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w", err)
	}
	defer clear(pt)
	cd, err := cardblock.ParsePlaintext(pt)
	if err != nil {
		return cardblock.ClearData{}, "", 0, fmt.Errorf("open card block: %w: %w", authz.ErrMalformedBlock, err)
	}
	ikid := ksn.InitialKeyID()
	return cd, fmt.Sprintf("%X", ikid[:]), uint64(ksn.Counter()), nil
}
