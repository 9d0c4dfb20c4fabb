package resp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/metric"
)

// metrics are the RESP server's Prometheus metrics.
type metrics struct {
	// commands and latency are updated by every command: sharded, and
	// added to through each connection's tally (see metric.Tally).
	commands       *metric.CounterVec
	unknown        *metric.Counter // commands' "unknown" series
	errors         *prometheus.CounterVec
	latency        *metric.HistogramVec
	conns          prometheus.Gauge
	loopConns      prometheus.Gauge
	rejected       prometheus.Counter
	protocolErrors prometheus.Counter
	closed         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "ringkv", "resp"
	m := &metrics{
		commands: metric.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "commands_total",
			Help: "Commands run, by command name (\"unknown\" for names not in the table).",
		}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Error replies, by command and error prefix (ERR, TIMEOUT, UNAVAILABLE, NOAUTH, ...).",
		}, []string{"command", "prefix"}),
		latency: metric.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "command_duration_seconds",
			Help:    "Time to run a command, reply buffered, by command name.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2.5, 14), // 20 µs .. ~3 s
		}, []string{"command"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "Open client connections.",
		}),
		loopConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "loop_connections",
			Help: "Open client connections an event loop serves; each of the others has a goroutine.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_connections_total",
			Help: "Connections refused because max clients was reached.",
		}),
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "protocol_errors_total",
			Help: "Connections closed for malformed input or for speaking HTTP.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "closed_connections_total",
			Help: "Connections the server closed, by reason: idle, read_timeout (a command too slow to arrive), client_memory (over max-client-memory), tls_handshake.",
		}, []string{"reason"}),
	}
	m.unknown = m.commands.With("unknown")
	if reg != nil {
		reg.MustRegister(m.commands, m.errors, m.latency, m.conns, m.loopConns, m.rejected, m.protocolErrors, m.closed)
	}
	return m
}
