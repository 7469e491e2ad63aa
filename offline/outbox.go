package offline

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrOutboxRecord reports a stored timeout reversal or signature whose
// framing (the key in front of the sealed payload) is broken.
var ErrOutboxRecord = errors.New("offline: malformed reversal or signature record")

// The gateway's outboxes hold messages it owes the center that are not
// offline approvals (docs/offline.md, "Timeout reversals and signatures"):
// the buckets reversal and signature in the top-level bucket outbox.

// outbox is one of the two buckets with the additional data its records
// are sealed with.
type outbox struct {
	bucket []byte
	aad    string
	what   string // for errors
}

var (
	reversals  = outbox{bReversal, "posgate/offline/reversal/v1", "reversal"}
	signatures = outbox{bSignature, "posgate/offline/signature/v1", "signature"}
)

// aadFor binds a sealed payload to its outbox and key: a payload moved to
// the other outbox or under another key does not open.
func (o outbox) aadFor(key string) []byte {
	b := make([]byte, 0, len(o.aad)+1+len(key))
	b = append(b, o.aad...)
	b = append(b, 0)
	return append(b, key...)
}

// outboxFrame is len(key) (1) ‖ key ‖ sealed.
func outboxFrame(key string, sealed []byte) []byte {
	v := make([]byte, 0, 1+len(key)+len(sealed))
	v = append(v, byte(len(key)))
	v = append(v, key...)
	return append(v, sealed...)
}

// outboxUnframe splits a stored value; the sealed part aliases v.
func outboxUnframe(v []byte) (key string, sealed []byte, err error) {
	if len(v) < 1 || v[0] == 0 || len(v) < 1+int(v[0]) {
		return "", nil, ErrOutboxRecord
	}
	key, sealed = string(v[1:1+int(v[0])]), v[1+int(v[0]):]
	if len(sealed) == 0 {
		return "", nil, ErrOutboxRecord
	}
	return key, sealed, nil
}

func (s *Store) outboxAdd(o outbox, key string, data []byte) (uint64, error) {
	s.c.expect()
	expected := true
	defer func() {
		if expected {
			s.c.cancel()
		}
	}()
	if n := len(key); n == 0 || n > 255 {
		return 0, fmt.Errorf("add %s: key of %d characters: %w", o.what, n, ErrInvalidRequest)
	}
	if len(data) == 0 {
		return 0, fmt.Errorf("add %s: no data: %w", o.what, ErrInvalidRequest)
	}
	sealed, err := s.seal.Seal(data, o.aadFor(key))
	if err != nil {
		return 0, fmt.Errorf("add %s: seal: %w (%w)", o.what, err, ErrRecordSeal)
	}
	v := outboxFrame(key, sealed)
	var id uint64
	expected = false // submit takes the announcement over
	err = s.c.submit(func(tx *bolt.Tx) error {
		b := outboxOf(tx, o.bucket)
		n, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next %s id: %w (%w)", o.what, err, ErrStorage)
		}
		if err := b.Put(u64(n), v); err != nil {
			return fmt.Errorf("store %s: %w (%w)", o.what, err, ErrStorage)
		}
		id = n
		return nil
	}, true)
	if err != nil {
		return 0, fmt.Errorf("add %s: %w", o.what, err)
	}
	return id, nil
}

func (s *Store) outboxDelete(o outbox, ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.c.do(func(tx *bolt.Tx) error {
		b := outboxOf(tx, o.bucket)
		for _, id := range ids {
			if err := b.Delete(u64(id)); err != nil {
				return fmt.Errorf("delete %s %d: %w (%w)", o.what, id, err, ErrStorage)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s records: %w", o.what, err)
	}
	return nil
}

func (s *Store) outboxLoad(o outbox, fn func(id uint64, key string, data []byte, err error)) error {
	type raw struct {
		id uint64
		v  []byte
	}
	var all []raw
	err := s.view(func(tx *bolt.Tx) error {
		return outboxOf(tx, o.bucket).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				all = append(all, raw{0, nil})
				return nil
			}
			all = append(all, raw{binary.BigEndian.Uint64(k), append([]byte(nil), v...)})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load %s records: %w", o.what, err)
	}
	for _, r := range all {
		key, sealed, err := outboxUnframe(r.v)
		if err != nil || r.id == 0 {
			fn(r.id, "", nil, fmt.Errorf("%s record %d: %w", o.what, r.id, ErrOutboxRecord))
			continue
		}
		data, err := s.seal.Open(sealed, o.aadFor(key))
		if err != nil {
			fn(r.id, key, nil, fmt.Errorf("%s record %d: open: %w (%w)", o.what, r.id, err, ErrRecordSeal))
			continue
		}
		fn(r.id, key, data, nil)
	}
	return nil
}

// AddReversal stores a timeout reversal durably (fsync) and returns its
// id; ids grow in commit order and are never reused. key names it (the
// reversal's idempotency key, 1-255 characters); msg is opaque to the
// store (the gateway keeps the packed 1420, whose card data is only the
// fingerprint and the masked PAN) and is sealed like every record at
// rest. On an error nothing was stored.
func (s *Store) AddReversal(key string, msg []byte) (uint64, error) {
	return s.outboxAdd(reversals, key, msg)
}

// DeleteReversal deletes the reversals ids in one durable transaction;
// ids not in the store are ignored.
func (s *Store) DeleteReversal(ids ...uint64) error { return s.outboxDelete(reversals, ids) }

// LoadReversals calls fn with every stored reversal in id order. A record
// that cannot be read is passed with a non-nil err wrapping
// ErrOutboxRecord (broken framing: key is empty) or ErrRecordSeal (the
// payload does not open); fn decides what to do with it. LoadReversals
// returns an error only when the file cannot be read. fn runs outside any
// transaction and may call the store's other methods.
func (s *Store) LoadReversals(fn func(id uint64, key string, msg []byte, err error)) error {
	return s.outboxLoad(reversals, fn)
}

// AddSignature stores a captured signature waiting for delivery to the
// center durably (fsync) and returns its id; ids grow in commit order and
// are never reused. key names it (the sale's idempotency key, 1-255
// characters); data is opaque to the store and sealed. On an error
// nothing was stored.
func (s *Store) AddSignature(key string, data []byte) (uint64, error) {
	return s.outboxAdd(signatures, key, data)
}

// DeleteSignature deletes the signatures ids in one durable transaction;
// ids not in the store are ignored.
func (s *Store) DeleteSignature(ids ...uint64) error { return s.outboxDelete(signatures, ids) }

// LoadSignatures calls fn with every stored signature in id order, with
// the same error rules as LoadReversals.
func (s *Store) LoadSignatures(fn func(id uint64, key string, data []byte, err error)) error {
	return s.outboxLoad(signatures, fn)
}
