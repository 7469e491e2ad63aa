// Package hsmseal adapts the gateway's PKCS#11 token to offline.Sealer:
// records at rest are sealed with AES-GCM inside the token under a
// non-extractable key, so the bbolt file is useless without the token.
package hsmseal

import (
	"fmt"

	"github.com/posgate/posgate/hsm"
)

// DefaultLabel is the conventional label of the gateway's at-rest key.
const DefaultLabel = "at-rest"

// Sealer seals with the token's AES key Label (CKM_AES_GCM, random nonce
// from the token, 16-byte tag). It is safe for concurrent use as far as
// the token is (hsm.Token pools its sessions).
type Sealer struct {
	Token *hsm.Token
	Label string
}

// New returns a Sealer on tok with the key labelled label.
func New(tok *hsm.Token, label string) *Sealer { return &Sealer{Token: tok, Label: label} }

// Seal seals plaintext bound to aad.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	out, err := s.Token.SealGCM(s.Label, plaintext, aad)
	if err != nil {
		return nil, fmt.Errorf("seal with token key %q: %w", s.Label, err)
	}
	return out, nil
}

// Open opens a value sealed by Seal with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	out, err := s.Token.OpenGCM(s.Label, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("open with token key %q: %w", s.Label, err)
	}
	return out, nil
}
