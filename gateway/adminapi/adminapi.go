// Package adminapi is the JSON of the gateway's loopback admin routes
// (docs/offline.md, "Admin surface"): what GET /offline/status and GET
// /offline/rejected answer. It imports nothing but the standard library,
// so devicectl can read the routes without linking the gateway (no cgo,
// bbolt or QUIC).
package adminapi

import "time"

// Record is a stored offline approval on the admin surface: no card
// data beyond the masked PAN, never the request bytes.
type Record struct {
	ID             uint64    `json:"id"`
	IdempotencyKey string    `json:"idempotency_key"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	Action         string    `json:"action,omitempty"`
	ApprovedAt     time.Time `json:"approved_at"`
	AnsweredAt     time.Time `json:"answered_at,omitzero"`
	ApprovalCode   string    `json:"approval_code"`
	// Origin is "stand-in" (the gateway approved it) or "terminal" (the
	// terminal's chip card did; its own advice is forwarded).
	Origin     string `json:"origin"`
	TerminalID string `json:"terminal_id"`
	MerchantID string `json:"merchant_id"`
	Brand      string `json:"brand"`
	MaskedPAN  string `json:"masked_pan"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
}

// Total is a count and an amount (minor units) on the admin surface.
type Total struct {
	Count  int64 `json:"count"`
	Amount int64 `json:"amount"`
}

// Session is a partly received negative-file sync session.
type Session struct {
	Snapshot bool   `json:"snapshot"`
	Base     uint64 `json:"base"`
	Version  uint64 `json:"version"`
	Total    uint32 `json:"total"`
	Next     uint32 `json:"next"`
}

// NegativeFile is the negative file's state on the admin surface.
type NegativeFile struct {
	Loaded   bool      `json:"loaded"`
	Version  uint64    `json:"version"`
	SyncedAt time.Time `json:"synced_at,omitzero"`
	Session  *Session  `json:"session,omitempty"`
}

// Status is the answer of GET /offline/status: the forwarding
// queue by state (pending, sent, accepted, rejected, expired), the
// exposure, the oldest queued approval and the negative file.
type Status struct {
	Queue map[string]Total `json:"queue"`
	// Exposure is the amount approved offline and not yet answered.
	Exposure int64 `json:"exposure"`
	// Oldest is when the oldest queued approval was made; zero (absent)
	// when the queue is empty.
	Oldest   time.Time    `json:"oldest,omitzero"`
	Negative NegativeFile `json:"negative_file"`
}

// Rejected is the answer of GET /offline/rejected.
type Rejected struct {
	Rejected []Record `json:"rejected"`
}
