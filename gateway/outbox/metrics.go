package outbox

import "github.com/prometheus/client_golang/prometheus"

// RegisterReversals adds r's metrics to reg, read at each scrape:
// posgate_reversals_pending and posgate_reversal_failures_total
// (docs/offline.md).
func RegisterReversals(reg prometheus.Registerer, r *Reverser) error {
	return register(reg,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "posgate_reversals_pending",
			Help: "Timeout reversals queued or in progress."},
			func() float64 { return float64(r.Pending()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "posgate_reversal_failures_total",
			Help: "Timeout reversal attempts that ended without a final answer (to be repeated)."},
			func() float64 { return float64(r.Failures()) }))
}

// RegisterSignatures adds q's metrics to reg, read at each scrape:
// posgate_signatures_queued, posgate_signatures_accepted_total and
// posgate_signatures_delivered_total (docs/offline.md).
func RegisterSignatures(reg prometheus.Registerer, q *SignatureQueue) error {
	return register(reg,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "posgate_signatures_queued",
			Help: "Signatures waiting for delivery to the center."},
			func() float64 { return float64(q.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "posgate_signatures_accepted_total",
			Help: "Signatures taken into the queue (durable when the gateway has a store)."},
			func() float64 { return float64(q.Accepted()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "posgate_signatures_delivered_total",
			Help: "Signatures the center has stored."},
			func() float64 { return float64(q.Delivered()) }))
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
