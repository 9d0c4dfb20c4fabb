package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

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
