package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/ringkv/ringkv/internal/httpapi"
)

// mountPprof serves Go's profiler under /debug/pprof/ with the other debug
// endpoints: profiles are how the hot paths were found (docs/performance.md),
// and they must come from a real process under a real load.
func (s *Server) mountPprof(api *httpapi.API) {
	if !s.cfg.DebugEndpoints {
		return
	}
	api.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	api.Handle("GET /debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
	api.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	api.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	api.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
}
