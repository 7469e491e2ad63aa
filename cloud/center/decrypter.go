package center

import (
	"context"
	"errors"
	"fmt"

	"github.com/posgate/posgate/cloud/authz"
	"github.com/posgate/posgate/p2pe/cardblock"
)

// cardOpener is what the switch's decrypter needs of the token vault
// (*tokenvault.Vault).
type cardOpener interface {
	OpenCardBlock(ctx context.Context, block []byte) (cardblock.ClearData, string, uint64, error)
}

// switchDecrypter is the vault as the switch's authz.CardDecrypter: a block
// the vault cannot open into card data (cardblock.ErrMalformed) also wraps
// authz.ErrMalformedBlock, which the switch answers 904. The vault does not
// import authz (it sits below it); once authz.ErrMalformedBlock is
// cardblock.ErrMalformed itself this adapter has nothing left to do.
type switchDecrypter struct{ vault cardOpener }

var _ authz.CardDecrypter = switchDecrypter{}

// OpenCardBlock implements authz.CardDecrypter.
func (d switchDecrypter) OpenCardBlock(ctx context.Context, block []byte) (cardblock.ClearData, string, uint64, error) {
	c, device, counter, err := d.vault.OpenCardBlock(ctx, block)
	if errors.Is(err, cardblock.ErrMalformed) && !errors.Is(err, authz.ErrMalformedBlock) {
		err = fmt.Errorf("%w: %w", authz.ErrMalformedBlock, err)
	}
	return c, device, counter, err
}
