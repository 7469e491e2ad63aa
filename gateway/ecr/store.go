package ecr

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/posgate/posgate/terminal/tlink"
)

// StatusInProgress is a transaction's status while its terminal works on
// it; every other status is a device.Outcome ("approved", "declined",
// "cancelled", "failed", "not_started", "unknown").
const StatusInProgress = "in_progress"

// Transaction is a POS transaction as the API shows it. It holds no card
// data: MaskedPAN is the DE 124 form, first six and last four digits.
type Transaction struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"` // sale, refund, void, preauth, capture
	TerminalID   string     `json:"terminal_id"`
	Amount       uint64     `json:"amount,omitempty"`
	Currency     string     `json:"currency,omitempty"`
	OriginalID   string     `json:"original_transaction_id,omitempty"`
	Status       string     `json:"status"`
	ActionCode   string     `json:"action_code,omitempty"`
	ApprovalCode string     `json:"approval_code,omitempty"`
	STAN         string     `json:"stan,omitempty"`
	RRN          string     `json:"rrn,omitempty"`
	TerminalTime string     `json:"terminal_time,omitempty"`
	MaskedPAN    string     `json:"masked_pan,omitempty"`
	ResolvedBy   string     `json:"resolved_by,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	// Offline is set when the gateway answered the terminal in stand-in
	// (the center could not be asked): approved offline, or declined by
	// the offline policy with the reason.
	Offline *OfflineDecision `json:"offline,omitempty"`
}

// record is one transaction and its idempotency key. Its fields are
// guarded by Server.mu; done is closed once the POST has its answer (a
// result, an unknown outcome, or an error: nothing sent).
type record struct {
	pos     string
	key     string
	fp      [32]byte
	kind    tlink.Kind
	done    chan struct{}
	changed chan struct{} // closed and replaced on every update
	err     *apiError
	tx      Transaction
	// jid is the record's id in the Journal; 0 until it is stored (or
	// without a Journal).
	jid uint64
	// bad marks a stored record that could not be read at start: only
	// its key is known, and it is refused.
	bad bool
	// wmu serializes the updates of tx with their writes to the Journal,
	// so the stored state never goes back to an older one. Taken before
	// Server.mu, never while holding it.
	wmu sync.Mutex
}

type idemKey struct{ pos, key string }

var (
	errKeyReused = errors.New("idempotency key used with a different request")
	errFull      = errors.New("transaction store full of transactions in progress")
)

// store keeps transactions in memory, bounded: when full, the oldest
// settled transaction (and its idempotency key) is forgotten. With a
// Journal the Server writes every record through to it (journal.go).
// Not safe for concurrent use; Server.mu guards it.
type store struct {
	max        int
	byID       map[string]*record
	byKey      map[idemKey]*record
	lastByTerm map[string]*record
	order      []*record
}

func newStore(max int) store {
	return store{max: max, byID: make(map[string]*record), byKey: make(map[idemKey]*record), lastByTerm: make(map[string]*record)}
}

// begin returns the record for (pos, key): the existing one when the
// fingerprint matches (existing true), errKeyReused when it does not, or
// a new one made by mk and stored before anything is sent. A record
// evicted to make room is returned too, so the caller can forget it in
// the Journal.
func (s *store) begin(pos, key string, fp [32]byte, mk func() *record) (r *record, existing bool, evicted *record, err error) {
	if r := s.byKey[idemKey{pos, key}]; r != nil {
		if r.bad {
			return r, true, nil, nil
		}
		if r.fp != fp {
			return nil, false, nil, errKeyReused
		}
		return r, true, nil, nil
	}
	if len(s.order) >= s.max {
		if evicted = s.evict(); evicted == nil {
			return nil, false, nil, errFull
		}
	}
	r = mk()
	s.add(r)
	return r, false, evicted, nil
}

// add puts r in the indexes as the newest record.
func (s *store) add(r *record) {
	s.byKey[idemKey{r.pos, r.key}] = r
	if !r.bad {
		s.byID[r.tx.ID] = r
		s.lastByTerm[r.tx.TerminalID] = r
	}
	s.order = append(s.order, r)
}

// evict forgets the oldest transaction whose outcome is final (or the
// oldest unreadable record) and returns it; nil when there is none.
func (s *store) evict() *record {
	for _, r := range s.order {
		if r.bad || final(r.tx.Status) {
			s.remove(r)
			return r
		}
	}
	return nil
}

func (s *store) remove(r *record) {
	if s.byID[r.tx.ID] == r {
		delete(s.byID, r.tx.ID)
	}
	if r.bad {
		if k := (idemKey{r.pos, r.key}); s.byKey[k] == r {
			delete(s.byKey, k)
		}
		if i := slices.Index(s.order, r); i >= 0 {
			s.order = slices.Delete(s.order, i, i+1)
		}
		return
	}
	k := idemKey{r.pos, r.key}
	if s.byKey[k] == r {
		delete(s.byKey, k)
	}
	if s.lastByTerm[r.tx.TerminalID] == r {
		delete(s.lastByTerm, r.tx.TerminalID)
		for i := len(s.order) - 1; i >= 0; i-- {
			if o := s.order[i]; o != r && !o.bad && o.tx.TerminalID == r.tx.TerminalID {
				s.lastByTerm[o.tx.TerminalID] = o
				break
			}
		}
	}
	if i := slices.Index(s.order, r); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
}
