// Package admin serves a node's operator endpoints on its HTTP port: the
// cluster and clock status, the hot keys, repairs, decommissions and
// removals (changes.go), the dashboard and, with
// --debug-endpoints, the test controls and the profiler (debug.go). Each
// handler reads or acts on the node through a func or a small interface that
// the server provides, and keeps no state of its own, so that it can be
// tested with httptest and a fake. The routes sit behind httpapi's guard,
// which gives /v1/ and /debug/ routes to admins only.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/ui"
)

// Mux is where the endpoints are mounted: the node's httpapi.API, or an
// http.ServeMux in a test.
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Repairs is the node's anti-entropy as POST /v1/repair and GET
// /v1/repair/status reach it. Both fail while it is not running.
type Repairs interface {
	// Repair starts an on-demand repair, or joins the one running, and
	// returns its id.
	Repair() (uint64, error)
	// RepairStatus is the repair status, with every local range's root when
	// withRoots is set.
	RepairStatus(withRoots bool) (apitypes.RepairStatus, error)
}

// Node is what the endpoints read of the node and act on.
type Node struct {
	Logger *slog.Logger
	// Cluster answers GET /v1/cluster.
	Cluster func() apitypes.ClusterStatus
	// Clock answers GET /v1/clock.
	Clock func() apitypes.ClockStatus
	// HotKeys answers GET /v1/hotkeys: the top n keys, all for n <= 0.
	HotKeys func(n int) apitypes.HotKeysReport
	Repairs Repairs
	// Overview answers GET /v1/ui/overview, the dashboard's poll.
	Overview func(context.Context) ui.Overview
	// Changes starts decommissions and removals (changes.go).
	Changes Changes
}

// Mount mounts the operator endpoints on m.
func Mount(m Mux, n Node) {
	if n.Logger == nil {
		n.Logger = slog.New(slog.DiscardHandler)
	}
	m.Handle("GET /v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, n.Logger, "cluster status", http.StatusOK, true, n.Cluster())
	}))
	m.Handle("GET /v1/clock", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, n.Logger, "clock status", http.StatusOK, false, n.Clock())
	}))
	// Each node reports what it coordinated; `ringkv hotkeys` asks one.
	m.Handle("GET /v1/hotkeys", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count := 0
		if v := r.URL.Query().Get("n"); v != "" {
			var err error
			if count, err = strconv.Atoi(v); err != nil || count < 0 {
				writeJSON(w, n.Logger, "hot keys", http.StatusBadRequest, true, apitypes.ErrorBody{
					Error: fmt.Sprintf("n=%q: want a non-negative number of keys", v), Code: apitypes.CodeAdminBadRequest,
				})
				return
			}
		}
		writeJSON(w, n.Logger, "hot keys", http.StatusOK, true, n.HotKeys(count))
	}))
	mountRepair(m, n)
	mountChanges(m, n)
	m.Handle("GET /v1/ui/overview", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, n.Logger, "dashboard overview", http.StatusOK, false, n.Overview(r.Context()))
	}))
	m.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	m.Handle("GET /ui/", http.StripPrefix("/ui", ui.Handler()))
}

// mountRepair serves POST /v1/repair (start an on-demand repair, or join the
// one running, and answer its progress) and GET /v1/repair/status (progress,
// last full pass and, with ?roots=true, every local range's root).
func mountRepair(m Mux, n Node) {
	status := func(w http.ResponseWriter, withRoots bool) {
		st, err := n.Repairs.RepairStatus(withRoots)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, n.Logger, "repair status", http.StatusOK, true, st)
	}
	m.Handle("POST /v1/repair", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if _, err := n.Repairs.Repair(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		status(w, false)
	}))
	m.Handle("GET /v1/repair/status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status(w, r.URL.Query().Get("roots") == "true")
	}))
}

// writeJSON writes v as the JSON answer, indented for the endpoints a person
// reads with curl. A failed write is the client gone: logged at debug.
func writeJSON(w http.ResponseWriter, log *slog.Logger, what string, status int, indent bool, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		log.Debug("writing "+what, "err", err)
	}
}
