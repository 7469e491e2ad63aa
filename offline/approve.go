package offline

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posgate/posgate/offline/standin"
)

// Sale is a request the center could not be asked about, as the gateway
// knows it: no clear card data, only the fingerprint (DE 122), the masked
// PAN (DE 124) and the raw request whose card block is encrypted.
type Sale struct {
	// IdempotencyKey is the request's DE 123 (1-64 characters). A second
	// Approve with the same key returns the first approval unchanged.
	IdempotencyKey string
	TerminalID     string // DE 41
	MerchantID     string // DE 42
	Brand          string // card brand, for per-brand rules
	Fingerprint    string // DE 122: 32 lower-case hex
	MaskedPAN      string // DE 124
	Amount         int64  // DE 4, minor units
	Currency       string // DE 49, ISO 4217 numeric
	Refund         bool   // DE 3 is 200000
	Chip           standin.Chip
	// Message is the raw ISO 8583 request; the advice is built from it.
	Message []byte
}

// LogValue leaves out the message bytes.
func (s Sale) LogValue() slog.Value {
	return slog.GroupValue(slog.String("idempotency_key", s.IdempotencyKey), slog.String("terminal", s.TerminalID),
		slog.String("merchant", s.MerchantID), slog.String("pan", s.MaskedPAN), slog.Int64("amount", s.Amount))
}

// Decision is the outcome of Approve.
type Decision struct {
	Approved bool
	Reason   standin.Reason
	// ActionCode is DE 39 for the terminal.
	ActionCode string
	// ApprovalCode is DE 38 of an approval (6 digits).
	ApprovalCode string
	// RecordID identifies the stored approval in the queue (0 if declined).
	RecordID uint64
	// Duplicate is true when the idempotency key had been approved before
	// and this is that approval.
	Duplicate bool
}

// payload is the sealed part of a record.
type payload struct {
	TerminalID  string       `json:"t"`
	MerchantID  string       `json:"m"`
	Brand       string       `json:"b"`
	Fingerprint string       `json:"f"`
	MaskedPAN   string       `json:"p"`
	Amount      int64        `json:"a"`
	Currency    string       `json:"c"`
	Chip        standin.Chip `json:"e"`
	Message     []byte       `json:"r"`
	// Origin and ApprovalCode are set for a terminal's advice (Enqueue);
	// absent, the record is a stand-in approval whose code derives from
	// its id.
	Origin       Origin `json:"o,omitempty"`
	ApprovalCode string `json:"x,omitempty"`
}

func aad(idem string) []byte { return append([]byte("posgate/offline/saf/v1\x00"), idem...) }

// Approve decides sale under the stand-in policy and, when it is approved,
// stores it durably (fsync) in the forwarding queue before returning: the
// terminal may be told "approved" once Approve returns an approving
// Decision and a nil error. Concurrent calls share transactions (group
// commit). Decision, velocity and exposure are evaluated inside the
// transaction that stores the approval, so concurrent approvals never
// overrun a limit together. A declined sale is not stored. On an error
// nothing was stored and the terminal must not be told "approved".
func (s *Store) Approve(sale Sale) (Decision, error) {
	s.c.expect()
	expected := true
	defer func() {
		if expected {
			s.c.cancel()
		}
	}()
	if n := len(sale.IdempotencyKey); n == 0 || n > 64 {
		return Decision{}, fmt.Errorf("approve offline: idempotency key of %d characters: %w", n, ErrInvalidRequest)
	}
	var fp [16]byte
	if err := fpKey(sale.Fingerprint, &fp); err != nil {
		return Decision{}, fmt.Errorf("approve offline: %w", err)
	}
	if len(sale.MerchantID) > 255 {
		return Decision{}, fmt.Errorf("approve offline: merchant id of %d characters: %w", len(sale.MerchantID), ErrInvalidRequest)
	}
	pt, err := json.Marshal(payload{TerminalID: sale.TerminalID, MerchantID: sale.MerchantID, Brand: sale.Brand,
		Fingerprint: sale.Fingerprint, MaskedPAN: sale.MaskedPAN, Amount: sale.Amount, Currency: sale.Currency,
		Chip: sale.Chip, Message: sale.Message})
	if err != nil {
		return Decision{}, fmt.Errorf("approve offline: encode record: %w", err)
	}
	sealed, err := s.seal.Seal(pt, aad(sale.IdempotencyKey))
	if err != nil {
		return Decision{}, fmt.Errorf("approve offline: seal record: %w (%w)", err, ErrRecordSeal)
	}
	pol := s.policy.Load()
	now := s.now()
	var d Decision
	expected = false // submit takes the announcement over
	err = s.c.submit(func(tx *bolt.Tx) error {
		d = Decision{}
		return s.approve(tx, pol, now, sale, fp[:], sealed, &d)
	}, true)
	if err != nil {
		return Decision{}, fmt.Errorf("approve offline: %w", err)
	}
	return d, nil
}

func approvalCode(id uint64) string { return fmt.Sprintf("%06d", id%1_000_000) }

func (s *Store) approve(tx *bolt.Tx, pol *standin.Policy, now time.Time, sale Sale, fp, sealed []byte, d *Decision) error {
	idem := safIdem(tx)
	if v := idem.Get([]byte(sale.IdempotencyKey)); len(v) == 8 {
		id := binary.BigEndian.Uint64(v)
		*d = Decision{Approved: true, Reason: standin.ReasonApproved, ActionCode: standin.ReasonApproved.ActionCode(),
			ApprovalCode: approvalCode(id), RecordID: id, Duplicate: true}
		return nil
	}
	req := standin.Request{Scope: standin.Scope{TerminalID: sale.TerminalID, MerchantID: sale.MerchantID, Brand: sale.Brand},
		Fingerprint: sale.Fingerprint, Amount: sale.Amount, Currency: sale.Currency, Refund: sale.Refund, Chip: sale.Chip}
	st := stateFor(tx, now, req.Scope)
	st.Blocked = st.NegativeLoaded && negHit(tx, fp)

	rules := pol.Rules(req.Scope)
	vel := velocity(tx)
	entries := pruneVelocity(vel.Get(fp), now.Add(-pol.MaxWindow()))
	from := now.Add(-rules.Window).UnixNano()
	for i := 0; i+16 <= len(entries); i += 16 {
		if int64(binary.BigEndian.Uint64(entries[i:])) > from {
			st.CardCount++
			st.CardAmount += int64(binary.BigEndian.Uint64(entries[i+8:]))
		}
	}
	dec := pol.Decide(req, st)
	*d = Decision{Approved: dec.Approved, Reason: dec.Reason, ActionCode: dec.Reason.ActionCode()}
	if !dec.Approved {
		return nil
	}
	recs := safRec(tx)
	id, err := recs.NextSequence()
	if err != nil {
		return fmt.Errorf("next record id: %w (%w)", err, ErrStorage)
	}
	sr := stateRec{state: StatePending, approvedAt: now.UnixNano(), amount: sale.Amount, merchant: sale.MerchantID}
	if err := s.insert(tx, id, sale.IdempotencyKey, sealed, sr); err != nil {
		return err
	}
	entries = binary.BigEndian.AppendUint64(entries, uint64(now.UnixNano()))
	entries = binary.BigEndian.AppendUint64(entries, uint64(sale.Amount))
	if err := vel.Put(fp, entries); err != nil {
		return fmt.Errorf("store approval in %s/%s: %w (%w)", bStandIn, bVelocity, err, ErrStorage)
	}
	d.RecordID, d.ApprovalCode = id, approvalCode(id)
	return nil
}

// stateFor gathers the negative-file and exposure parts of a decision.
func stateFor(tx *bolt.Tx, now time.Time, sc standin.Scope) standin.State {
	m := readNegMeta(tx)
	cnt := exposure(tx)
	return standin.State{
		NegativeLoaded:   m.loaded,
		NegativeAge:      now.Sub(m.synced),
		MerchantExposure: getI64(cnt, merchantKey(sc.MerchantID)),
		TotalExposure:    getI64(cnt, kExpTotal),
	}
}

func merchantKey(m string) []byte { return append([]byte("exposure.m."), m...) }

func (s *Store) expose(tx *bolt.Tx, merchant string, d int64) error {
	cnt := exposure(tx)
	if err := addI64(cnt, kExpTotal, d); err != nil {
		return fmt.Errorf("update exposure: %w (%w)", err, ErrStorage)
	}
	if err := addI64(cnt, merchantKey(merchant), d); err != nil {
		return fmt.Errorf("update exposure: %w (%w)", err, ErrStorage)
	}
	return nil
}

// pruneVelocity drops entries at or before cut; it returns a fresh slice.
func pruneVelocity(v []byte, cut time.Time) []byte {
	out := make([]byte, 0, len(v)+16)
	c := cut.UnixNano()
	for i := 0; i+16 <= len(v); i += 16 {
		if int64(binary.BigEndian.Uint64(v[i:])) > c {
			out = append(out, v[i:i+16]...)
		}
	}
	return out
}

// Headroom tells what stand-in could still approve in scope sc for a card
// not yet read: whether it is available at all and the largest amount
// (floor limit and exposure remainders). The POS can show it before the
// card is presented.
func (s *Store) Headroom(sc standin.Scope) (standin.Headroom, error) {
	pol := s.policy.Load()
	now := s.now()
	var h standin.Headroom
	err := s.view(func(tx *bolt.Tx) error {
		h = pol.Headroom(sc, stateFor(tx, now, sc))
		return nil
	})
	if err != nil {
		return standin.Headroom{}, fmt.Errorf("stand-in headroom: %w", err)
	}
	return h, nil
}
