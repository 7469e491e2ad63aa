package center

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/negfile"
)

// NegFileServer answers gateways' 1304 negative-file inquiries with the next
// chunk they lack (docs/offline.md): a snapshot when they hold no file, a
// delta from the version they hold otherwise, resuming a staged session
// when it is still one the center can serve. Chunks are built with
// negfile.Split from the store's negative-file entries, adds and removes
// netted per fingerprint, so the chunks of one session are the same on
// every request. It remembers in memory which version each gateway last
// reported and exports it as cardcenter_negfile_gateway_version{gateway}.
//
// Entries expire: before it answers an inquiry, at most once per
// ExpireEvery, it runs Expire, which appends a removal (reason "expired")
// for every card whose entry in force is an add past its ExpiresAt, so an
// expired entry leaves the distributed file at the next version like any
// other removal and the chunks of a version never change.
//
// NegFileServer is safe for concurrent use.
type NegFileServer struct {
	Store  *store.Store
	Logger *slog.Logger
	// Now is the clock of expiry; nil means time.Now.
	Now func() time.Time
	// ExpireEvery is the least time between two expiry sweeps made by
	// Answer; zero means DefaultExpireEvery, negative never sweeps there.
	ExpireEvery time.Duration

	held *prometheus.GaugeVec

	mu         sync.Mutex
	cache      map[sessionKey][]negfile.Chunk // a few recent sessions
	order      []sessionKey
	lastExpire time.Time // guarded by mu
}

// DefaultExpireEvery is NegFileServer.ExpireEvery when zero.
const DefaultExpireEvery = time.Minute

// ExpiredReason is the reason of the removal Expire appends.
const ExpiredReason = "expired"

type sessionKey struct {
	snapshot      bool
	base, version uint64
}

const sessionCacheSize = 8

// NewNegFileServer returns a server on st, registering its gauge on reg
// (nil: not exported).
func NewNegFileServer(st *store.Store, reg prometheus.Registerer, log *slog.Logger) (*NegFileServer, error) {
	n := &NegFileServer{Store: st, Logger: log, cache: map[sessionKey][]negfile.Chunk{}}
	n.held = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cardcenter_negfile_gateway_version",
		Help: "Negative-file version each gateway last reported holding (-1: none loaded). In memory: reset when the center restarts.",
	}, []string{"gateway"})
	if reg != nil {
		if err := reg.Register(n.held); err != nil {
			return nil, fmt.Errorf("register negative-file metrics: %w", err)
		}
	}
	return n, nil
}

// fileAction answers a validated 1304 for h; without a NegFileServer it
// answers 902.
func (h *LinkHandler) fileAction(ctx context.Context, p link.Peer, msg *iso8583.Message) ([]byte, iso93.ActionCode, error) {
	if h.NegFile == nil {
		return replyFile(msg, iso93.ActionInvalidTransaction, nil)
	}
	return h.NegFile.Answer(ctx, p, msg)
}

// Answer answers one 1304 inquiry from gateway p: 000 with DE 72 the next
// chunk (DE 24 its function code), 000 without DE 72 when the gateway is
// current, 904 for a malformed inquiry or another file, 914 when the
// gateway holds a version the center does not have. A store failure is
// answered 909.
func (n *NegFileServer) Answer(ctx context.Context, p link.Peer, msg *iso8583.Message) ([]byte, iso93.ActionCode, error) {
	q, err := negfile.ReadInquiry(msg)
	if errors.Is(err, negfile.ErrNotNegFile) {
		n.Logger.Warn("negative-file inquiry refused", "gateway", p.GatewayID, "reason", "not a NEGFILE inquiry")
		return replyFile(msg, iso93.ActionFormatError, nil)
	}
	if err != nil {
		n.Logger.Warn("negative-file inquiry refused", "gateway", p.GatewayID, "reason", err)
		return replyFile(msg, iso93.ActionFormatError, nil)
	}
	n.maybeExpire(ctx)
	if q.Loaded {
		n.held.WithLabelValues(p.GatewayID).Set(float64(q.Have))
	} else {
		n.held.WithLabelValues(p.GatewayID).Set(-1)
	}
	var current int64
	if err := n.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		current, err = tx.NegativeFileVersion(ctx)
		return err
	}); err != nil {
		n.Logger.Error("negative-file inquiry failed", "gateway", p.GatewayID, "reason", err)
		return replyFile(msg, iso93.ActionSystemMalfunction, nil)
	}
	v := uint64(current)
	var (
		key sessionKey
		seq uint32 = 1
	)
	switch {
	case q.Loaded && q.Have == v:
		return replyFile(msg, iso93.ActionApproved, nil)
	case q.Loaded && q.Have > v:
		n.Logger.Error("gateway holds a negative-file version the center does not have", "gateway", p.GatewayID, "have", q.Have, "center", v)
		return replyFile(msg, iso93.ActionOriginalNotFound, nil)
	case q.Session != nil && n.resumable(q, v):
		s := q.Session
		key, seq = sessionKey{snapshot: s.Snapshot, base: s.Base, version: s.Version}, s.Next
	case q.Loaded:
		key = sessionKey{base: q.Have, version: v}
	default:
		key = sessionKey{snapshot: true, version: v}
	}
	chunks, err := n.session(ctx, key)
	if err != nil {
		n.Logger.Error("negative-file inquiry failed", "gateway", p.GatewayID, "reason", err)
		return replyFile(msg, iso93.ActionSystemMalfunction, nil)
	}
	if q.Session != nil && (int(seq) > len(chunks) || uint32(len(chunks)) != q.Session.Total) {
		// The staged session does not match what the center builds now
		// (entries expired meanwhile): restart it.
		seq = 1
	}
	return replyFile(msg, iso93.ActionApproved, &chunks[seq-1])
}

// resumable tells whether the gateway's staged session can be continued:
// it leads from what the gateway holds to a version the center has.
func (n *NegFileServer) resumable(q negfile.Inquiry, v uint64) bool {
	s := q.Session
	if s.Next < 2 || s.Next > s.Total || s.Version > v {
		return false
	}
	if s.Snapshot {
		return s.Base == 0 && (!q.Loaded || s.Version >= q.Have)
	}
	return q.Loaded && s.Base == q.Have && s.Base < s.Version
}

// session returns the chunks of one session, from the cache or built from
// the store.
func (n *NegFileServer) session(ctx context.Context, k sessionKey) ([]negfile.Chunk, error) {
	n.mu.Lock()
	c, ok := n.cache[k]
	n.mu.Unlock()
	if ok {
		return c, nil
	}
	var entries []store.NegativeEntry
	from := k.base
	if k.snapshot {
		from = 0
	}
	if err := n.Store.View(ctx, func(tx *store.Tx) error {
		// Versions are gapless, one per entry: (from, version] is exactly
		// version-from entries. Read in pages to bound each query.
		for next := int64(from); next < int64(k.version); {
			page, err := tx.NegativeEntries(ctx, next, int(min(int64(k.version)-next, 10_000)))
			if err != nil {
				return err
			}
			if len(page) == 0 {
				return fmt.Errorf("negative-file entries after version %d missing", next)
			}
			entries = append(entries, page...)
			next = page[len(page)-1].Version
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read negative-file entries: %w", err)
	}
	// Net per fingerprint: the last change in the range wins.
	last := map[string]store.NegativeAction{}
	for _, e := range entries {
		if e.Version > int64(k.version) {
			break
		}
		last[e.Fingerprint] = e.Action
	}
	var adds, dels []string
	for fp, a := range last {
		if a == store.NegativeAdd {
			adds = append(adds, fp)
		} else if !k.snapshot {
			dels = append(dels, fp)
		}
	}
	slices.Sort(adds)
	slices.Sort(dels)
	var (
		chunks []negfile.Chunk
		err    error
	)
	if k.snapshot {
		chunks, err = negfile.Split(negfile.OpSnapshot, 0, k.version, adds, nil, negfile.MaxDE72)
	} else {
		chunks, err = negfile.Split(negfile.OpAdd, k.base, k.version, adds, dels, negfile.MaxDE72)
	}
	if err != nil {
		return nil, fmt.Errorf("split negative-file session: %w", err)
	}
	n.mu.Lock()
	if _, ok := n.cache[k]; !ok {
		n.cache[k] = chunks
		n.order = append(n.order, k)
		if len(n.order) > sessionCacheSize {
			delete(n.cache, n.order[0])
			n.order = n.order[1:]
		}
	}
	n.mu.Unlock()
	return chunks, nil
}

// maybeExpire runs Expire when ExpireEvery has passed since the last sweep
// this server made. A failed sweep is logged; the inquiry is answered from
// the file as it stands.
func (n *NegFileServer) maybeExpire(ctx context.Context) {
	every := n.ExpireEvery
	if every < 0 {
		return
	}
	if every == 0 {
		every = DefaultExpireEvery
	}
	now := n.now()
	n.mu.Lock()
	due := n.lastExpire.IsZero() || now.Sub(n.lastExpire) >= every
	if due {
		n.lastExpire = now
	}
	n.mu.Unlock()
	if !due {
		return
	}
	if k, err := n.Expire(ctx); err != nil {
		n.Logger.Error("negative-file expiry sweep failed", "reason", err)
	} else if k > 0 {
		n.Logger.Info("negative-file entries expired", "count", k)
	}
}

func (n *NegFileServer) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// Expire appends, in one transaction, a removal with reason ExpiredReason
// for every fingerprint whose entry in force (its latest) is an add whose
// ExpiresAt (when set) is not after now, and returns how many it appended.
// Each removal takes the next version, so gateways drop the card with
// their next delta; the add stays in the history. Two centers sweeping at
// once may both append a removal; the second nets to the same file.
func (n *NegFileServer) Expire(ctx context.Context) (int, error) {
	now := n.now()
	count := 0
	err := n.Store.Update(ctx, func(tx *store.Tx) error {
		count = 0
		last := map[string]store.NegativeEntry{}
		for since := int64(0); ; {
			page, err := tx.NegativeEntries(ctx, since, 10_000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				last[e.Fingerprint] = e
			}
			since = page[len(page)-1].Version
		}
		var due []store.NegativeEntry
		for _, e := range last {
			if e.Action == store.NegativeAdd && !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(now) {
				due = append(due, e)
			}
		}
		slices.SortFunc(due, func(a, b store.NegativeEntry) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
		for _, e := range due {
			if _, err := tx.AddNegativeEntry(ctx, store.NegativeEntry{Fingerprint: e.Fingerprint, Action: store.NegativeRemove,
				Reason: ExpiredReason, CardID: e.CardID, ExpiresAt: e.ExpiresAt}); err != nil {
				return err
			}
		}
		count = len(due)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire negative-file entries: %w", err)
	}
	return count, nil
}

// replyFile packs the 1314 answering msg; with c, DE 24 is the chunk's
// function code and DE 72 the chunk.
func replyFile(msg *iso8583.Message, action iso93.ActionCode, c *negfile.Chunk) ([]byte, iso93.ActionCode, error) {
	raw, err := negfile.PackAnswer(msg, action, c)
	if err != nil {
		return nil, "", err
	}
	return raw, action, nil
}
