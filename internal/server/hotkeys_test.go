package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/admin"
	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/record"
)

// newTestServer returns an unstarted in-memory node "n1", its config the
// default changed by edit (when not nil), for tests of one part of a node.
func newTestServer(t *testing.T, edit func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.NodeID, cfg.InMemory = "n1", true
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHotKeysEndpoint builds the hot-key state from a config and serves
// GET /v1/hotkeys over it as the node mounts it, without the rest of a node.
func TestHotKeysEndpoint(t *testing.T) {
	s := newTestServer(t, func(cfg *config.Config) {
		cfg.HotKeysK, cfg.HotKeysMinRate, cfg.HotCacheTTL = 5, 10, 50*time.Millisecond
	})
	clk := clock.NewManual(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s.wall, s.reg = clock.NewOffset(clk, 0), prometheus.NewRegistry()
	if err := s.startHotKeys(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.stopHotKeys(context.Background()); err != nil {
			t.Error(err)
		}
	})
	for i, key := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		for range (7 - i) * 100 {
			s.hot.tracker.Observe([]byte(key))
		}
	}
	clk.Advance(time.Second)
	s.hot.tracker.Refresh()

	api := httpapi.New(httpapi.Config{}, nil)
	admin.Mount(api, s.adminNode())
	get := func(path string) (int, []byte) {
		rec := httptest.NewRecorder()
		api.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.Bytes()
	}

	code, body := get("/v1/hotkeys")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/hotkeys: %d %s", code, body)
	}
	var rep apitypes.HotKeysReport
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Node != "n1" || rep.Window != "10s" || rep.CacheTTL != "50ms" || rep.MinRate != 10 || rep.Rate != 2800 {
		t.Errorf("report header: %+v", rep)
	}
	if len(rep.Keys) != 5 || rep.Keys[0].Key != "a" || !rep.Keys[0].Hot {
		t.Fatalf("keys: %+v", rep.Keys)
	}
	if code, body = get("/v1/hotkeys?n=2"); code != http.StatusOK {
		t.Fatalf("GET ?n=2: %d %s", code, body)
	}
	if err := json.Unmarshal(body, &rep); err != nil || len(rep.Keys) != 2 {
		t.Fatalf("?n=2: %v, %+v", err, rep.Keys)
	}
}

// TestHotKeysCacheOff: with the default config the cache is off, and the
// nil cache is still safe for the coordinator to call.
func TestHotKeysCacheOff(t *testing.T) {
	s := newTestServer(t, nil)
	s.wall, s.reg = clock.NewOffset(clock.System{}, 0), prometheus.NewRegistry()
	if err := s.startHotKeys(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.stopHotKeys(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if s.hot.cache != nil {
		t.Fatal("cache on with --hot-cache-ttl 0")
	}
	k := []byte("k")
	s.hot.cache.Put(k, s.hot.cache.Ticket(k), record.Record{Value: []byte("v")}, true)
	if _, _, hit := s.hot.cache.Get(k); hit {
		t.Fatal("the cache that is off hit")
	}
}
