package replication

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
)

// clockMetrics are the clock check's metrics, in their own subsystem: an
// operator looks for the clock, not the coordinator.
type clockMetrics struct {
	offset      *prometheus.GaugeVec
	skewed      prometheus.Gauge
	probeErrors prometheus.Counter

	mu    sync.Mutex
	peers map[string]bool // the offset gauge's peer labels, to drop gone ones
}

func newClockMetrics(reg prometheus.Registerer, g *clock.Guard) *clockMetrics {
	m := &clockMetrics{
		offset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "clock", Name: "offset_seconds",
			Help: "Estimated offset of this node's clock from each live peer's (positive: this node is ahead).",
		}, []string{"peer"}),
		skewed: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "clock", Name: "skewed",
			Help: "1 while this node's clock is off from a majority of its peers' and it refuses to coordinate writes.",
		}),
		probeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "clock", Name: "probe_errors_total",
			Help: "Peer clock readings that failed.",
		}),
		peers: map[string]bool{},
	}
	refused := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "ringkv", Subsystem: "clock", Name: "guard_refused_total",
		Help: "Records refused, on any path (client write, read repair, hint, anti-entropy, stream), because their version was further ahead of this node's clock than --max-clock-skew.",
	}, func() float64 { return float64(g.Refused()) })
	if reg != nil {
		reg.MustRegister(m.offset, m.skewed, m.probeErrors, refused)
	}
	return m
}

func (m *clockMetrics) set(a *clock.Assessment) {
	if a.Skewed {
		m.skewed.Set(1)
	} else {
		m.skewed.Set(0)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range a.Peers {
		seen[p.Peer] = true
		m.offset.WithLabelValues(p.Peer).Set(p.Offset.Seconds())
	}
	for p := range m.peers {
		if !seen[p] {
			m.offset.DeleteLabelValues(p)
		}
	}
	m.peers = seen
}
