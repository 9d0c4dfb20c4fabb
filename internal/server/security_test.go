package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/config"
)

// TestMetricsCarryNoKeyNames serves /metrics as a node does, open and
// closed, after a key got hot: its name is in no series either way.
func TestMetricsCarryNoKeyNames(t *testing.T) {
	for _, open := range []bool{false, true} {
		s := newTestServer(t, func(c *config.Config) { c.MetricsOpen = open; c.HotKeysMinRate = 10 })
		clk := clock.NewManual(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
		s.wall, s.reg = clock.NewOffset(clk, 0), prometheus.NewRegistry()
		if err := s.startHotKeys(); err != nil {
			t.Fatal(err)
		}
		for range 500 {
			s.hot.tracker.Observe([]byte("user:secret-key"))
		}
		clk.Advance(time.Second)
		s.hot.tracker.Refresh()
		if err := s.stopHotKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		s.metricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		if !strings.Contains(string(body), `ringkv_hotkeys_key_rate{rank="1"} 500`) {
			t.Fatalf("open=%v: the hottest rank's rate is missing:\n%s", open, body)
		}
		if strings.Contains(string(body), "secret-key") {
			t.Fatalf("open=%v: a key name is in the metrics:\n%s", open, body)
		}
	}
}

// TestBadUsersFileStopsStart: a users file with a plain password stops the
// node before it opens storage or binds a port.
func TestBadUsersFileStopsStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte("users:\n  - {name: a, password: hunter2, rights: [read]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, func(c *config.Config) { c.UsersFile = path })
	err := s.Start()
	if err == nil || !strings.Contains(err.Error(), "not a bcrypt hash") {
		t.Fatalf("Start = %v, want the users file's error", err)
	}
	if s.respLn != nil || s.store != nil {
		t.Fatal("a listener or the store was opened before the users file was checked")
	}
}
