package ecr

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// subscriber is one event stream; ch is buffered and closed when the
// subscriber falls too far behind.
type subscriber struct {
	c  *client
	ch chan event
}

type event struct {
	id   uint64
	data []byte
}

// subscriberBuffer is how many events may wait for a slow stream before it
// is dropped (the POS reconnects and reads the transactions it missed).
const subscriberBuffer = 64

// publishLocked sends tx to every stream whose POS may use its terminal.
// s.mu must be held.
func (s *Server) publishLocked(tx Transaction) {
	b, err := json.Marshal(tx)
	if err != nil {
		return
	}
	s.seq++
	ev := event{id: s.seq, data: b}
	for sub := range s.subs {
		if !sub.c.terminals[tx.TerminalID] {
			continue
		}
		select {
		case sub.ch <- ev:
		default:
			delete(s.subs, sub)
			close(sub.ch)
			s.log.Warn("POS event stream dropped: too far behind", "pos", sub.c.id)
		}
	}
}

// events serves GET /pos/v1/events as server-sent events: one
// "transaction" event per update of a transaction on the POS's terminals,
// and a comment line every Heartbeat.
func (s *Server) events(w http.ResponseWriter, r *http.Request, c *client) {
	rc := http.NewResponseController(w)
	sub := &subscriber{c: c, ch: make(chan event, subscriberBuffer)}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
			close(sub.ch)
		}
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": posgate events\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case ev, ok := <-sub.ch:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: transaction\ndata: %s\n\n", ev.id, ev.data); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}
