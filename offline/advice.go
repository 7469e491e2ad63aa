package offline

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"

	bolt "go.etcd.io/bbolt"

	"github.com/posgate/posgate/offline/standin"
)

// Origin says who made a stored offline approval, and so how its advice
// is built.
type Origin uint8

// Origins of a stored record.
const (
	// OriginStandIn: the gateway approved a 1100/1200 in stand-in
	// (Approve); the advice is built from the stored request.
	OriginStandIn Origin = iota
	// OriginTerminal: a terminal approved the sale offline (a chip card's
	// TC under the terminal's floor limit) and sent its own 1220 advice
	// (Enqueue); that advice is forwarded as received, only its MTI
	// becoming 1221 on a repeat.
	OriginTerminal
)

// String names the origin.
func (o Origin) String() string {
	switch o {
	case OriginStandIn:
		return "stand-in"
	case OriginTerminal:
		return "terminal"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// Advice is an offline approval a terminal made and advised in a 1220,
// as the gateway knows it: no clear card data, only the fingerprint
// (DE 122), the masked PAN (DE 124) and the advice itself, whose card data
// is the encrypted block (DE 120) and whose DE 55 carries no card-data
// tags (the caller checks it with de55.ParseRequest).
type Advice struct {
	// IdempotencyKey is the advice's DE 123 (1-64 characters). A second
	// Enqueue with the same key stores nothing and returns the first
	// record.
	IdempotencyKey string
	TerminalID     string // DE 41
	MerchantID     string // DE 42, at most 255 characters
	Brand          string // card brand (gateway.BrandOf)
	Fingerprint    string // DE 122: 32 lower-case hex
	MaskedPAN      string // DE 124
	Amount         int64  // DE 4, minor units, positive
	Currency       string // DE 49, ISO 4217 numeric
	// ApprovalCode is DE 38, the code the terminal gave the cardholder
	// (1-6 characters).
	ApprovalCode string
	// Chip is the card's offline decision read from DE 55 (ChipTC for an
	// offline chip approval; ChipNone without DE 55).
	Chip standin.Chip
	// Sent marks an advice that already went to the center once without a
	// final answer (outcome unknown, or "try later"): it is stored as sent,
	// so the forwarder sends it as a 1221 repeat.
	Sent bool
	// Message is the terminal's 1220 (or 1221) as received.
	Message []byte
}

// LogValue leaves out the message bytes.
func (a Advice) LogValue() slog.Value {
	return slog.GroupValue(slog.String("idempotency_key", a.IdempotencyKey), slog.String("terminal", a.TerminalID),
		slog.String("merchant", a.MerchantID), slog.String("pan", a.MaskedPAN), slog.Int64("amount", a.Amount))
}

// Queued is the outcome of Enqueue.
type Queued struct {
	// RecordID identifies the stored advice in the queue.
	RecordID uint64
	// Duplicate is true when the idempotency key was already stored (a
	// repeat of the advice, or a stand-in approval under that key); that
	// record is kept unchanged and nothing is stored.
	Duplicate bool
}

// Enqueue stores a terminal's offline approval advice durably (fsync) in
// the forwarding queue before returning, so the terminal may be told the
// advice was accepted once Enqueue returns a nil error. No stand-in
// decision is made: the terminal (and the card) approved the sale, and
// the center decides on the advice. The amount counts towards the total
// and merchant exposure until the center answers (so stand-in sees every
// unanswered offline approval), even beyond the exposure caps; it does
// not count towards the card's velocity. Records keep their place by id:
// the forwarder sends them in order with the stand-in approvals. A repeat
// of the key stores nothing (Queued.Duplicate). On an error nothing was
// stored.
func (s *Store) Enqueue(a Advice) (Queued, error) {
	s.c.expect()
	expected := true
	defer func() {
		if expected {
			s.c.cancel()
		}
	}()
	if err := a.check(); err != nil {
		return Queued{}, fmt.Errorf("enqueue advice: %w", err)
	}
	pt, err := json.Marshal(payload{TerminalID: a.TerminalID, MerchantID: a.MerchantID, Brand: a.Brand,
		Fingerprint: a.Fingerprint, MaskedPAN: a.MaskedPAN, Amount: a.Amount, Currency: a.Currency, Chip: a.Chip,
		Message: a.Message, Origin: OriginTerminal, ApprovalCode: a.ApprovalCode})
	if err != nil {
		return Queued{}, fmt.Errorf("enqueue advice: encode record: %w", err)
	}
	sealed, err := s.seal.Seal(pt, aad(a.IdempotencyKey))
	if err != nil {
		return Queued{}, fmt.Errorf("enqueue advice: seal record: %w (%w)", err, ErrRecordSeal)
	}
	now := s.now()
	var q Queued
	expected = false // submit takes the announcement over
	err = s.c.submit(func(tx *bolt.Tx) error {
		q = Queued{}
		if v := safIdem(tx).Get([]byte(a.IdempotencyKey)); len(v) == 8 {
			q = Queued{RecordID: binary.BigEndian.Uint64(v), Duplicate: true}
			return nil
		}
		id, err := safRec(tx).NextSequence()
		if err != nil {
			return fmt.Errorf("next record id: %w (%w)", err, ErrStorage)
		}
		sr := stateRec{state: StatePending, approvedAt: now.UnixNano(), amount: a.Amount, merchant: a.MerchantID}
		if a.Sent {
			sr.state, sr.attempts = StateSent, 1
		}
		if err := s.insert(tx, id, a.IdempotencyKey, sealed, sr); err != nil {
			return err
		}
		q.RecordID = id
		return nil
	}, true)
	if err != nil {
		return Queued{}, fmt.Errorf("enqueue advice: %w", err)
	}
	return q, nil
}

func (a *Advice) check() error {
	if n := len(a.IdempotencyKey); n == 0 || n > 64 {
		return fmt.Errorf("idempotency key of %d characters: %w", n, ErrInvalidRequest)
	}
	var fp [16]byte
	if err := fpKey(a.Fingerprint, &fp); err != nil {
		return err
	}
	if len(a.MerchantID) > 255 {
		return fmt.Errorf("merchant id of %d characters: %w", len(a.MerchantID), ErrInvalidRequest)
	}
	if n := len(a.ApprovalCode); n == 0 || n > 6 {
		return fmt.Errorf("approval code of %d characters: %w", n, ErrInvalidRequest)
	}
	if a.Amount <= 0 {
		return fmt.Errorf("amount %d: must be positive: %w", a.Amount, ErrInvalidRequest)
	}
	if len(a.Message) == 0 {
		return fmt.Errorf("no advice message: %w", ErrInvalidRequest)
	}
	return nil
}

// insert writes a new outstanding record (its sealed payload, state,
// queue and idempotency index entries) and adds it to the state counters
// and the exposure.
func (s *Store) insert(tx *bolt.Tx, id uint64, idem string, sealed []byte, sr stateRec) error {
	key := u64(id)
	rec := make([]byte, 0, 1+len(idem)+len(sealed))
	rec = append(append(append(rec, byte(len(idem))), idem...), sealed...)
	for _, w := range []struct {
		b    *bolt.Bucket
		name []byte
		k, v []byte
	}{
		{safRec(tx), bSAFRec, key, rec},
		{safState(tx), bSAFState, key, sr.encode()},
		{safOut(tx), bSAFOut, key, present},
		{safIdem(tx), bSAFIdem, []byte(idem), key},
	} {
		if err := w.b.Put(w.k, w.v); err != nil {
			return fmt.Errorf("store record in %s/%s: %w (%w)", bSAF, w.name, err, ErrStorage)
		}
	}
	if err := s.count(tx, sr.state, 1, sr.amount); err != nil {
		return err
	}
	return s.expose(tx, sr.merchant, sr.amount)
}
