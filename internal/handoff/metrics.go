package handoff

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	stored   prometheus.Counter
	replayed prometheus.Counter
	dropped  *prometheus.CounterVec
	bytes    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "hints", Name: "stored_total",
			Help: "Hints stored for replicas that missed a write.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "hints", Name: "replayed_total",
			Help: "Hints delivered to their replica.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "hints", Name: "dropped_total",
			Help: "Hints dropped undelivered, by reason (full, expired, corrupt, error, clock_skew).",
		}, []string{"reason"}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "hints", Name: "bytes",
			Help: "Bytes of hints waiting on disk.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.stored, m.replayed, m.dropped, m.bytes)
	}
	return m
}
