package outbox

import "github.com/posgate/posgate/gateway/internal/gatewaytest"

// The shared test helpers under the names these tests use.
var (
	newSealer      = gatewaytest.NewSealer
	sale           = gatewaytest.Sale
	actionOf       = gatewaytest.ActionOf
	quiet          = gatewaytest.Quiet
	outcomeUnknown = gatewaytest.OutcomeUnknown
)
