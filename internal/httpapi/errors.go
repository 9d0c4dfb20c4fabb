package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"syscall"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
)

// Kinds of request errors the handlers raise; they wrap them with details.
var (
	errBadRequest = errors.New("bad request")
	errNotFound   = errors.New("not found")
	errTooLarge   = errors.New("too large")
	errNotReady   = errors.New("not ready")
)

// errorTable maps errors to HTTP statuses and codes; the first entry that
// matches with errors.Is wins, and anything unmatched is a 500. UNAVAILABLE
// (not attempted) and TIMEOUT (a write may have landed) stay distinct so that
// clients know whether a retry could apply a write twice.
var errorTable = [...]struct {
	err    error
	status int
	code   string
}{
	{errBadRequest, http.StatusBadRequest, apitypes.CodeBadRequest},
	{replication.ErrBadLevel, http.StatusBadRequest, apitypes.CodeBadRequest},
	{errNotFound, http.StatusNotFound, apitypes.CodeNotFound},
	{errTooLarge, http.StatusRequestEntityTooLarge, apitypes.CodeTooLarge},
	{errNotReady, http.StatusServiceUnavailable, apitypes.CodeUnavailable},
	// A timeout before a full disk: a write some replica took is
	// indeterminate, which the client must be told above all.
	{replication.ErrTimeout, http.StatusGatewayTimeout, apitypes.CodeTimeout},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, apitypes.CodeTimeout},
	{diskspace.ErrDiskFull, http.StatusInsufficientStorage, apitypes.CodeDiskFull},
	{syscall.ENOSPC, http.StatusInsufficientStorage, apitypes.CodeDiskFull},
	{storage.ErrOutOfMemory, http.StatusInsufficientStorage, apitypes.CodeOutOfMemory},
	{replication.ErrNotMember, http.StatusServiceUnavailable, apitypes.CodeUnavailable},
	{replication.ErrUnavailable, http.StatusServiceUnavailable, apitypes.CodeUnavailable},
}

// classify returns the status and code for err.
func classify(err error) (int, string) {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.status, e.code
		}
	}
	return http.StatusInternalServerError, apitypes.CodeInternal
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	if status >= 500 {
		// Unavailable and timeout answers are expected while replicas are down
		// and would flood the log during an outage; only the unexpected is loud.
		lvl := slog.LevelDebug
		if status == http.StatusInternalServerError && r.Context().Err() == nil {
			lvl = slog.LevelError
		}
		a.cfg.Logger.LogAttrs(r.Context(), lvl, "http request failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.String("code", code), slog.Any("err", err))
	}
	writeJSON(w, status, apitypes.ErrorBody{Error: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// An encoding error here means the client is gone; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}
