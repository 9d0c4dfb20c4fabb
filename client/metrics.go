package client

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	refreshes *prometheus.CounterVec
	cache     *prometheus.CounterVec
}

// newMetrics builds the client's metrics and registers them on reg when it is
// not nil; unregistered they still count, which keeps the call sites simple.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "ringkv", "client"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Client calls by command and result (ok, timeout, unavailable, error).",
		}, []string{"command", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Client call latency by command, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"command"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Requests sent to another node after the first failed.",
		}, []string{"command"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "topology_refreshes_total",
			Help: "Topology refreshes by result (ok, error).",
		}, []string{"result"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "near_cache_lookups_total",
			Help: "Near cache lookups by result (hit, miss).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.refreshes, m.cache} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("client: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(cmd, result string, start time.Time) {
	m.requests.WithLabelValues(cmd, result).Inc()
	m.duration.WithLabelValues(cmd).Observe(time.Since(start).Seconds())
}
