// Package admin shows the offline store's state to operators: the
// loopback admin routes devicectl reads (docs/offline.md, "Admin
// surface"; their JSON is package adminapi) and the Prometheus collector
// of the same figures.
package admin

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"

	"github.com/posgate/posgate/gateway/adminapi"
	"github.com/posgate/posgate/offline"
)

// Trigger asks for an immediate advice forwarding pass.
// *advice.Forwarder satisfies it.
type Trigger interface {
	Trigger()
}

// Register registers the offline admin routes over st on mux
// (docs/offline.md, "Admin surface"): GET /offline/status, GET
// /offline/rejected and POST /offline/forward, which triggers a pass of
// fwd (nil: the gateway is not enrolled and the route answers 409). They
// answer loopback clients only. devicectl's offline commands read them
// (their JSON is package adminapi). log receives store failures; nil
// discards them.
func Register(mux *http.ServeMux, st *offline.Store, fwd Trigger, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &routes{store: st, fwd: fwd, logger: log}
	mux.Handle("GET /offline/rejected", localOnly(http.HandlerFunc(o.getRejected)))
	mux.Handle("GET /offline/status", localOnly(http.HandlerFunc(o.getStatus)))
	mux.Handle("POST /offline/forward", localOnly(http.HandlerFunc(o.postForward)))
}

// routes serves the admin routes over one store.
type routes struct {
	store  *offline.Store
	fwd    Trigger // nil: not enrolled
	logger *slog.Logger
}

func (o *routes) getRejected(w http.ResponseWriter, _ *http.Request) {
	recs, err := o.store.Queue().Rejected()
	if err != nil {
		o.logger.Error("list rejected advices", "reason", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "offline store unavailable"})
		return
	}
	out := adminapi.Rejected{Rejected: []adminapi.Record{}}
	for _, r := range recs {
		out.Rejected = append(out.Rejected, recordJSON(r))
	}
	writeJSON(w, http.StatusOK, out)
}

func (o *routes) getStatus(w http.ResponseWriter, _ *http.Request) {
	st, err := o.store.Queue().Stats()
	if err == nil {
		var neg offline.NegativeState
		neg, err = o.store.Negative()
		if err == nil {
			writeJSON(w, http.StatusOK, statusJSON(st, neg))
			return
		}
	}
	o.logger.Error("read offline status", "reason", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "offline store unavailable"})
}

func (o *routes) postForward(w http.ResponseWriter, _ *http.Request) {
	if o.fwd == nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the gateway is not enrolled: nothing can be forwarded"})
		return
	}
	o.fwd.Trigger()
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "forward pass requested"})
}

func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the offline admin routes answer local clients only"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func recordJSON(r offline.Record) adminapi.Record {
	return adminapi.Record{ID: r.ID, IdempotencyKey: r.IdempotencyKey, State: r.State.String(), Attempts: r.Attempts,
		Action: r.Action, ApprovedAt: r.ApprovedAt.UTC(), AnsweredAt: r.AnsweredAt.UTC(), ApprovalCode: r.ApprovalCode, Origin: r.Origin.String(),
		TerminalID: r.TerminalID, MerchantID: r.MerchantID, Brand: r.Brand, MaskedPAN: r.MaskedPAN, Amount: r.Amount, Currency: r.Currency}
}

func statusJSON(st offline.Stats, neg offline.NegativeState) adminapi.Status {
	t := func(x offline.Total) adminapi.Total { return adminapi.Total{Count: x.Count, Amount: x.Amount} }
	out := adminapi.Status{
		Queue: map[string]adminapi.Total{"pending": t(st.Pending), "sent": t(st.Sent), "accepted": t(st.Accepted),
			"rejected": t(st.Rejected), "expired": t(st.Expired)},
		Exposure: st.Exposure, Oldest: st.Oldest,
		Negative: adminapi.NegativeFile{Loaded: neg.Loaded, Version: neg.Version, SyncedAt: neg.SyncedAt},
	}
	if s := neg.Session; s != nil {
		out.Negative.Session = &adminapi.Session{Snapshot: s.Snapshot, Base: s.Base, Version: s.Version, Total: s.Total, Next: s.Next}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
