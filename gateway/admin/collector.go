package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posgate/posgate/offline"
)

// Collector exports the offline store's queue and negative-file
// state as Prometheus metrics, read at scrape time. It is safe for
// concurrent use.
type Collector struct {
	store                    *offline.Store
	queue, amount, exposure  *prometheus.Desc
	oldest, negVer, negAge   *prometheus.Desc
	negLoaded, storeFailures *prometheus.Desc
}

// NewCollector returns a collector over st.
func NewCollector(st *offline.Store) *Collector {
	return &Collector{
		store:         st,
		queue:         prometheus.NewDesc("posgate_offline_queue", "Offline approvals by forwarding state (pending, sent, accepted, rejected, expired).", []string{"state"}, nil),
		amount:        prometheus.NewDesc("posgate_offline_queue_amount", "Amount (minor units) of offline approvals by forwarding state.", []string{"state"}, nil),
		exposure:      prometheus.NewDesc("posgate_offline_exposure", "Amount approved offline and not yet answered by the center (minor units).", nil, nil),
		oldest:        prometheus.NewDesc("posgate_offline_oldest_age_seconds", "Age of the oldest queued offline approval; 0 when the queue is empty.", nil, nil),
		negVer:        prometheus.NewDesc("posgate_negfile_version", "Version of the negative file in force.", nil, nil),
		negLoaded:     prometheus.NewDesc("posgate_negfile_loaded", "1 when a negative file is loaded, else 0.", nil, nil),
		negAge:        prometheus.NewDesc("posgate_negfile_age_seconds", "Time since the negative file was last synced or confirmed current.", nil, nil),
		storeFailures: prometheus.NewDesc("posgate_offline_scrape_errors", "1 when the offline store could not be read for this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queue, c.amount, c.exposure, c.oldest, c.negVer, c.negLoaded, c.negAge, c.storeFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st, err1 := c.store.Queue().Stats()
	neg, err2 := c.store.Negative()
	failed := 0.0
	if err1 != nil || err2 != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.storeFailures, prometheus.GaugeValue, failed)
	if err1 == nil {
		for _, s := range []struct {
			name string
			t    offline.Total
		}{{"pending", st.Pending}, {"sent", st.Sent}, {"accepted", st.Accepted}, {"rejected", st.Rejected}, {"expired", st.Expired}} {
			ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(s.t.Count), s.name)
			ch <- prometheus.MustNewConstMetric(c.amount, prometheus.GaugeValue, float64(s.t.Amount), s.name)
		}
		ch <- prometheus.MustNewConstMetric(c.exposure, prometheus.GaugeValue, float64(st.Exposure))
		age := 0.0
		if !st.Oldest.IsZero() {
			age = time.Since(st.Oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	}
	if err2 == nil {
		loaded := 0.0
		if neg.Loaded {
			loaded = 1
		}
		ch <- prometheus.MustNewConstMetric(c.negLoaded, prometheus.GaugeValue, loaded)
		ch <- prometheus.MustNewConstMetric(c.negVer, prometheus.GaugeValue, float64(neg.Version))
		if !neg.SyncedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.negAge, prometheus.GaugeValue, time.Since(neg.SyncedAt).Seconds())
		}
	}
}
