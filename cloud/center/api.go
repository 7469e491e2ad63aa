package center

import (
	"log/slog"
	"net/http"

	"github.com/posgate/posgate/cloud/acquiring"
	"github.com/posgate/posgate/cloud/api"
	"github.com/posgate/posgate/cloud/issuing"
)

// apiHandler builds the REST API (docs/api.md) over the center's store and
// token vault; the daemon mounts it at /api/v1/.
func apiHandler(p *Parts, log *slog.Logger) (http.Handler, error) {
	return api.New(api.Config{
		Store:    p.Store,
		Issuer:   &issuing.Issuer{Store: p.Store, Vault: p.Vault},
		Acquirer: &acquiring.Acquirer{Store: p.Store},
		Logger:   log,
	})
}
