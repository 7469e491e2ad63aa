package offline

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posgate/posgate/protocol/negfile"
)

// NegativeState describes the negative file in force and any sync session
// in progress.
type NegativeState struct {
	// Loaded is false until a first snapshot has been applied.
	Loaded bool
	// Version is the version in force (meaningful when Loaded).
	Version uint64
	// SyncedAt is when the file was last completed or confirmed current.
	SyncedAt time.Time
	// Session is the sync session in progress, if any.
	Session *Session
}

// Session is a partly received sync session: chunks 1..Next-1 of
// (Op, Base, Version, Total) are staged. The next sync either resumes by
// sending chunk Next or restarts by sending chunk 1 of any session.
type Session struct {
	Snapshot bool
	Base     uint64
	Version  uint64
	Total    uint32
	Next     uint32
}

// Progress is the result of ApplyChunk.
type Progress struct {
	// Version is the version in force after the call.
	Version uint64
	// Complete is true when this chunk completed its session and its
	// version is now in force.
	Complete bool
	// Next is the next chunk the session expects (0 when complete).
	Next uint32
	// Duplicate is true when the chunk had already been applied and was
	// ignored.
	Duplicate bool
}

// present is the value of a negative-file key (bbolt's Get cannot tell an
// empty value from a missing key in every case).
var present = []byte{1}

type session struct {
	Session
	last [16]byte // last snapshot fingerprint staged
}

func (s *session) encode() []byte {
	b := make([]byte, 0, 1+8+8+4+4+16)
	snap := byte(0)
	if s.Snapshot {
		snap = 1
	}
	b = append(b, snap)
	b = binary.BigEndian.AppendUint64(b, s.Base)
	b = binary.BigEndian.AppendUint64(b, s.Version)
	b = binary.BigEndian.AppendUint32(b, s.Total)
	b = binary.BigEndian.AppendUint32(b, s.Next)
	return append(b, s.last[:]...)
}

func decodeSession(b []byte) (*session, bool) {
	if len(b) != 1+8+8+4+4+16 {
		return nil, false
	}
	s := &session{}
	s.Snapshot = b[0] == 1
	s.Base = binary.BigEndian.Uint64(b[1:])
	s.Version = binary.BigEndian.Uint64(b[9:])
	s.Total = binary.BigEndian.Uint32(b[17:])
	s.Next = binary.BigEndian.Uint32(b[21:])
	copy(s.last[:], b[25:])
	return s, true
}

// negMeta reads the negative file's state inside tx.
type negMeta struct {
	loaded   bool
	version  uint64
	synced   time.Time
	live     []byte // live bucket name (in negative)
	inactive []byte
	sess     *session
}

func readNegMeta(tx *bolt.Tx) negMeta {
	meta := negative(tx)
	m := negMeta{live: bNegA, inactive: bNegB}
	if bytes.Equal(meta.Get(kNegLive), bNegB) {
		m.live, m.inactive = bNegB, bNegA
	}
	if v := meta.Get(kNegVer); len(v) == 8 {
		m.loaded, m.version = true, binary.BigEndian.Uint64(v)
	}
	if v := meta.Get(kNegSynced); len(v) == 8 {
		m.synced = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	}
	if v := meta.Get(kNegSess); v != nil {
		m.sess, _ = decodeSession(v)
	}
	return m
}

// ApplyChunk applies one decoded chunk of a negative-file sync session
// (see negfile and docs/offline.md) and returns once it is durable.
//
// Chunk 1 of any session starts it afresh, discarding whatever another
// session had staged; later chunks must continue the session in progress
// in order. Staged chunks survive a restart. Only the last chunk changes
// what Lookup sees: it puts the new version in force in the same
// transaction, so a cut before it leaves the previous version in force.
// A chunk already applied is ignored (Progress.Duplicate). On any error
// nothing changes.
func (s *Store) ApplyChunk(c negfile.Chunk) (Progress, error) {
	if err := c.Validate(); err != nil {
		return Progress{}, fmt.Errorf("apply negative-file chunk: %w (%w)", err, ErrCorruptChunk)
	}
	var p Progress
	err := s.c.do(func(tx *bolt.Tx) error {
		p = Progress{}
		return s.applyChunk(tx, c, &p)
	})
	if err != nil {
		return Progress{}, fmt.Errorf("apply negative-file chunk %d/%d of version %d: %w", c.Seq, c.Total, c.Version, err)
	}
	return p, nil
}

func (s *Store) applyChunk(tx *bolt.Tx, c negfile.Chunk, p *Progress) error {
	m := readNegMeta(tx)
	meta := negative(tx)
	p.Version = m.version
	if m.loaded {
		if c.Snapshot() && c.Version < m.version {
			return fmt.Errorf("snapshot of version %d while %d is in force: %w", c.Version, m.version, ErrVersionBackwards)
		}
		if !c.Snapshot() && c.Version <= m.version {
			return fmt.Errorf("delta to version %d while %d is in force: %w", c.Version, m.version, ErrVersionBackwards)
		}
	}
	if !c.Snapshot() && (!m.loaded || c.Base != m.version) {
		return fmt.Errorf("delta from version %d: %w", c.Base, ErrBaseMismatch)
	}
	sess := m.sess
	same := sess != nil && sess.Snapshot == c.Snapshot() && sess.Base == c.Base && sess.Version == c.Version && sess.Total == c.Total
	switch {
	case same && c.Seq < sess.Next:
		p.Duplicate, p.Next = true, sess.Next
		return nil
	case c.Seq == 1:
		sess = &session{Session: Session{Snapshot: c.Snapshot(), Base: c.Base, Version: c.Version, Total: c.Total, Next: 1}}
		staging := bNegDelta
		if c.Snapshot() {
			staging = m.inactive
		}
		if err := meta.DeleteBucket(staging); err != nil {
			return fmt.Errorf("clear staging: %w (%w)", err, ErrStorage)
		}
		if _, err := meta.CreateBucket(staging); err != nil {
			return fmt.Errorf("clear staging: %w (%w)", err, ErrStorage)
		}
	case !same:
		return ErrSessionMismatch
	case c.Seq != sess.Next:
		return fmt.Errorf("chunk %d while %d is next: %w", c.Seq, sess.Next, ErrOutOfOrder)
	}
	var key [16]byte
	if c.Snapshot() {
		b := meta.Bucket(m.inactive)
		b.FillPercent = 1.0 // records arrive in ascending order
		for i, fp := range c.Fingerprints {
			if _, err := hex.Decode(key[:], []byte(fp)); err != nil {
				return fmt.Errorf("record %d: %w", i, ErrCorruptChunk)
			}
			if (c.Seq > 1 || i > 0) && bytes.Compare(key[:], sess.last[:]) <= 0 {
				return fmt.Errorf("snapshot record %d not above the previous one: %w", i, ErrCorruptChunk)
			}
			if err := b.Put(bytes.Clone(key[:]), present); err != nil {
				return fmt.Errorf("stage snapshot record: %w (%w)", err, ErrStorage)
			}
			sess.last = key
		}
	} else {
		b := meta.Bucket(bNegDelta)
		for i, fp := range c.Fingerprints {
			if _, err := hex.Decode(key[:], []byte(fp)); err != nil {
				return fmt.Errorf("record %d: %w", i, ErrCorruptChunk)
			}
			// Set semantics: the last operation on a fingerprint wins.
			if err := b.Put(bytes.Clone(key[:]), []byte{byte(c.Op)}); err != nil {
				return fmt.Errorf("stage delta record: %w (%w)", err, ErrStorage)
			}
		}
	}
	sess.Next = c.Seq + 1
	if c.Seq < c.Total {
		p.Next = sess.Next
		if err := meta.Put(kNegSess, sess.encode()); err != nil {
			return fmt.Errorf("save sync session: %w (%w)", err, ErrStorage)
		}
		return nil
	}
	// Last chunk: put the new version in force atomically.
	if c.Snapshot() {
		if err := meta.Put(kNegLive, bytes.Clone(m.inactive)); err != nil {
			return fmt.Errorf("switch negative file: %w (%w)", err, ErrStorage)
		}
	} else {
		live := meta.Bucket(m.live)
		err := meta.Bucket(bNegDelta).ForEach(func(k, v []byte) error {
			if len(v) == 1 && v[0] == byte(negfile.OpDelete) {
				return live.Delete(k)
			}
			return live.Put(k, present)
		})
		if err != nil {
			return fmt.Errorf("apply delta: %w (%w)", err, ErrStorage)
		}
		if err := meta.DeleteBucket(bNegDelta); err != nil {
			return fmt.Errorf("clear staging: %w (%w)", err, ErrStorage)
		}
		if _, err := meta.CreateBucket(bNegDelta); err != nil {
			return fmt.Errorf("clear staging: %w (%w)", err, ErrStorage)
		}
	}
	if err := meta.Delete(kNegSess); err != nil {
		return fmt.Errorf("end sync session: %w (%w)", err, ErrStorage)
	}
	if err := meta.Put(kNegVer, u64(c.Version)); err != nil {
		return fmt.Errorf("set negative-file version: %w (%w)", err, ErrStorage)
	}
	if err := meta.Put(kNegSynced, u64(uint64(s.now().UnixNano()))); err != nil {
		return fmt.Errorf("set negative-file sync time: %w (%w)", err, ErrStorage)
	}
	p.Version, p.Complete, p.Next = c.Version, true, 0
	return nil
}

// ApplyFileAction parses the DE 72 data record of a 1304 with function
// code functionCode (DE 24) and applies it; see negfile.ParseFileAction
// and ApplyChunk.
func (s *Store) ApplyFileAction(functionCode string, de72 []byte) (Progress, error) {
	c, err := negfile.ParseFileAction(functionCode, de72)
	if err != nil {
		return Progress{}, fmt.Errorf("apply 1304: %w (%w)", err, ErrCorruptChunk)
	}
	return s.ApplyChunk(c)
}

// Confirm records that the center reports version as its current one (at
// sign-on, or in an 881 notification). When the version in force is that
// version, the file counts as fresh from now; Confirm returns whether it
// is (false: a sync is needed).
func (s *Store) Confirm(version uint64) (bool, error) {
	var current bool
	err := s.c.do(func(tx *bolt.Tx) error {
		m := readNegMeta(tx)
		current = m.loaded && m.version == version
		if !current {
			return nil
		}
		return negative(tx).Put(kNegSynced, u64(uint64(s.now().UnixNano())))
	})
	if err != nil {
		return false, fmt.Errorf("confirm negative-file version %d: %w", version, err)
	}
	return current, nil
}

// Negative returns the negative file's state.
func (s *Store) Negative() (NegativeState, error) {
	var st NegativeState
	err := s.view(func(tx *bolt.Tx) error {
		m := readNegMeta(tx)
		st = NegativeState{Loaded: m.loaded, Version: m.version, SyncedAt: m.synced}
		if m.sess != nil {
			ss := m.sess.Session
			st.Session = &ss
		}
		return nil
	})
	if err != nil {
		return NegativeState{}, fmt.Errorf("read negative-file state: %w", err)
	}
	return st, nil
}

// Blocked reports whether fingerprint (32 lower-case hex) is on the
// negative file in force. A malformed fingerprint is an ErrInvalidRequest.
func (s *Store) Blocked(fingerprint string) (bool, error) {
	var key [16]byte
	if err := fpKey(fingerprint, &key); err != nil {
		return false, err
	}
	var hit bool
	err := s.view(func(tx *bolt.Tx) error {
		hit = negHit(tx, key[:])
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("negative-file lookup: %w", err)
	}
	return hit, nil
}

func negHit(tx *bolt.Tx, key []byte) bool {
	neg := negative(tx)
	live := bNegA
	if bytes.Equal(neg.Get(kNegLive), bNegB) {
		live = bNegB
	}
	return neg.Bucket(live).Get(key) != nil
}

func fpKey(fp string, key *[16]byte) error {
	if len(fp) != 32 {
		return fmt.Errorf("fingerprint of %d characters: %w", len(fp), ErrInvalidRequest)
	}
	for i := 0; i < len(fp); i++ {
		if c := fp[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("fingerprint is not lower-case hex: %w", ErrInvalidRequest)
		}
	}
	_, _ = hex.Decode(key[:], []byte(fp))
	return nil
}
