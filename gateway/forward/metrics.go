package forward

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the forwarding path's Prometheus metrics (requests by MTI
// and action code, their latency, the gateway's own share of it, and the
// link state), registered on their own registry (no global state), which
// the rest of the gateway registers on too. A nil *Metrics records
// nothing.
type Metrics struct {
	// Registry is the gateway's registry, served at /metrics.
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	own      *prometheus.HistogramVec
	linkUp   prometheus.Gauge
}

// NewMetrics creates the gateway metrics on a fresh registry, together with
// the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posgate_requests_total",
			Help: "Terminal requests answered, by request MTI and 1993 action code.",
		}, []string{"mti", "action"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "posgate_request_seconds",
			Help:    "Time from a terminal request to its answer, by request MTI.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"mti"}),
		own: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "posgate_gateway_seconds",
			Help:    "Time a terminal request spent in the gateway's forwarder, excluding the uplink round trip to the center, by request MTI.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, 1, 2.5},
		}, []string{"mti"}),
		linkUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "posgate_link_up",
			Help: "1 when the QUIC link to the center is signed on, else 0.",
		}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.own, m.linkUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observe(mti, action string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(mti, action).Inc()
	m.latency.WithLabelValues(mti).Observe(d.Seconds())
}

// observeGateway records the time a request spent in the forwarder less
// its uplink round trip: what the gateway adds to the center's answer time.
func (m *Metrics) observeGateway(mti string, d time.Duration) {
	if m == nil {
		return
	}
	m.own.WithLabelValues(mti).Observe(d.Seconds())
}

// SetLinkUp records the link state.
func (m *Metrics) SetLinkUp(up bool) {
	if m == nil {
		return
	}
	if up {
		m.linkUp.Set(1)
	} else {
		m.linkUp.Set(0)
	}
}
