package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/config"
)

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"ringkv", "server", "--password", "hunter2", "--node-id", "n1"},
			[]string{"ringkv", "server", "--password", redacted, "--node-id", "n1"}},
		{[]string{"ringkv", "server", "--password=hunter2"}, []string{"ringkv", "server", "--password=" + redacted}},
		{[]string{"ringkv", "-password", "hunter2"}, []string{"ringkv", "-password", redacted}},
		{[]string{"ringkv", "--node-id", "password", "--users-file", "/u.yaml"},
			[]string{"ringkv", "--node-id", "password", "--users-file", "/u.yaml"}},
		{[]string{"ringkv", "--password"}, []string{"ringkv", "--password"}},
	} {
		if got := redactArgs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("redactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestMetricsOpenLeavesOutKeyNames serves /metrics as a node does, open and
// closed: open, no series labelled with a key remains.
func TestMetricsOpenLeavesOutKeyNames(t *testing.T) {
	for _, open := range []bool{false, true} {
		s := newTestServer(t, func(c *config.Config) { c.MetricsOpen = open })
		s.reg = prometheus.NewRegistry()
		hot := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ringkv_hotkeys_key_rate", Help: "h"}, []string{"rank", "key"})
		hot.WithLabelValues("1", "user:secret-key").Set(5)
		other := prometheus.NewCounter(prometheus.CounterOpts{Name: "ringkv_other_total", Help: "o"})
		other.Inc()
		s.reg.MustRegister(hot, other)
		rec := httptest.NewRecorder()
		s.metricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		if !strings.Contains(string(body), "ringkv_other_total 1") {
			t.Fatalf("open=%v: other metrics missing:\n%s", open, body)
		}
		if got := strings.Contains(string(body), "secret-key"); got == open {
			t.Fatalf("open=%v: key name served = %v:\n%s", open, got, body)
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
