package offline

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrPOSRecord reports a stored POS transaction record whose framing
// (POS id and idempotency key in front of the sealed payload) is broken.
var ErrPOSRecord = errors.New("offline: malformed POS transaction record")

// The POS API's transaction records (docs/offline.md, "POS transactions")
// are the bucket journal in the top-level bucket pos.

// posAAD is the additional data a POS record is sealed with: a payload
// moved under another POS id or idempotency key does not open.
func posAAD(pos, key string) []byte {
	b := make([]byte, 0, 24+len(pos)+len(key))
	b = append(b, "posgate/offline/pos/v1"...)
	b = append(b, 0)
	b = append(b, pos...)
	b = append(b, 0)
	return append(b, key...)
}

func checkPOS(pos, key string) error {
	if n := len(pos); n == 0 || n > 255 {
		return fmt.Errorf("POS id of %d characters: %w", n, ErrInvalidRequest)
	}
	if n := len(key); n == 0 || n > 255 {
		return fmt.Errorf("idempotency key of %d characters: %w", n, ErrInvalidRequest)
	}
	return nil
}

// posFrame is len(pos) (1) ‖ pos ‖ len(key) (1) ‖ key ‖ sealed.
func posFrame(pos, key string, sealed []byte) []byte {
	v := make([]byte, 0, 2+len(pos)+len(key)+len(sealed))
	v = append(v, byte(len(pos)))
	v = append(v, pos...)
	v = append(v, byte(len(key)))
	v = append(v, key...)
	return append(v, sealed...)
}

// posUnframe splits a stored value; the sealed part aliases v.
func posUnframe(v []byte) (pos, key string, sealed []byte, err error) {
	if len(v) < 1 || int(v[0]) == 0 || len(v) < 2+int(v[0]) {
		return "", "", nil, ErrPOSRecord
	}
	pos, v = string(v[1:1+int(v[0])]), v[1+int(v[0]):]
	if int(v[0]) == 0 || len(v) < 1+int(v[0]) {
		return "", "", nil, ErrPOSRecord
	}
	key, sealed = string(v[1:1+int(v[0])]), v[1+int(v[0]):]
	if len(sealed) == 0 {
		return "", "", nil, ErrPOSRecord
	}
	return pos, key, sealed, nil
}

// AddPOS stores a new POS API transaction record for (pos, key) durably
// (fsync) and returns its id; ids grow in commit order and are never
// reused. data is opaque to the store (the POS API's JSON) and is sealed
// like every record at rest. The store does not check that (pos, key) is
// unique: the POS API does. On an error nothing was stored.
func (s *Store) AddPOS(pos, key string, data []byte) (uint64, error) {
	s.c.expect()
	expected := true
	defer func() {
		if expected {
			s.c.cancel()
		}
	}()
	if err := checkPOS(pos, key); err != nil {
		return 0, fmt.Errorf("add POS record: %w", err)
	}
	sealed, err := s.seal.Seal(data, posAAD(pos, key))
	if err != nil {
		return 0, fmt.Errorf("add POS record: seal: %w (%w)", err, ErrRecordSeal)
	}
	v := posFrame(pos, key, sealed)
	var id uint64
	expected = false // submit takes the announcement over
	err = s.c.submit(func(tx *bolt.Tx) error {
		b := posJournal(tx)
		n, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next POS record id: %w (%w)", err, ErrStorage)
		}
		if err := b.Put(u64(n), v); err != nil {
			return fmt.Errorf("store POS record: %w (%w)", err, ErrStorage)
		}
		id = n
		return nil
	}, true)
	if err != nil {
		return 0, fmt.Errorf("add POS record: %w", err)
	}
	return id, nil
}

// UpdatePOS replaces the data of POS record id durably (fsync). pos and
// key must be those it was added with (else ErrInvalidRequest); an id not
// in the store gives ErrNotFound. On an error the record is unchanged.
func (s *Store) UpdatePOS(id uint64, pos, key string, data []byte) error {
	s.c.expect()
	expected := true
	defer func() {
		if expected {
			s.c.cancel()
		}
	}()
	if err := checkPOS(pos, key); err != nil {
		return fmt.Errorf("update POS record %d: %w", id, err)
	}
	sealed, err := s.seal.Seal(data, posAAD(pos, key))
	if err != nil {
		return fmt.Errorf("update POS record %d: seal: %w (%w)", id, err, ErrRecordSeal)
	}
	v := posFrame(pos, key, sealed)
	expected = false
	err = s.c.submit(func(tx *bolt.Tx) error {
		b := posJournal(tx)
		old := b.Get(u64(id))
		if old == nil {
			return ErrNotFound
		}
		op, ok, _, err := posUnframe(old)
		if err != nil {
			return err
		}
		if op != pos || ok != key {
			return fmt.Errorf("stored under another POS id or key: %w", ErrInvalidRequest)
		}
		if err := b.Put(u64(id), v); err != nil {
			return fmt.Errorf("store POS record: %w (%w)", err, ErrStorage)
		}
		return nil
	}, true)
	if err != nil {
		return fmt.Errorf("update POS record %d: %w", id, err)
	}
	return nil
}

// DeletePOS deletes the POS records ids in one durable transaction; ids
// not in the store are ignored.
func (s *Store) DeletePOS(ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.c.do(func(tx *bolt.Tx) error {
		b := posJournal(tx)
		for _, id := range ids {
			if err := b.Delete(u64(id)); err != nil {
				return fmt.Errorf("delete POS record %d: %w (%w)", id, err, ErrStorage)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete POS records: %w", err)
	}
	return nil
}

// LoadPOS calls fn with every POS record in id order (the order they were
// added). A record that cannot be read is passed with a non-nil err
// wrapping ErrPOSRecord (broken framing: pos and key are empty) or
// ErrRecordSeal (the payload does not open: pos and key are those stored
// in front of it); fn decides what to do with it. LoadPOS returns an error
// only when the file cannot be read. fn runs outside any transaction and
// may call the store's other methods.
func (s *Store) LoadPOS(fn func(id uint64, pos, key string, data []byte, err error)) error {
	type raw struct {
		id uint64
		v  []byte
	}
	var all []raw
	err := s.view(func(tx *bolt.Tx) error {
		return posJournal(tx).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				all = append(all, raw{0, nil})
				return nil
			}
			all = append(all, raw{binary.BigEndian.Uint64(k), append([]byte(nil), v...)})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load POS records: %w", err)
	}
	for _, r := range all {
		pos, key, sealed, err := posUnframe(r.v)
		if err != nil || r.id == 0 {
			fn(r.id, "", "", nil, fmt.Errorf("POS record %d: %w", r.id, ErrPOSRecord))
			continue
		}
		data, err := s.seal.Open(sealed, posAAD(pos, key))
		if err != nil {
			fn(r.id, pos, key, nil, fmt.Errorf("POS record %d: open: %w (%w)", r.id, err, ErrRecordSeal))
			continue
		}
		fn(r.id, pos, key, data, nil)
	}
	return nil
}
