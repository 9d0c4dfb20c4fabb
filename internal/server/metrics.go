package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
// --metrics-open is set (httpapi's guard decides). No series carries a key
// name (the hot keys are by rank; their names are on /v1/hotkeys, admin
// only), so opening it exposes no data.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
}
