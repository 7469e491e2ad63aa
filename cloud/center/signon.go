package center

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/link"
)

// ErrUnknownGateway refuses the sign-on of a gateway whose certificate is
// valid but which is not registered at the center.
var ErrUnknownGateway = errors.New("center: gateway not registered")

// signOnCheck returns the link server's sign-on check: a gateway may sign on
// only when it is registered in the store. A refusal is audited.
func signOnCheck(st *store.Store, log *slog.Logger) func(ctx context.Context, p link.Peer) error {
	return func(ctx context.Context, p link.Peer) error {
		err := st.View(ctx, func(tx *store.Tx) error {
			_, err := tx.Gateway(ctx, p.GatewayID)
			return err
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("check gateway %s: %w", p.GatewayID, err)
		}
		aerr := st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.InsertAudit(ctx, store.AuditRecord{Kind: "link.signon_refused", Actor: p.GatewayID,
				Detail: fmt.Sprintf("gateway %s from %s has a valid link certificate but is not registered", p.GatewayID, p.RemoteAddr)})
			return err
		})
		if aerr != nil {
			log.Error("audit of a refused sign-on failed", "gateway", p.GatewayID, "reason", aerr)
		}
		return fmt.Errorf("gateway %s: %w", p.GatewayID, ErrUnknownGateway)
	}
}
