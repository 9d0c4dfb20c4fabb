// Package httpapi serves ringkv's HTTP interface (design §8): reads and writes
// of single keys under /v1/kv/, liveness and readiness probes, and a mux the
// server extends with /metrics and the operator endpoints (internal/admin).
// Every route is behind a guard (guard.go) that checks credentials and rights
// and refuses cross-site requests.
//
// Keys are the URL path after /v1/kv/, percent-decoded, so any byte string can
// be addressed by escaping it. A single '/' inside a key may be sent as is, but
// net/http redirects paths with empty, "." or ".." segments to their cleaned
// form, so clients should escape every '/' as %2F (url.PathEscape does). Values
// travel as the raw request and response bodies.
package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
)

// Backend is what the API needs from a node: the coordinator's reads and
// writes and the node's own replica. Implementations must be safe for
// concurrent use; the API calls them from one goroutine per request. Byte
// slices passed in are owned by the API for the duration of the call only;
// records returned are owned by the API afterwards.
type Backend interface {
	// Get reads key at lvl. It reports tombstones and expired records as found;
	// the API checks Live itself so it can tell an operator why a key is absent.
	Get(ctx context.Context, key []byte, lvl replication.Level) (rec record.Record, found bool, err error)
	// GetLocal reads this node's own replica only, without any coordination.
	GetLocal(key []byte) (rec record.Record, found bool, err error)
	// Put writes m at lvl and returns the record it replaced, as resolved by
	// the replicas that answered.
	Put(ctx context.Context, key []byte, m replication.Mutation, lvl replication.Level) (prev record.Record, prevFound bool, err error)
	// Now is the node's wall clock, the one expiries are judged by.
	Now() time.Time
}

// Defaults for Config fields left zero. They match config.Default so an API
// built in a test behaves as a node does.
const (
	DefaultMaxKeyBytes   = 8 << 10
	DefaultMaxValueBytes = 16 << 20
)

// Config configures an API. Zero fields take the defaults above, QUORUM, a
// discarding logger and an always-ready probe.
type Config struct {
	MaxKeyBytes   int
	MaxValueBytes int
	// DefaultLevel applies to requests without ?consistency=.
	DefaultLevel replication.Level
	Logger       *slog.Logger
	// Ready reports why the node cannot serve yet (storage opening, joining
	// the ring), or nil once it can; /readyz calls it on every probe, so it
	// must be cheap and safe for concurrent use.
	Ready func() error
	// Auth checks every request's credentials (see guard.go); nil or one
	// with no password and no users serves everyone as the default user.
	Auth *auth.Authenticator
	// MetricsOpen serves /metrics without credentials; the server then
	// takes key names out of it.
	MetricsOpen bool
}

// API is the HTTP interface of one node. Its handler is safe for concurrent
// use; Handle must be called before the handler serves requests.
type API struct {
	cfg     Config
	backend Backend
	mux     *http.ServeMux
	handler http.Handler // mux behind the guard
}

// New builds the API over b.
func New(cfg Config, b Backend) *API {
	if cfg.MaxKeyBytes <= 0 {
		cfg.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = DefaultMaxValueBytes
	}
	if cfg.DefaultLevel == 0 {
		cfg.DefaultLevel = replication.DefaultLevel
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Ready == nil {
		cfg.Ready = func() error { return nil }
	}
	a := &API{cfg: cfg, backend: b, mux: http.NewServeMux()}
	a.handler = a.guard(a.mux)
	a.mux.HandleFunc("GET /v1/kv/{key...}", a.handleGet)
	a.mux.HandleFunc("PUT /v1/kv/{key...}", a.handlePut)
	a.mux.HandleFunc("DELETE /v1/kv/{key...}", a.handleDelete)
	a.mux.HandleFunc("GET /livez", a.handleLivez)
	a.mux.HandleFunc("GET /healthz", a.handleLivez)
	a.mux.HandleFunc("GET /readyz", a.handleReadyz)
	return a
}

// Handler returns the handler to serve on --http-addr: every route behind
// the guard, which authenticates, checks rights and refuses cross-site
// requests.
func (a *API) Handler() http.Handler { return a.handler }

// Handle mounts h on pattern (net/http.ServeMux syntax, e.g. "GET /v1/cluster").
// Like ServeMux.Handle it panics when pattern conflicts with a route already
// mounted, which is a programming error.
func (a *API) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

func (a *API) handleLivez(w http.ResponseWriter, _ *http.Request) {
	// Liveness says only that the process serves HTTP: restarting a node that
	// is alive but not ready would not make it ready sooner.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (a *API) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Ready(); err != nil {
		a.writeError(w, r, fmt.Errorf("%w: %w", errNotReady, err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}
