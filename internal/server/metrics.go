package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves /metrics. It needs the admin right unless
// --metrics-open is set (httpapi's guard decides). No series carries a key
// name (the hot keys are by rank; their names are on /v1/hotkeys, admin
// only), so opening it exposes no data.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
}
