package jets

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/posgate/posgate/emv/oda"
)

// ReplaceCAKeys gives every CA of b a new key under the same RID and
// index, so that the terminal's CA public keys no longer recover the
// issuer certificates already made: offline data authentication fails
// for every card b personalised or will personalise with its issuers.
func (b *Bureau) ReplaceCAKeys() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for rid := range b.cas {
		key, err := rsa.GenerateKey(rand.Reader, bureauCABits)
		if err != nil {
			return err
		}
		ca, err := oda.NewCA(rid, bureauCAIndex, key)
		if err != nil {
			return fmt.Errorf("replace CA: %w", err)
		}
		b.cas[rid] = ca
	}
	return nil
}
