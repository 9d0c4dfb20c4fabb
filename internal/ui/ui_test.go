package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/ui"
)

// server mounts the dashboard as the node does, behind the HTTP port's
// guard with --password "pw".
func server(t *testing.T) string {
	t.Helper()
	au, err := auth.New(auth.Config{Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	a := httpapi.New(httpapi.Config{Auth: au}, nil)
	a.Handle("GET /ui/", http.StripPrefix("/ui", ui.Handler()))
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, method, url, pass string) (*http.Response, string) {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pass != "" {
		r.SetBasicAuth("default", pass)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The page follows the port's authentication: without credentials the
// browser is asked for them (401 with a Basic challenge), with them the
// page and its script are served, under a policy that lets nothing from
// elsewhere run in it.
func TestDashboardFollowsAuth(t *testing.T) {
	base := server(t)
	resp, _ := get(t, "GET", base+"/ui/", "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("/ui/ without credentials: %d %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, _ = get(t, "GET", base+"/ui/", "wrong")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/ui/ with a wrong password: %d, want 401", resp.StatusCode)
	}
	resp, body := get(t, "GET", base+"/ui/", "pw")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<script src="app.js">`) {
		t.Fatalf("/ui/ with the password: %d %.200q", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("Content-Security-Policy %q, want default-src 'self'", csp)
	}
	for _, f := range []string{"app.js", "style.css"} {
		resp, body := get(t, "GET", base+"/ui/"+f, "pw")
		if resp.StatusCode != http.StatusOK || len(body) < 100 {
			t.Fatalf("/ui/%s: %d, %d bytes", f, resp.StatusCode, len(body))
		}
	}
}

// The dashboard only reads: it answers nothing but GET (and HEAD).
func TestDashboardIsReadOnly(t *testing.T) {
	base := server(t)
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		resp, _ := get(t, m, base+"/ui/", "pw")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s /ui/: %d, want 405", m, resp.StatusCode)
		}
	}
}

// The page loads nothing from other hosts: it must work without internet
// access and leak nothing to a CDN.
func TestDashboardLoadsNothingFromElsewhere(t *testing.T) {
	base := server(t)
	for _, f := range []string{"", "app.js", "style.css"} {
		_, body := get(t, "GET", base+"/ui/"+f, "pw")
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if i := strings.Index(body, bad); i >= 0 && !strings.Contains(body[i:min(i+40, len(body))], "www.w3.org/2000/svg") {
				t.Fatalf("/ui/%s refers to %q: %.80q", f, bad, body[i:])
			}
		}
	}
}
