package antientropy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	compared   prometheus.Counter
	mismatched prometheus.Counter
	repaired   *prometheus.CounterVec
	errors     prometheus.Counter
	rehashed   prometheus.Counter
	lastPass   prometheus.Gauge
	treeReady  prometheus.Gauge
	// refused counts records the clock guard turned away: skipped, so that
	// one version from the future does not stop a range's repair.
	refused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "records_refused_total",
			Help: "Records anti-entropy skipped because the receiving node's clock guard refused their version as from its future.",
		}),
		compared: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "ranges_compared_total",
			Help: "Range comparisons with a peer replica (one per range and peer).",
		}),
		mismatched: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "ranges_mismatched_total",
			Help: "Range comparisons whose roots differed.",
		}),
		repaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "records_repaired_total",
			Help: "Records applied by anti-entropy: pulled into this node or pushed to a peer.",
		}, []string{"direction"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "errors_total",
			Help: "Range comparisons that failed (peer unreachable, timeout, storage error).",
		}),
		rehashed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "buckets_rehashed_total",
			Help: "Buckets recomputed because they differed with no record to repair.",
		}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "last_full_pass_timestamp_seconds",
			Help: "Unix time at which the last pass that compared every local range with every replica finished.",
		}),
		treeReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "antientropy", Name: "tree_ready",
			Help: "1 once the bucket hashes have been rebuilt from storage after start.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.compared, m.mismatched, m.repaired, m.errors, m.rehashed, m.lastPass, m.treeReady, m.refused} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
