package transport

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the TCP transport's Prometheus series. A nil *metrics records
// nothing, so a transport built without a Registerer pays one nil check.
type metrics struct {
	callsOK, callsRemote, callsNotSent, callsIndeterminate prometheus.Counter

	dialsOK, dialsFailed prometheus.Counter
	refused              prometheus.Counter
	conns                prometheus.Gauge
	// batches and frames together show write coalescing: frames/batches is
	// the number of frames each write syscall carried.
	batches, frames prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	const ns, sub = "ringkv", "transport"
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "calls_total",
		Help: "Outgoing calls by outcome: ok, remote_error (handler refused), not_sent (never left this node), indeterminate (may have been applied).",
	}, []string{"outcome"})
	dials := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "dials_total",
		Help: "Outgoing connection attempts, handshake included, by result.",
	}, []string{"result"})
	m := &metrics{
		callsOK:            calls.WithLabelValues("ok"),
		callsRemote:        calls.WithLabelValues("remote_error"),
		callsNotSent:       calls.WithLabelValues("not_sent"),
		callsIndeterminate: calls.WithLabelValues("indeterminate"),
		dialsOK:            dials.WithLabelValues("ok"),
		dialsFailed:        dials.WithLabelValues("error"),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_connections_total",
			Help: "Inbound connections closed for a bad handshake: a failed TLS handshake (no certificate, or one the cluster CA did not sign), not a ringkv peer, or another protocol version.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "Open peer connections, both directions.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "write_batches_total",
			Help: "Write syscalls made by connection writers.",
		}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "frames_written_total",
			Help: "Frames written; divided by write_batches_total it is the coalescing factor.",
		}),
	}
	for _, c := range []prometheus.Collector{calls, dials, m.refused, m.conns, m.batches, m.frames} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) call(err error) {
	if m == nil {
		return
	}
	switch {
	case err == nil:
		m.callsOK.Inc()
	case NotSent(err):
		m.callsNotSent.Inc()
	case IsRemote(err):
		m.callsRemote.Inc()
	default:
		m.callsIndeterminate.Inc()
	}
}

func (m *metrics) dial(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.dialsFailed.Inc()
	} else {
		m.dialsOK.Inc()
	}
}

func (m *metrics) refusedConn() {
	if m != nil {
		m.refused.Inc()
	}
}

func (m *metrics) connDelta(d float64) {
	if m != nil {
		m.conns.Add(d)
	}
}

func (m *metrics) wrote(frames int) {
	if m != nil {
		m.batches.Inc()
		m.frames.Add(float64(frames))
	}
}
