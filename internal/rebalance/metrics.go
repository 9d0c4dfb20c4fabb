package rebalance

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	bytes     prometheus.Counter
	records   prometheus.Counter
	ranges    prometheus.Counter
	errors    prometheus.Counter
	remaining prometheus.Gauge
	// refused counts records the clock guard turned away: skipped, so that
	// one version from the future does not stop a range's stream for good.
	refused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "stream", Name: "records_refused_total",
			Help: "Streamed records skipped because this node's clock guard refused their version as from its future.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "stream", Name: "received_bytes_total",
			Help: "Bytes of records pulled from other nodes by range streaming.",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "stream", Name: "received_records_total",
			Help: "Records pulled from other nodes by range streaming.",
		}),
		ranges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "stream", Name: "ranges_completed_total",
			Help: "Ranges fully pulled from their sources.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "stream", Name: "errors_total",
			Help: "Range pulls that failed and will be retried.",
		}),
		remaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "stream", Name: "ranges_remaining",
			Help: "Ranges this node still has to pull for the topology change in progress.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.bytes, m.records, m.ranges, m.errors, m.remaining, m.refused)
	}
	return m
}
