package replication

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/metric"
)

var (
	metricOps      = [...]string{"read", "write"}
	metricOutcomes = [...]string{"ok", "unavailable", "timeout", "error"}
	metricLevels   = [...]Level{One, Quorum, All}
)

type metrics struct {
	// requests, latency and replicaReads change on every request: sharded
	// (see package metric).
	requests *metric.CounterVec
	latency  *metric.HistogramVec
	// Resolved children of the vectors above, indexed [op][level-1][outcome]:
	// the request path then skips the label lookup.
	requestsBy    [2][3][4]*metric.Counter
	latencyBy     [2][3]*metric.Histogram
	replicaErrors *prometheus.CounterVec
	readRepairs   prometheus.Counter
	speculative   prometheus.Counter
	superseded    prometheus.Counter
	skewRefused   prometheus.Counter
	// replicaReads counts reads this node's replica served, for the
	// coordinator here or a peer: the per-node read load hot-key spreading
	// evens out.
	replicaReads    *metric.Counter
	replicaReadsVec *metric.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: metric.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "coordinator", Name: "requests_total",
			Help: "Coordinated requests by operation, consistency level and outcome.",
		}, []string{"op", "level", "outcome"}),
		latency: metric.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ringkv", Subsystem: "coordinator", Name: "request_duration_seconds",
			Help:    "Coordinated request latency by operation and consistency level; each request of a pipelined batch counts the batch's time.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}, []string{"op", "level"}),
		replicaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "coordinator", Name: "replica_errors_total",
			Help: "Replica requests that failed or timed out, by kind.",
		}, []string{"kind"}),
		readRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "coordinator", Name: "read_repairs_total",
			Help: "Stale replicas found (and repaired) by reads.",
		}),
		speculative: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "coordinator", Name: "speculative_reads_total",
			Help: "Extra replica reads sent because a replica was slow.",
		}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "coordinator", Name: "superseded_writes_total",
			Help: "Writes sent again under a newer version because a replica held a newer one (a node's clock ahead of this one's).",
		}),
		replicaReadsVec: metric.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "replica", Name: "reads_total",
			Help: "Reads served by this node's replica, for itself or a peer.",
		}, nil),
		skewRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "replica", Name: "clock_skew_refused_total",
			Help: "Writes refused because their version was too far ahead of this node's clock.",
		}),
	}
	for o, op := range metricOps {
		for l, lvl := range metricLevels {
			m.latencyBy[o][l] = m.latency.With(op, lvl.String())
			for r, out := range metricOutcomes {
				m.requestsBy[o][l][r] = m.requests.With(op, lvl.String(), out)
			}
		}
	}
	m.replicaReads = m.replicaReadsVec.With()
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.replicaErrors, m.readRepairs, m.speculative, m.superseded, m.skewRefused, m.replicaReadsVec)
	}
	return m
}

// observe records a request that began at start (clock.Mono).
func (m *metrics) observe(op string, lvl Level, start time.Duration, err error) {
	m.observeTook(op, lvl, clock.Mono()-start, err)
}

// observeTook is observe for a request that took took: a batch reads the
// clock once for all of its requests.
func (m *metrics) observeTook(op string, lvl Level, took time.Duration, err error) {
	m.observeN(op, lvl, took, err, 1)
}

// observeN is observeTook for n requests with the same outcome.
func (m *metrics) observeN(op string, lvl Level, took time.Duration, err error, n uint64) {
	outcome := 0
	switch {
	case err == nil:
	case errors.Is(err, ErrUnavailable):
		outcome = 1
	case errors.Is(err, ErrTimeout):
		outcome = 2
	default:
		outcome = 3
	}
	o := 0
	if op == "write" {
		o = 1
	}
	l := int(lvl) - 1
	if l < 0 || l > 2 {
		return
	}
	m.requestsBy[o][l][outcome].Add(n)
	m.latencyBy[o][l].ObserveN(took, n)
}
