package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/hotkeys"
	"github.com/ringkv/ringkv/internal/httpapi"
)

// hotKeyState is the node's hot-key tracking and its opt-in cache (design
// §10). Both are built by startHotKeys before the coordinator, which observes
// every request on the tracker and reads through the cache.
type hotKeyState struct {
	tracker *hotkeys.Tracker
	// cache is nil (off, and still safe to call) unless --hot-cache-ttl > 0.
	cache *hotkeys.Cache
}

// HotKeysReport is the body of GET /v1/hotkeys.
type HotKeysReport struct {
	Node string `json:"node"`
	// Window is the span rates are measured over, in Go duration syntax.
	Window string `json:"window"`
	// Rate is all requests per second this node saw over the window.
	Rate float64 `json:"rate"`
	// MinRate is the rate at which a top key counts as hot.
	MinRate float64 `json:"min_rate"`
	// CacheTTL is the hot-key cache's staleness bound; "0s" when it is off.
	CacheTTL string `json:"cache_ttl"`
	// Keys are the top keys, hottest first. Keys that are not valid UTF-8
	// have their invalid bytes replaced by U+FFFD.
	Keys []hotkeys.KeyRate `json:"keys"`
}

// startHotKeys builds the tracker and the cache from the config and starts
// the tracker's refresh loop.
func (s *Server) startHotKeys() error {
	tcfg := hotkeys.DefaultConfig()
	tcfg.Window = s.cfg.HotKeysWindow
	tcfg.K = s.cfg.HotKeysK
	tcfg.MinRate = s.cfg.HotKeysMinRate
	tcfg.Clock = s.wall
	tcfg.Logger = s.log
	tcfg.Registerer = s.reg
	t, err := hotkeys.NewTracker(tcfg)
	if err != nil {
		return fmt.Errorf("server: hot keys: %w", err)
	}
	c, err := hotkeys.NewCache(hotkeys.CacheConfig{TTL: s.cfg.HotCacheTTL, Clock: s.wall, Registerer: s.reg})
	if err != nil {
		return fmt.Errorf("server: hot-key cache: %w", err)
	}
	if err := t.Start(); err != nil {
		return err
	}
	s.hot.tracker, s.hot.cache = t, c
	if c != nil {
		s.log.Info("hot-key cache on: reads of hot keys may miss writes made through other nodes", "ttl", s.cfg.HotCacheTTL)
	}
	return nil
}

// stopHotKeys stops the tracker's refresh loop; Observe stays safe to call.
func (s *Server) stopHotKeys(ctx context.Context) error {
	if s.hot.tracker == nil {
		return nil
	}
	return s.hot.tracker.Shutdown(ctx)
}

// mountHotKeys serves GET /v1/hotkeys[?n=N]: this node's top keys by request
// rate. Each node reports what it coordinated; `ringkv hotkeys` asks one.
func (s *Server) mountHotKeys(api *httpapi.API) {
	api.Handle("GET /v1/hotkeys", http.HandlerFunc(s.handleHotKeys))
}

func (s *Server) handleHotKeys(w http.ResponseWriter, r *http.Request) {
	n := 0
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			writeHotKeysJSON(w, http.StatusBadRequest, apitypes.ErrorBody{
				Error: fmt.Sprintf("n=%q: want a non-negative number of keys", v), Code: "BADREQUEST",
			})
			return
		}
	}
	writeHotKeysJSON(w, http.StatusOK, s.hotKeysReport(n))
}

// hotKeysReport is this node's top n keys (all K for n <= 0).
func (s *Server) hotKeysReport(n int) HotKeysReport {
	rep := HotKeysReport{
		Node: s.cfg.NodeID, Window: s.cfg.HotKeysWindow.String(), MinRate: s.cfg.HotKeysMinRate,
		CacheTTL: s.hot.cache.TTL().String(), Keys: []hotkeys.KeyRate{},
	}
	if s.hot.tracker != nil {
		rep.Keys = s.hot.tracker.Top(n)
		rep.Rate, _ = s.hot.tracker.Totals()
	}
	return rep
}

func writeHotKeysJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
