package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/auth/authtest"
)

// guardedServer serves an API with --password "rootpw" and users reader
// (read), writer (read, write) and ops (admin) over real HTTP, with an admin
// route and /metrics mounted as the server mounts them.
func guardedServer(t *testing.T, metricsOpen bool, mod func(*auth.Config)) string {
	t.Helper()
	acfg := auth.Config{Password: "rootpw", UsersFile: authtest.WriteUsersFile(t, nil, authtest.ReaderWriterOps()...)}
	if mod != nil {
		mod(&acfg)
	}
	au, err := auth.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Auth: au, MetricsOpen: metricsOpen}, newMemBackend())
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := IdentityFrom(r.Context())
		_, _ = io.WriteString(w, "served for "+id.Name)
	})
	a.Handle("POST /v1/repair", ok)
	a.Handle("POST /v1/admin/decommission", ok)
	a.Handle("GET /metrics", ok)
	a.Handle("GET /v1/hotkeys", ok)
	a.Handle("GET /v1/cluster", ok)
	a.Handle("GET /debug/pprof/cmdline", ok)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

type req struct {
	method, path, body string
	header             map[string]string
	user, pass         string // Basic when user is set
	bearer             string
}

func (q req) do(t *testing.T, base string) (int, http.Header, string) {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r, err := http.NewRequestWithContext(t.Context(), q.method, base+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.user != "" {
		r.SetBasicAuth(q.user, q.pass)
	}
	if q.bearer != "" {
		r.Header.Set("Authorization", "Bearer "+q.bearer)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

var octet = map[string]string{"Content-Type": "application/octet-stream"}

func TestGuardCredentialsAndRights(t *testing.T) {
	base := guardedServer(t, false, nil)
	for _, tc := range []struct {
		name string
		q    req
		want int
	}{
		{"no credentials GET", req{method: "GET", path: "/v1/kv/k"}, 401},
		{"no credentials PUT", req{method: "PUT", path: "/v1/kv/k", body: "v", header: octet}, 401},
		{"no credentials DELETE", req{method: "DELETE", path: "/v1/kv/k"}, 401},
		{"no credentials repair", req{method: "POST", path: "/v1/repair"}, 401},
		{"no credentials decommission", req{method: "POST", path: "/v1/admin/decommission"}, 401},
		{"no credentials metrics", req{method: "GET", path: "/metrics"}, 401},
		{"no credentials hotkeys", req{method: "GET", path: "/v1/hotkeys"}, 401},
		{"no credentials pprof cmdline", req{method: "GET", path: "/debug/pprof/cmdline"}, 401},
		{"no credentials cluster", req{method: "GET", path: "/v1/cluster"}, 401},
		{"wrong password", req{method: "GET", path: "/v1/kv/k", user: "writer", pass: "readpw"}, 401},
		{"wrong bearer", req{method: "GET", path: "/v1/kv/k", bearer: "nope"}, 401},
		{"healthz open", req{method: "GET", path: "/healthz"}, 200},
		{"readyz open", req{method: "GET", path: "/readyz"}, 200},
		{"livez open", req{method: "GET", path: "/livez"}, 200},

		{"writer PUT", req{method: "PUT", path: "/v1/kv/k", body: "v", header: octet, user: "writer", pass: "writepw"}, 204},
		{"reader GET", req{method: "GET", path: "/v1/kv/k", user: "reader", pass: "readpw"}, 200},
		{"reader PUT", req{method: "PUT", path: "/v1/kv/k", body: "x", header: octet, user: "reader", pass: "readpw"}, 403},
		{"reader DELETE", req{method: "DELETE", path: "/v1/kv/k", user: "reader", pass: "readpw"}, 403},
		{"reader cluster", req{method: "GET", path: "/v1/cluster", user: "reader", pass: "readpw"}, 200},
		{"writer repair", req{method: "POST", path: "/v1/repair", user: "writer", pass: "writepw"}, 403},
		{"writer metrics", req{method: "GET", path: "/metrics", user: "writer", pass: "writepw"}, 403},
		{"writer pprof", req{method: "GET", path: "/debug/pprof/cmdline", user: "writer", pass: "writepw"}, 403},
		{"ops GET key", req{method: "GET", path: "/v1/kv/k", user: "ops", pass: "opspw"}, 403},
		{"ops repair", req{method: "POST", path: "/v1/repair", user: "ops", pass: "opspw"}, 200},
		{"ops decommission", req{method: "POST", path: "/v1/admin/decommission", user: "ops", pass: "opspw"}, 200},
		{"ops metrics", req{method: "GET", path: "/metrics", user: "ops", pass: "opspw"}, 200},
		{"bearer default DELETE", req{method: "DELETE", path: "/v1/kv/other", bearer: "rootpw"}, 200},
		{"basic default repair", req{method: "POST", path: "/v1/repair", user: "default", pass: "rootpw"}, 200},
	} {
		code, h, body := tc.q.do(t, base)
		if code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, code, tc.want, body)
		}
		if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: 401 without WWW-Authenticate: Basic", tc.name)
		}
	}
	// The refused writes changed nothing.
	if code, _, body := (req{method: "GET", path: "/v1/kv/k", user: "reader", pass: "readpw"}).do(t, base); code != 200 || body != "v" {
		t.Fatalf("after refused writes: %d %q, want 200 \"v\"", code, body)
	}
}

func TestGuardMetricsOpen(t *testing.T) {
	base := guardedServer(t, true, nil)
	if code, _, _ := (req{method: "GET", path: "/metrics"}).do(t, base); code != 200 {
		t.Fatalf("--metrics-open: /metrics answered %d", code)
	}
	if code, _, _ := (req{method: "GET", path: "/v1/hotkeys"}).do(t, base); code != 401 {
		t.Fatalf("--metrics-open opened /v1/hotkeys too: %d", code)
	}
}

func TestGuardRefusesCrossSite(t *testing.T) {
	base := guardedServer(t, false, nil)
	w := func(q req) req { q.user, q.pass = "writer", "writepw"; return q }
	o := func(q req) req { q.user, q.pass = "ops", "opspw"; return q }
	for _, tc := range []struct {
		name string
		q    req
		want int
	}{
		{"text/plain POST, foreign Origin", o(req{method: "POST", path: "/v1/repair", body: "x",
			header: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}}), 403},
		{"text/plain POST, no Origin", o(req{method: "POST", path: "/v1/repair", body: "x",
			header: map[string]string{"Content-Type": "text/plain"}}), 415},
		{"form POST", o(req{method: "POST", path: "/v1/admin/decommission", body: "a=b",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}), 415},
		{"multipart PUT", w(req{method: "PUT", path: "/v1/kv/k", body: "x",
			header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}}), 415},
		{"json PUT, foreign Origin", w(req{method: "PUT", path: "/v1/kv/k", body: "x",
			header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}}), 403},
		{"null Origin", w(req{method: "DELETE", path: "/v1/kv/k",
			header: map[string]string{"Origin": "null"}}), 403},
		{"Sec-Fetch-Site cross-site", w(req{method: "DELETE", path: "/v1/kv/k",
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}}), 403},
		{"Origin without Content-Type", o(req{method: "POST", path: "/v1/repair",
			header: map[string]string{"Origin": base}}), 415},
		{"same Origin, json", o(req{method: "POST", path: "/v1/repair", body: "{}",
			header: map[string]string{"Content-Type": "application/json", "Origin": base}}), 200},
		{"no Origin, no body (curl)", o(req{method: "POST", path: "/v1/repair"}), 200},
		{"octet-stream PUT", w(req{method: "PUT", path: "/v1/kv/k", body: "v", header: octet}), 204},
	} {
		if code, _, body := tc.q.do(t, base); code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, code, tc.want, body)
		}
	}
}

func TestGuardRateLimitsFailures(t *testing.T) {
	base := guardedServer(t, false, func(c *auth.Config) { c.FailBurst = 3; c.FailRate = 0.001 })
	for range 3 {
		if code, _, _ := (req{method: "GET", path: "/v1/kv/k", bearer: "guess"}).do(t, base); code != 401 {
			t.Fatalf("wrong password: %d, want 401", code)
		}
	}
	code, h, _ := (req{method: "GET", path: "/v1/kv/k", bearer: "rootpw"}).do(t, base)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("after the burst: %d (Retry-After %q), want 429 with Retry-After", code, h.Get("Retry-After"))
	}
}

func TestGuardAuthOff(t *testing.T) {
	a := New(Config{}, newMemBackend())
	a.Handle("POST /v1/repair", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	if code, _, _ := (req{method: "POST", path: "/v1/repair"}).do(t, srv.URL); code != 200 {
		t.Fatalf("auth off: repair answered %d", code)
	}
	// Cross-site requests are refused even with authentication off: a node on
	// loopback is exactly what a page in the operator's browser can reach.
	q := req{method: "POST", path: "/v1/repair", body: "x",
		header: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}}
	if code, _, _ := q.do(t, srv.URL); code != 403 {
		t.Fatalf("auth off, cross-site: %d, want 403", code)
	}
}
