package httpapi

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/internal/logsample"
)

// ServerConfig bounds what one HTTP connection may take of a node: time to
// send its headers and its whole request, time idle between requests, and
// header bytes. Zero fields take the defaults of NewServer.
type ServerConfig struct {
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body: a client
	// that declares a large body and trickles it is cut off.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no next request.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response, from when its handler
	// begins: a client that stops reading a large value cannot hold it, and
	// its connection, for ever. /debug/pprof/ is exempt: a profile takes as
	// long as it was asked to.
	WriteTimeout   time.Duration
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once; one past it is closed
	// as soon as it is accepted, so that a flood of idle connections holds
	// a bounded share of the node's memory (each holds its goroutine and
	// buffers until IdleTimeout).
	MaxConns int
	// TLS, when set, makes the port speak only HTTPS.
	TLS *tls.Config
	// Logger receives net/http's own errors (failed TLS handshakes...) at
	// debug level: a client's mistakes are not the node's.
	Logger *slog.Logger
}

// Defaults of ServerConfig.
const (
	// Headers are small; ten seconds is generous for any real client.
	DefaultReadHeaderTimeout = 10 * time.Second
	// A maximal 16 MiB value arrives in 30 s at 0.6 MB/s (--client-read-timeout).
	DefaultReadTimeout = 30 * time.Second
	// --client-idle-timeout's default.
	DefaultIdleTimeout = time.Hour
	// As the RESP port's: a 16 MiB value leaves in 30 s at 0.6 MB/s.
	DefaultWriteTimeout = 30 * time.Second
	// Credentials and a few ordinary headers fit many times over; net/http's
	// 1 MiB default is memory a client need not be given.
	DefaultMaxHeaderBytes = 64 << 10
	// As the RESP port's maxclients (Redis' default).
	DefaultMaxConns = 10000
)

// NewServer returns an http.Server for h with cfg's bounds. Serve it with
// Serve, or ServeTLS(ln, "", "") when cfg.TLS is set.
func NewServer(h http.Handler, cfg ServerConfig) *http.Server {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	cfg.ReadHeaderTimeout = min(cfg.ReadHeaderTimeout, cfg.ReadTimeout)
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	return &http.Server{
		ConnState:         connLimit(cfg.MaxConns, cfg.Logger),
		Handler:           writeDeadline(h, cfg.WriteTimeout),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// A copy: net/http writes its HTTP/2 protocols into the config it
		// serves with, while the node's RESP port handshakes with the one
		// it was given (a data race the race detector caught).
		TLSConfig: cfg.TLS.Clone(),
		ErrorLog:  slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
}

// connLimit returns an http.Server.ConnState hook that keeps at most max
// connections open: it closes a new one past the bound before any request is
// read from it. net/http reports every connection that it closes or hands
// over as StateClosed or StateHijacked, so the count comes back down.
func connLimit(max int, logger *slog.Logger) func(net.Conn, http.ConnState) {
	var open atomic.Int64
	sample := logsample.New(10 * time.Second)
	return func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			if open.Add(1) > int64(max) {
				_ = c.Close()
				if ok, suppressed := sample.Allow(); ok {
					logger.Warn("HTTP connection refused: too many open", "max", max, "remote", c.RemoteAddr().String(), "refused_since_last_log", suppressed)
				}
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
}

// writeDeadline gives each response d to be written. It is set per request,
// not as http.Server.WriteTimeout, so that the profiler's long requests can
// be left out; it is cleared when the handler returns, so that it does not
// outlive its request on a keep-alive connection.
func writeDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(d))
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
		h.ServeHTTP(w, r)
	})
}
