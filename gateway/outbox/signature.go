package outbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/sigcap"
)

// Defaults of SignatureQueue.
const (
	DefaultSignatureQueue    = 256
	DefaultSignatureRetry    = time.Second
	DefaultSignatureRetryMax = time.Minute
	DefaultSignatureMaxAge   = 24 * time.Hour
)

// Sentinel errors of the signature queue.
var (
	// ErrSignatureQueueFull means the queue holds MaxQueued signatures; the
	// new one is refused (the terminal is told refused).
	ErrSignatureQueueFull = errors.New("outbox: signature queue full")
	// ErrSignatureRefused reports a 1314 with action code 904: the center
	// cannot read the record; sending it again would not help.
	ErrSignatureRefused = errors.New("outbox: center refused the signature record")
)

// SignatureQueue takes the signatures the device manager reassembles
// (device.SignatureSink) and delivers them to the center as 1304 file
// actions (DE 101 SIGCAP, DE 24 301, DE 72 one sigcap record per message,
// docs/signatures.md), in order of arrival, one signature at a time.
//
// With a Store, Accept writes the signature durably (fsync) before it
// returns, so before the terminal is told "complete"; the record is
// deleted when the center has taken the last chunk (or the signature is
// dropped), and Run first queues the signatures a previous run left,
// ahead of new ones, sending them again from offset 0 (the center answers
// a chunk or a signature it already holds with 000). Without a Store the
// queue is in memory only. A chunk the center answers 000 is done; 904 drops the
// signature (malformed: resending cannot help); anything else (no link,
// 909, 914 because the sale's advice has not reached the center yet) is
// retried with a doubling wait from Retry to RetryMax until the signature
// is MaxAge old, then it is dropped with a log line.
//
// Run owns the one delivery goroutine; Accept and Len are safe for
// concurrent use with it.
type SignatureQueue struct {
	Uplink    Uplink
	GatewayID string
	Logger    *slog.Logger
	// MaxQueued bounds the signatures held. Default DefaultSignatureQueue.
	MaxQueued int
	// Retry is the first wait after a failed chunk; it doubles up to
	// RetryMax. Defaults DefaultSignatureRetry, DefaultSignatureRetryMax.
	Retry, RetryMax time.Duration
	// MaxAge is how long a signature is retried. Default
	// DefaultSignatureMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Store keeps the queued signatures across restarts; nil: memory
	// only.
	Store SignatureStore

	mu       sync.Mutex
	q        []*queuedSig
	reserved int             // Accepts between the limit check and the append
	known    map[uint64]bool // store ids queued by this process
	wake     chan struct{}   // a signature was queued
	kick     chan struct{}   // Wake: retry the head now
	stan     atomic.Uint32
	sent     atomic.Uint64
	accepted atomic.Uint64 // signatures Accept queued
}

type queuedSig struct {
	chunks []sigcap.Chunk
	next   int // index of the next chunk to send
	since  time.Time
	ref    string // for logs
	id     uint64 // store id; 0 when not stored
}

// SignatureStore keeps queued signatures across restarts (the offline
// store's gw.signature bucket, docs/offline.md). *offline.Store satisfies
// it. AddSignature returns after the record is durable.
type SignatureStore interface {
	AddSignature(key string, data []byte) (uint64, error)
	DeleteSignature(ids ...uint64) error
	LoadSignatures(fn func(id uint64, key string, data []byte, err error)) error
}

// storedSig is the sealed payload of a stored signature (docs/offline.md).
type storedSig struct {
	V          int    `json:"v"`
	Ref        string `json:"ref,omitempty"`
	MTI        string `json:"mti,omitempty"`
	TerminalID string `json:"t"`
	STAN       string `json:"s"`
	LocalTime  string `json:"l"`
	Key        string `json:"k"`
	Format     uint8  `json:"f"`
	Data       []byte `json:"d"`
	At         int64  `json:"at"`
}

// decodeStoredSig reads a stored signature back into its chunks.
func decodeStoredSig(id uint64, b []byte) (*queuedSig, error) {
	var r storedSig
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode stored signature: %w", err)
	}
	if r.V != 1 {
		return nil, fmt.Errorf("stored signature version %d, want 1", r.V)
	}
	chunks, err := sigcap.Split(sigcap.Chunk{TerminalID: r.TerminalID, STAN: r.STAN, LocalTime: r.LocalTime,
		IdempotencyKey: r.Key, Format: r.Format}, r.Data)
	if err != nil {
		return nil, fmt.Errorf("stored signature: %w", err)
	}
	return &queuedSig{chunks: chunks, since: time.Unix(0, r.At), ref: r.Ref, id: id}, nil
}

func (q *SignatureQueue) now() time.Time {
	if q.Now != nil {
		return q.Now()
	}
	return time.Now()
}

func (q *SignatureQueue) log() *slog.Logger {
	if q.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return q.Logger
}

func (q *SignatureQueue) signal() chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.initChans()
	return q.wake
}

// initChans makes the wake-up channels; q.mu must be held.
func (q *SignatureQueue) initChans() {
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
		q.kick = make(chan struct{}, 1)
	}
}

// Wake ends a retry wait now and restarts the retry interval at Retry:
// the reason of the last failure may be gone (the gateway calls it when
// offline advices reached the center, so the signatures of those sales
// are no longer answered 914). It never blocks.
func (q *SignatureQueue) Wake() {
	q.mu.Lock()
	q.initChans()
	kick := q.kick
	q.mu.Unlock()
	select {
	case kick <- struct{}{}:
	default:
	}
}

// Accept queues s for delivery (device.SignatureSink). It refuses a
// signature without the sale's identifiers or over the size limit, and
// returns ErrSignatureQueueFull when the queue is full. With a Store it
// returns nil only once the signature is durable; a store failure refuses
// it.
func (q *SignatureQueue) Accept(_ context.Context, s device.Signature) error {
	chunks, err := sigcap.Split(sigcap.Chunk{TerminalID: s.TerminalID, STAN: s.STAN, LocalTime: s.LocalTime,
		IdempotencyKey: s.IdempotencyKey, Format: uint8(s.Format)}, s.Data)
	if err != nil {
		return fmt.Errorf("queue signature for STAN %s: %w", s.STAN, err)
	}
	limit := q.MaxQueued
	if limit <= 0 {
		limit = DefaultSignatureQueue
	}
	wake := q.signal()
	q.mu.Lock()
	if len(q.q)+q.reserved >= limit {
		q.mu.Unlock()
		return fmt.Errorf("queue signature for STAN %s: %w", s.STAN, ErrSignatureQueueFull)
	}
	q.reserved++
	q.mu.Unlock()
	qs := &queuedSig{chunks: chunks, since: q.now(), ref: s.Ref}
	if q.Store != nil {
		b, err := json.Marshal(storedSig{V: 1, Ref: s.Ref, MTI: s.MTI, TerminalID: s.TerminalID, STAN: s.STAN,
			LocalTime: s.LocalTime, Key: s.IdempotencyKey, Format: uint8(s.Format), Data: s.Data, At: qs.since.UnixNano()})
		if err == nil {
			qs.id, err = q.Store.AddSignature(s.IdempotencyKey, b)
		}
		if err != nil {
			q.mu.Lock()
			q.reserved--
			q.mu.Unlock()
			return fmt.Errorf("queue signature for STAN %s: store: %w", s.STAN, err)
		}
	}
	q.mu.Lock()
	q.reserved--
	q.q = append(q.q, qs)
	if qs.id != 0 {
		if q.known == nil {
			q.known = make(map[uint64]bool)
		}
		q.known[qs.id] = true
	}
	q.mu.Unlock()
	q.accepted.Add(1)
	select {
	case wake <- struct{}{}:
	default:
	}
	return nil
}

// Accepted returns how many signatures Accept has queued since the queue
// started (with a Store: made durable).
func (q *SignatureQueue) Accepted() uint64 { return q.accepted.Load() }

// Len returns how many signatures wait for delivery.
func (q *SignatureQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q)
}

// Delivered returns how many signatures the center has taken since start.
func (q *SignatureQueue) Delivered() uint64 { return q.sent.Load() }

// load queues, ahead of those accepted since start, the signatures a
// previous run stored. A record that cannot be read is logged and left in
// the store.
func (q *SignatureQueue) load() {
	if q.Store == nil {
		return
	}
	var old []*queuedSig
	err := q.Store.LoadSignatures(func(id uint64, key string, data []byte, err error) {
		if err == nil {
			var s *queuedSig
			if s, err = decodeStoredSig(id, data); err == nil {
				old = append(old, s)
				return
			}
		}
		q.log().Error("stored signature unreadable; left in the store", "id", id, "reason", err)
	})
	if err != nil {
		q.log().Error("cannot load stored signatures", "reason", err)
	}
	q.mu.Lock()
	var n int
	q.q, n = requeue(q.q, old, q.known, func(s *queuedSig) uint64 { return s.id })
	q.mu.Unlock()
	if n > 0 {
		q.log().Info("signatures from before the restart queued", "count", n)
	}
}

// Run delivers queued signatures until ctx ends. It first queues the
// signatures a previous run left in the Store.
func (q *SignatureQueue) Run(ctx context.Context) {
	wake := q.signal()
	q.load()
	q.mu.Lock()
	kick := q.kick
	q.mu.Unlock()
	retry, retryMax, maxAge := q.Retry, q.RetryMax, q.MaxAge
	if retry <= 0 {
		retry = DefaultSignatureRetry
	}
	if retryMax <= 0 {
		retryMax = DefaultSignatureRetryMax
	}
	if maxAge <= 0 {
		maxAge = DefaultSignatureMaxAge
	}
	wait := retry
	for {
		q.mu.Lock()
		var head *queuedSig
		if len(q.q) > 0 {
			head = q.q[0]
		}
		q.mu.Unlock()
		if head == nil {
			select {
			case <-ctx.Done():
				return
			case <-wake:
				continue
			case <-kick: // nothing to retry
				continue
			}
		}
		err := q.sendChunk(ctx, head.chunks[head.next])
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			wait = retry
			head.next++
			if head.next < len(head.chunks) {
				continue
			}
			q.sent.Add(1)
			q.log().Info("signature delivered to the center", "ref", head.ref, "stan", head.chunks[0].STAN, "bytes", head.chunks[0].Total)
			q.pop(head)
			continue
		case errors.Is(err, ErrSignatureRefused):
			q.log().Error("signature dropped: the center refused it", "ref", head.ref, "stan", head.chunks[0].STAN, "reason", err)
			q.pop(head)
			continue
		case q.now().Sub(head.since) > maxAge:
			q.log().Error("signature dropped: not delivered in time", "ref", head.ref, "stan", head.chunks[0].STAN, "max_age", maxAge, "reason", err)
			q.pop(head)
			continue
		}
		q.log().Warn("signature chunk not delivered; will retry", "ref", head.ref, "stan", head.chunks[0].STAN, "offset", head.chunks[head.next].Offset, "wait", wait, "reason", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-kick:
			t.Stop()
			wait = retry
			continue
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// pop removes s, delivered or dropped, from the queue and the store.
func (q *SignatureQueue) pop(s *queuedSig) {
	if s.id != 0 {
		if err := q.Store.DeleteSignature(s.id); err != nil {
			// Sent again after a restart: the center answers a signature
			// it holds with 000.
			q.log().Error("signature not deleted from the store", "ref", s.ref, "stan", s.chunks[0].STAN, "reason", err)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) > 0 && q.q[0] == s {
		q.q = q.q[1:]
	}
	if s.id != 0 {
		delete(q.known, s.id)
	}
}

// chunkKey is DE 123 of a chunk's 1304: derived from the sale's key and the
// offset, identical on every repeat, at most 49 characters.
func chunkKey(c sigcap.Chunk) string {
	h := sha256.Sum256([]byte(c.IdempotencyKey))
	return "SG-" + hex.EncodeToString(h[:20]) + "-" + strconv.FormatUint(uint64(c.Offset), 10)
}

// sendChunk sends one 1304 and reads its 1314. It returns nil for 000,
// ErrSignatureRefused for 904 and another error otherwise.
func (q *SignatureQueue) sendChunk(ctx context.Context, c sigcap.Chunk) error {
	now := q.now()
	raw, err := sigcap.PackRecord(iso93.Trace{
		TransmissionTime: iso93.TransmissionTime(now),
		STAN:             iso93.FormatSTAN(iso93.NextSTAN(q.stan.Add(1))),
		LocalTime:        iso93.LocalTime(now),
		IdempotencyKey:   chunkKey(c),
		GatewayID:        q.GatewayID,
	}, c)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignatureRefused, err)
	}
	resp, err := q.Uplink.RoundTrip(ctx, raw)
	if err != nil {
		return fmt.Errorf("send signature chunk: %w", err)
	}
	action, err := sigcap.ParseAnswer(resp)
	if err != nil {
		return fmt.Errorf("read signature answer: %w", err)
	}
	switch action {
	case iso93.ActionApproved:
		return nil
	case iso93.ActionFormatError:
		return fmt.Errorf("%w: action %s", ErrSignatureRefused, action)
	}
	return fmt.Errorf("center answered the signature chunk with action %s", action)
}
