package server

import (
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/ringkv/ringkv/internal/httpapi"
)

// mountPprof serves Go's profiler under /debug/pprof/ with the other debug
// endpoints: profiles are how the hot paths were found (docs/performance.md),
// and they must come from a real process under a real load. Like every
// /debug/ route they need the admin right (httpapi's guard).
func (s *Server) mountPprof(api *httpapi.API) {
	if !s.cfg.DebugEndpoints {
		return
	}
	api.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	api.Handle("GET /debug/pprof/cmdline", http.HandlerFunc(handleCmdline))
	api.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	api.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	api.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
}

// handleCmdline is pprof's cmdline with secrets redacted: a --password on
// the command line must not be served even to an admin, who has other ways
// to act but no need to learn the default user's password.
func handleCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(redactArgs(os.Args), "\x00")))
}

// secretFlags are the flags whose values are secrets.
var secretFlags = []string{"password"}

const redacted = "REDACTED"

// redactArgs returns args with the values of secretFlags replaced, in every
// spelling pflag accepts: --password x, --password=x, -password x.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		name := strings.TrimLeft(out[i], "-")
		if name == out[i] || out[i] == "--" {
			continue
		}
		for _, f := range secretFlags {
			switch {
			case name == f && i+1 < len(out):
				out[i+1] = redacted
				i++
			case strings.HasPrefix(name, f+"="):
				out[i] = out[i][:len(out[i])-len(name)] + f + "=" + redacted
			}
		}
	}
	return out
}
