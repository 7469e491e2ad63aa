package ecr

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/terminal/tlink"
)

// Journal keeps the POS API's transaction records durably, so a retry
// after a gateway restart gets the first transaction and never starts a
// second one. A method that returns nil has made its change durable
// (fsync). *offline.Store satisfies it (records sealed under the at-rest
// key, docs/offline.md). Implementations must be safe for concurrent use.
type Journal interface {
	// AddPOS stores a new record for (pos, key) and returns its id; ids
	// grow with every record and are never reused.
	AddPOS(pos, key string, data []byte) (uint64, error)
	// UpdatePOS replaces record id's data; pos and key are those it was
	// added with.
	UpdatePOS(id uint64, pos, key string, data []byte) error
	// DeletePOS deletes records; unknown ids are ignored.
	DeletePOS(ids ...uint64) error
	// LoadPOS calls fn with every record in id order; a record that
	// cannot be read comes with a non-nil err (and pos and key when they
	// could be read).
	LoadPOS(fn func(id uint64, pos, key string, data []byte, err error)) error
}

// Resolver is implemented by Terminals that can settle a transaction
// whose outcome the gateway did not know when it stopped: Resolve asks
// terminal deviceID for its last transaction and returns a final result
// for cmd.Ref (OutcomeNotStarted when the terminal's last transaction is
// another one), or an error when it cannot tell yet (not connected, the
// command still pending on the terminal). The Server retries until it has
// a final result or is closed.
type Resolver interface {
	Resolve(ctx context.Context, deviceID string, k tlink.Kind, cmd tlink.TxnCommand) (device.TxnResult, error)
}

// ResolvedByRestart is the resolved_by of a transaction whose outcome was
// not known when the gateway stopped (it was in progress, or its result
// was lost): its status is "unknown" until the terminal's last
// transaction settles it.
const ResolvedByRestart = "gateway_restart"

// StatusUnreadable marks an idempotency key whose stored record could not
// be read at start: the key is refused (409) rather than starting a new
// transaction under it.
const statusUnreadable = "unreadable"

// journalVersion is the layout of a stored record.
const journalVersion = 1

// stored is a record as the Journal keeps it (JSON, sealed by the store).
type stored struct {
	V    int         `json:"v"`
	FP   string      `json:"fp"`
	Kind tlink.Kind  `json:"kind"`
	Tx   Transaction `json:"tx"`
}

func encodeRecord(r *record, tx Transaction) ([]byte, error) {
	b, err := json.Marshal(stored{V: journalVersion, FP: hex.EncodeToString(r.fp[:]), Kind: r.kind, Tx: tx})
	if err != nil {
		return nil, fmt.Errorf("encode POS record %s: %w", tx.ID, err)
	}
	return b, nil
}

var errBadRecord = errors.New("ecr: unreadable stored transaction record")

// decodeRecord rebuilds a record from its stored form, checking every
// field the API relies on.
func decodeRecord(jid uint64, pos, key string, data []byte) (*record, error) {
	var st stored
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: not JSON of the stored form", errBadRecord)
	}
	fp, err := hex.DecodeString(st.FP)
	switch {
	case st.V != journalVersion:
		return nil, fmt.Errorf("%w: layout version %d", errBadRecord, st.V)
	case err != nil || len(fp) != 32:
		return nil, fmt.Errorf("%w: bad request fingerprint", errBadRecord)
	case !tlink.IsTxnCommand(st.Kind) || typeOf[st.Kind] != st.Tx.Type:
		return nil, fmt.Errorf("%w: bad kind %d / type %q", errBadRecord, st.Kind, st.Tx.Type)
	case !validRef(st.Tx.ID) || !device.ValidID(st.Tx.TerminalID) || !validKey(key) || !posIDPattern.MatchString(pos):
		return nil, fmt.Errorf("%w: bad id, terminal, POS or key", errBadRecord)
	case !knownStatus(st.Tx.Status):
		return nil, fmt.Errorf("%w: bad status %q", errBadRecord, st.Tx.Status)
	}
	r := &record{jid: jid, pos: pos, key: key, kind: st.Kind, done: make(chan struct{}), changed: make(chan struct{}), tx: st.Tx}
	copy(r.fp[:], fp)
	close(r.done)
	return r, nil
}

func knownStatus(s string) bool {
	switch device.Outcome(s) {
	case device.OutcomeApproved, device.OutcomeDeclined, device.OutcomeCancelled, device.OutcomeFailed,
		device.OutcomeNotStarted, device.OutcomeUnknown:
		return true
	}
	return s == StatusInProgress
}

// load rebuilds the store from the journal. A transaction that was in
// progress, or whose outcome was unknown, becomes unknown with
// ResolvedByRestart (written back). A record that cannot be read is
// logged by its id and skipped; when its POS id and key are known, the key
// is kept refused so no second transaction starts under it. It returns
// the records to resolve.
func (s *Server) load() ([]*record, error) {
	var recs []*record
	err := s.journal.LoadPOS(func(id uint64, pos, key string, data []byte, err error) {
		var r *record
		if err == nil {
			r, err = decodeRecord(id, pos, key, data)
		}
		if err != nil {
			s.log.Error("stored POS transaction unreadable; skipped (its idempotency key is refused when known)",
				"record", id, "pos", pos, "reason", err)
			if pos == "" || key == "" {
				return
			}
			r = &record{jid: id, pos: pos, key: key, bad: true, done: make(chan struct{}), changed: make(chan struct{}),
				tx: Transaction{Status: statusUnreadable}}
			close(r.done)
		}
		recs = append(recs, r)
	})
	if err != nil {
		return nil, fmt.Errorf("load POS transactions: %w", err)
	}
	var unresolved []*record
	var evicted []uint64
	for _, r := range recs {
		if old := s.st.byKey[idemKey{r.pos, r.key}]; old != nil {
			// The API never stores a key twice; should a file hold it, the
			// newer record wins.
			s.st.remove(old)
			evicted = append(evicted, old.jid)
		}
		if !r.bad && !final(r.tx.Status) {
			r.tx.Status = string(device.OutcomeUnknown)
			r.tx.ResolvedBy = ResolvedByRestart
			if data, err := encodeRecord(r, r.tx); err == nil {
				err = s.journal.UpdatePOS(r.jid, r.pos, r.key, data)
				if err != nil {
					return nil, fmt.Errorf("mark POS transaction %s unknown: %w", r.tx.ID, err)
				}
			}
			unresolved = append(unresolved, r)
		}
		s.st.add(r)
	}
	for len(s.st.order) > s.st.max {
		r := s.st.evict()
		if r == nil {
			break
		}
		evicted = append(evicted, r.jid)
	}
	if len(evicted) > 0 {
		if err := s.journal.DeletePOS(evicted...); err != nil {
			return nil, fmt.Errorf("evict POS transactions: %w", err)
		}
	}
	if len(recs) > 0 {
		s.log.Info("POS transactions loaded", "records", len(s.st.order), "unknown", len(unresolved), "evicted", len(evicted))
	}
	return unresolved, nil
}

// persist writes tx as rec's stored state. rec.wmu is held. A failure is
// logged: the answer the terminal gave stands, and after a restart the
// record comes back unknown and is resolved again.
func (s *Server) persist(rec *record, jid uint64, tx Transaction) {
	if s.journal == nil || jid == 0 {
		return
	}
	data, err := encodeRecord(rec, tx)
	if err == nil {
		err = s.journal.UpdatePOS(jid, rec.pos, rec.key, data)
	}
	if err != nil {
		s.log.Error("POS transaction update not durable", "pos", rec.pos, "id", tx.ID, "status", tx.Status, "reason", err)
	}
}

// forget deletes evicted or dropped records from the journal.
func (s *Server) forget(recs ...*record) {
	if s.journal == nil {
		return
	}
	ids := make([]uint64, 0, len(recs))
	for _, r := range recs {
		if r.jid != 0 {
			ids = append(ids, r.jid)
		}
	}
	if len(ids) == 0 {
		return
	}
	if err := s.journal.DeletePOS(ids...); err != nil {
		s.log.Error("forgotten POS transactions not deleted from the store", "records", len(ids), "reason", err)
	}
}

// resolve asks the terminal for rec's outcome until it is final or the
// server closes, waiting ResolveRetry (doubling to 30s) between attempts.
func (s *Server) resolve(res Resolver, rec *record) {
	defer func() {
		s.mu.Lock()
		if s.resolving[rec.tx.TerminalID] == rec {
			delete(s.resolving, rec.tx.TerminalID)
		}
		s.mu.Unlock()
	}()
	s.mu.Lock()
	tx := rec.tx
	s.mu.Unlock()
	cmd := tlink.TxnCommand{Ref: tx.ID, Amount: tx.Amount, Currency: tx.Currency, OrigRef: tx.OriginalID}
	wait := s.retry
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		r, err := res.Resolve(s.ctx, tx.TerminalID, rec.kind, cmd)
		if err == nil && r.Outcome.Final() && r.Ref == tx.ID {
			s.settle(r)
			return
		}
		s.mu.Lock()
		settled := final(rec.tx.Status)
		s.mu.Unlock()
		if settled {
			return
		}
		s.log.Debug("transaction from before the restart not resolved yet; will ask again", "terminal", tx.TerminalID, "id", tx.ID, "reason", err)
		t.Reset(wait)
		wait = min(2*wait, 30*time.Second)
	}
}
