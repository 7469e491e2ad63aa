package forward

import "github.com/posgate/posgate/gateway/internal/gatewaytest"

// The shared test helpers under the names these tests use.
type uplinkFunc = gatewaytest.UplinkFunc

const blockedFP = gatewaytest.BlockedFP

var (
	sale           = gatewaytest.Sale
	saleWith       = gatewaytest.SaleWith
	approve        = gatewaytest.Approve
	actionOf       = gatewaytest.ActionOf
	quiet          = gatewaytest.Quiet
	openStore      = gatewaytest.OpenStore
	linkDown       = gatewaytest.LinkDown
	outcomeUnknown = gatewaytest.OutcomeUnknown
	chipData       = gatewaytest.ChipData
	terminalAdvice = gatewaytest.TerminalAdvice
)
