package center

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/posgate/posgate/protocol/link"
)

// Metrics are the center's Prometheus metrics on their own registry. A nil
// *Metrics records nothing.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	gateways prometheus.Gauge
}

// NewMetrics creates the center metrics on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cardcenter_requests_total",
		Help: "Link requests answered, by request MTI and 1993 action code (\"closed\" when the stream was refused).",
	}, []string{"mti", "action"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cardcenter_request_seconds",
		Help:    "Time to answer a link request, by request MTI.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	}, []string{"mti"})
	m.gateways = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cardcenter_link_gateways",
		Help: "Gateway connections currently signed on to the link.",
	})
	m.Registry.MustRegister(m.requests, m.latency, m.gateways,
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

// linkPeer records a gateway connection signing on (up) or ending.
func (m *Metrics) linkPeer(_ link.Peer, up bool) {
	if m == nil {
		return
	}
	if up {
		m.gateways.Inc()
	} else {
		m.gateways.Dec()
	}
}
