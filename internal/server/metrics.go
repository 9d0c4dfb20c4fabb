package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringkv/ringkv/internal/version"
)

// newBuildInfo is ringkv_build_info: always 1, its labels the binary's
// identity, so a dashboard can join any series to the version that made it
// and see a rolling upgrade progress node by node.
func newBuildInfo() prometheus.Collector {
	b := version.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ringkv_build_info",
		Help: "The running binary: version, commit, build date and Go version as labels; the value is always 1.",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "commit": b.Commit, "date": b.Date, "goversion": b.GoVersion,
		},
	})
	g.Set(1)
	return g
}

// metricsHandler serves /metrics. It needs the admin right unless
// --metrics-open is set (httpapi's guard decides); open, it leaves out every
// series labelled with a key name (the hot keys), since anyone who reaches the
// port then reads it.
func (s *Server) metricsHandler() http.Handler {
	var g prometheus.Gatherer = s.reg
	if s.cfg.MetricsOpen {
		g = withoutKeyNames{s.reg}
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{Registry: s.reg})
}

// withoutKeyNames drops the metric families that carry a "key" label.
type withoutKeyNames struct{ g prometheus.Gatherer }

func (w withoutKeyNames) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := w.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		if !hasKeyLabel(mf) {
			out = append(out, mf)
		}
	}
	return out, err
}

func hasKeyLabel(mf *dto.MetricFamily) bool {
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "key" {
				return true
			}
		}
	}
	return false
}
