package offline

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/posgate/posgate/protocol/iso93"

	bolt "go.etcd.io/bbolt"

	"github.com/posgate/posgate/offline/standin"
)

// State is where a stored approval is in forwarding.
type State uint8

// Record states (docs/offline.md has the transitions).
const (
	StatePending  State = 1 // stored, never sent
	StateSent     State = 2 // sent at least once, no final answer yet
	StateAccepted State = 3 // the center accepted the advice
	StateRejected State = 4 // the center declined the advice; kept for the merchant
	StateExpired  State = 5 // older than the maximum age before it was accepted; not sent
)

var stateNames = map[State]string{StatePending: "pending", StateSent: "sent", StateAccepted: "accepted", StateRejected: "rejected", StateExpired: "expired"}

// String names the state.
func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Outcome is how MarkAnswered classified the center's answer.
type Outcome uint8

// Outcomes of an advice answer.
const (
	// OutcomeAccepted: 000 or 001, or 913 (the center already had it).
	OutcomeAccepted Outcome = iota + 1
	// OutcomeRejected: any other action code; the record moves to the
	// rejected list for the merchant.
	OutcomeRejected
	// OutcomeRetry: 906, 907, 909, 911, 923 — the center could not take
	// it now; the record stays in the queue and goes again as a 1221.
	OutcomeRetry
)

type stateRec struct {
	state      State
	attempts   uint32
	action     [3]byte
	approvedAt int64
	answeredAt int64
	amount     int64
	merchant   string
}

func (r *stateRec) encode() []byte {
	b := make([]byte, 0, 33+len(r.merchant))
	b = append(b, byte(r.state))
	b = binary.BigEndian.AppendUint32(b, r.attempts)
	b = append(b, r.action[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.approvedAt))
	b = binary.BigEndian.AppendUint64(b, uint64(r.answeredAt))
	b = binary.BigEndian.AppendUint64(b, uint64(r.amount))
	b = append(b, byte(len(r.merchant)))
	return append(b, r.merchant...)
}

func decodeState(b []byte) (stateRec, bool) {
	var r stateRec
	if len(b) < 33 || len(b) != 33+int(b[32]) {
		return r, false
	}
	r.state = State(b[0])
	r.attempts = binary.BigEndian.Uint32(b[1:])
	copy(r.action[:], b[5:8])
	r.approvedAt = int64(binary.BigEndian.Uint64(b[8:]))
	r.answeredAt = int64(binary.BigEndian.Uint64(b[16:]))
	r.amount = int64(binary.BigEndian.Uint64(b[24:]))
	r.merchant = string(b[33:])
	return r, true
}

// Record is a stored offline approval, opened.
type Record struct {
	ID             uint64
	IdempotencyKey string // DE 123 of the original request, carried by every advice
	State          State
	// Attempts counts MarkSent calls: 0 means the next send is a 1220,
	// more a 1221 repeat.
	Attempts     int
	Action       string // the center's answer (DE 39), once answered
	ApprovedAt   time.Time
	AnsweredAt   time.Time // zero until answered
	ApprovalCode string    // DE 38 given to the terminal (by the gateway, or by the terminal for OriginTerminal)
	TerminalID   string
	MerchantID   string
	Brand        string
	Fingerprint  string
	MaskedPAN    string
	Amount       int64
	Currency     string
	Chip         standin.Chip
	// Origin tells a stand-in approval (Message is the 1100/1200) from a
	// terminal's advice (Message is its 1220, forwarded as is).
	Origin  Origin
	Message []byte // the original request, or the terminal's advice
}

// MTI returns the advice's message type: 1220 for a first send, 1221
// when the record has been sent before.
func (r Record) MTI() string {
	if r.Attempts > 0 {
		return iso93.MTIAdviceRepeat
	}
	return iso93.MTIAdvice
}

// LogValue leaves out the message bytes.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(slog.Uint64("id", r.ID), slog.String("idempotency_key", r.IdempotencyKey),
		slog.String("state", r.State.String()), slog.String("pan", r.MaskedPAN), slog.Int64("amount", r.Amount))
}

// Queue is the store-and-forward queue of a Store. It is safe for
// concurrent use, but advices should be forwarded by one goroutine so they
// go up in order.
type Queue struct{ s *Store }

// Queue returns the store's forwarding queue.
func (s *Store) Queue() *Queue { return &Queue{s: s} }

type rawRec struct {
	id  uint64
	st  stateRec
	rec []byte
}

// Next returns up to n records waiting to be forwarded (pending or sent
// and unanswered), oldest first. It never returns an answered record.
// Records older than the policy's maximum age are flagged StateExpired
// (durably) instead of being returned; Expired lists them.
func (q *Queue) Next(n int) ([]Record, error) {
	s := q.s
	maxAge := s.policy.Load().MaxAgeOrDefault()
	cut := s.now().Add(-maxAge).UnixNano()
	var raws []rawRec
	var expired []uint64
	err := s.view(func(tx *bolt.Tx) error {
		st, recs := safState(tx), safRec(tx)
		c := safOut(tx).Cursor()
		for k, _ := c.First(); k != nil && len(raws) < n; k, _ = c.Next() {
			sr, ok := decodeState(st.Get(k))
			if !ok {
				return fmt.Errorf("record %x: bad state: %w", k, ErrStorage)
			}
			id := binary.BigEndian.Uint64(k)
			if sr.approvedAt <= cut {
				expired = append(expired, id)
				continue
			}
			raws = append(raws, rawRec{id: id, st: sr, rec: append([]byte(nil), recs.Get(k)...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue next: %w", err)
	}
	if len(expired) > 0 {
		if err := q.flagExpired(expired, cut); err != nil {
			return nil, err
		}
	}
	return q.open(raws)
}

func (q *Queue) flagExpired(ids []uint64, cut int64) error {
	err := q.s.c.do(func(tx *bolt.Tx) error {
		for _, id := range ids {
			k := u64(id)
			sr, ok := decodeState(safState(tx).Get(k))
			if !ok || (sr.state != StatePending && sr.state != StateSent) || sr.approvedAt > cut {
				continue
			}
			if err := q.s.move(tx, k, &sr, StateExpired); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flag expired records: %w", err)
	}
	return nil
}

// move changes a record's state, keeping the outstanding index and the
// counters in step, and saves the state.
func (s *Store) move(tx *bolt.Tx, k []byte, sr *stateRec, to State) error {
	from := sr.state
	if err := s.count(tx, from, -1, -sr.amount); err != nil {
		return err
	}
	if err := s.count(tx, to, 1, sr.amount); err != nil {
		return err
	}
	wasOut := from == StatePending || from == StateSent
	isOut := to == StatePending || to == StateSent
	var err error
	switch {
	case wasOut && !isOut:
		err = safOut(tx).Delete(k)
	case !wasOut && isOut:
		err = safOut(tx).Put(k, present)
	}
	if err != nil {
		return fmt.Errorf("update queue index: %w (%w)", err, ErrStorage)
	}
	// Exposure is what is approved and not yet answered (expired records
	// are still unanswered).
	if from != StateAccepted && from != StateRejected && (to == StateAccepted || to == StateRejected) {
		if err := s.expose(tx, sr.merchant, -sr.amount); err != nil {
			return err
		}
	}
	sr.state = to
	if err := safState(tx).Put(k, sr.encode()); err != nil {
		return fmt.Errorf("save record state: %w (%w)", err, ErrStorage)
	}
	return nil
}

func (s *Store) count(tx *bolt.Tx, st State, n, amount int64) error {
	c := safCounts(tx)
	if err := addI64(c, []byte("n."+st.String()), n); err != nil {
		return fmt.Errorf("update counters: %w (%w)", err, ErrStorage)
	}
	if err := addI64(c, []byte("a."+st.String()), amount); err != nil {
		return fmt.Errorf("update counters: %w (%w)", err, ErrStorage)
	}
	return nil
}

func (q *Queue) open(raws []rawRec) ([]Record, error) {
	out := make([]Record, 0, len(raws))
	for _, r := range raws {
		rec, err := q.s.openRecord(r)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func (s *Store) openRecord(r rawRec) (Record, error) {
	if len(r.rec) < 1 || len(r.rec) < 1+int(r.rec[0]) {
		return Record{}, fmt.Errorf("open record %d: truncated: %w", r.id, ErrRecordSeal)
	}
	idem := string(r.rec[1 : 1+int(r.rec[0])])
	pt, err := s.seal.Open(r.rec[1+int(r.rec[0]):], aad(idem))
	if err != nil {
		return Record{}, fmt.Errorf("open record %d: %w (%w)", r.id, err, ErrRecordSeal)
	}
	var p payload
	if err := json.Unmarshal(pt, &p); err != nil {
		return Record{}, fmt.Errorf("open record %d: decode: %w", r.id, ErrRecordSeal)
	}
	rec := Record{
		ID: r.id, IdempotencyKey: idem, State: r.st.state, Attempts: int(r.st.attempts),
		ApprovedAt: time.Unix(0, r.st.approvedAt), ApprovalCode: approvalCode(r.id),
		TerminalID: p.TerminalID, MerchantID: p.MerchantID, Brand: p.Brand, Fingerprint: p.Fingerprint,
		MaskedPAN: p.MaskedPAN, Amount: p.Amount, Currency: p.Currency, Chip: p.Chip, Message: p.Message,
		Origin: p.Origin,
	}
	if p.ApprovalCode != "" {
		rec.ApprovalCode = p.ApprovalCode
	}
	if r.st.action != [3]byte{} {
		rec.Action = string(r.st.action[:])
	}
	if r.st.answeredAt != 0 {
		rec.AnsweredAt = time.Unix(0, r.st.answeredAt)
	}
	return rec, nil
}

// MarkSent records, durably, that the records are about to be sent (call
// it before sending): from then on each goes as a 1221 repeat. Several ids
// share one transaction; if any fails, none is marked. It fails with
// ErrAnswered for an answered record, ErrExpired for an expired one and
// ErrNotFound for an unknown id.
func (q *Queue) MarkSent(ids ...uint64) error {
	err := q.s.c.do(func(tx *bolt.Tx) error {
		for _, id := range ids {
			k := u64(id)
			sr, err := outstanding(tx, k)
			if err != nil {
				return fmt.Errorf("record %d: %w", id, err)
			}
			sr.attempts++
			if err := q.s.move(tx, k, &sr, StateSent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark records sent: %w", err)
	}
	return nil
}

func outstanding(tx *bolt.Tx, k []byte) (stateRec, error) {
	sr, ok := decodeState(safState(tx).Get(k))
	switch {
	case !ok:
		return sr, ErrNotFound
	case sr.state == StateAccepted || sr.state == StateRejected:
		return sr, ErrAnswered
	case sr.state == StateExpired:
		return sr, ErrExpired
	}
	return sr, nil
}

// Classify tells how an advice answer with action code action (DE 39) is
// treated; see Outcome.
func Classify(action string) Outcome {
	switch action {
	case "000", "001", "913":
		return OutcomeAccepted
	case "906", "907", "909", "911", "923":
		return OutcomeRetry
	}
	return OutcomeRejected
}

// MarkAnswered records the center's answer to the record's advice,
// durably. Accepted records leave the queue; rejected ones move to the
// rejected list (never dropped); on OutcomeRetry the record stays queued.
// An answered record is never handed out by Next again. It fails with
// ErrAnswered when the record was already answered, ErrExpired when it is
// expired, ErrNotFound for an unknown id.
func (q *Queue) MarkAnswered(id uint64, action string) (Outcome, error) {
	if len(action) != 3 {
		return 0, fmt.Errorf("mark record %d answered with a %d-character action code: %w", id, len(action), ErrInvalidRequest)
	}
	out := Classify(action)
	now := q.s.now().UnixNano()
	err := q.s.c.do(func(tx *bolt.Tx) error {
		k := u64(id)
		sr, err := outstanding(tx, k)
		if err != nil {
			return err
		}
		copy(sr.action[:], action)
		switch out {
		case OutcomeRetry:
			return q.s.move(tx, k, &sr, sr.state)
		case OutcomeAccepted:
			sr.answeredAt = now
			return q.s.move(tx, k, &sr, StateAccepted)
		default:
			sr.answeredAt = now
			return q.s.move(tx, k, &sr, StateRejected)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("mark record %d answered: %w", id, err)
	}
	return out, nil
}

// Requeue puts an expired record back in the queue (the merchant decided
// to send it anyway); it keeps its place by id.
func (q *Queue) Requeue(id uint64) error {
	err := q.s.c.do(func(tx *bolt.Tx) error {
		k := u64(id)
		sr, ok := decodeState(safState(tx).Get(k))
		if !ok {
			return ErrNotFound
		}
		if sr.state != StateExpired {
			return fmt.Errorf("record is %s, not expired: %w", sr.state, ErrInvalidRequest)
		}
		to := StatePending
		if sr.attempts > 0 {
			to = StateSent
		}
		// Requeued records must not expire again at once.
		sr.approvedAt = q.s.now().UnixNano()
		return q.s.move(tx, k, &sr, to)
	})
	if err != nil {
		return fmt.Errorf("requeue record %d: %w", id, err)
	}
	return nil
}

// Rejected lists the records the center declined, oldest first, for the
// merchant. They stay until Purge.
func (q *Queue) Rejected() ([]Record, error) { return q.list(StateRejected) }

// Expired lists the records flagged expired, oldest first.
func (q *Queue) Expired() ([]Record, error) { return q.list(StateExpired) }

// Get returns one record in any state.
func (q *Queue) Get(id uint64) (Record, error) {
	var raw rawRec
	err := q.s.view(func(tx *bolt.Tx) error {
		k := u64(id)
		sr, ok := decodeState(safState(tx).Get(k))
		if !ok {
			return ErrNotFound
		}
		raw = rawRec{id: id, st: sr, rec: append([]byte(nil), safRec(tx).Get(k)...)}
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("get record %d: %w", id, err)
	}
	return q.s.openRecord(raw)
}

func (q *Queue) list(want State) ([]Record, error) {
	var raws []rawRec
	err := q.s.view(func(tx *bolt.Tx) error {
		recs := safRec(tx)
		return safState(tx).ForEach(func(k, v []byte) error {
			if sr, ok := decodeState(v); ok && sr.state == want {
				raws = append(raws, rawRec{id: binary.BigEndian.Uint64(k), st: sr, rec: append([]byte(nil), recs.Get(k)...)})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list %s records: %w", want, err)
	}
	return q.open(raws)
}

// Total is a count and an amount (minor units).
type Total struct {
	Count  int64
	Amount int64
}

// Stats are the queue's counters for devicectl.
type Stats struct {
	Pending, Sent, Accepted, Rejected, Expired Total
	// Exposure is the amount approved offline and not yet answered.
	Exposure int64
	// Oldest is when the oldest queued (pending or sent) record was
	// approved; zero when the queue is empty.
	Oldest time.Time
}

// Stats returns the queue's counters.
func (q *Queue) Stats() (Stats, error) {
	var st Stats
	err := q.s.view(func(tx *bolt.Tx) error {
		c := safCounts(tx)
		get := func(s State) Total {
			return Total{Count: getI64(c, []byte("n."+s.String())), Amount: getI64(c, []byte("a."+s.String()))}
		}
		st.Pending, st.Sent, st.Accepted, st.Rejected, st.Expired =
			get(StatePending), get(StateSent), get(StateAccepted), get(StateRejected), get(StateExpired)
		st.Exposure = getI64(exposure(tx), kExpTotal)
		if k, _ := safOut(tx).Cursor().First(); k != nil {
			if sr, ok := decodeState(safState(tx).Get(k)); ok {
				st.Oldest = time.Unix(0, sr.approvedAt)
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	return st, nil
}

// Purge deletes accepted records answered before before, and returns how
// many it deleted. Rejected and expired records are never purged. It also
// drops velocity entries of cards not seen within the policy's longest
// window.
func (q *Queue) Purge(before time.Time) (int, error) {
	cut := before.UnixNano()
	velCut := q.s.now().Add(-q.s.policy.Load().MaxWindow())
	var n int
	err := q.s.c.do(func(tx *bolt.Tx) error {
		n = 0
		var stale [][]byte
		err := velocity(tx).ForEach(func(k, v []byte) error {
			if len(pruneVelocity(v, velCut)) == 0 {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := velocity(tx).Delete(k); err != nil {
				return fmt.Errorf("purge velocity: %w (%w)", err, ErrStorage)
			}
		}
		var keys [][]byte
		err = safState(tx).ForEach(func(k, v []byte) error {
			if sr, ok := decodeState(v); ok && sr.state == StateAccepted && sr.answeredAt < cut {
				keys = append(keys, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			sr, _ := decodeState(safState(tx).Get(k))
			rec := safRec(tx).Get(k)
			if len(rec) > 0 && len(rec) >= 1+int(rec[0]) {
				if err := safIdem(tx).Delete(append([]byte(nil), rec[1:1+int(rec[0])]...)); err != nil {
					return fmt.Errorf("purge: %w (%w)", err, ErrStorage)
				}
			}
			for _, b := range []*bolt.Bucket{safRec(tx), safState(tx)} {
				if err := b.Delete(k); err != nil {
					return fmt.Errorf("purge: %w (%w)", err, ErrStorage)
				}
			}
			if err := q.s.count(tx, StateAccepted, -1, -sr.amount); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge accepted records: %w", err)
	}
	return n, nil
}
