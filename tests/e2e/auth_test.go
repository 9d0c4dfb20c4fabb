package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/auth/authtest"
	"github.com/ringkv/ringkv/internal/testproc"
	"github.com/ringkv/ringkv/internal/testutil"
)

type httpCall struct {
	method, path, body string
	header             map[string]string
	user, pass         string
}

func (c httpCall) do(t *testing.T, n *node) (int, string) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, "http://"+n.HTTP+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAuthProbesFail replays issue 30's client-side probes against a real
// node started with --password, a users file and --debug-endpoints: each
// must now fail, and the users' rights hold on both ports.
func TestAuthProbesFail(t *testing.T) {
	users := authtest.WriteUsersFile(t, func(pw string) string { return testproc.HashPassword(t, binary, pw) },
		authtest.User{Name: "app", Password: "apppw", Rights: []string{"read", "write"}},
		authtest.User{Name: "ops", Password: "opspw", Rights: []string{"admin"}})
	const rootPW = "root-secret-pw"
	n := newNode(t, "auth1", "--password", rootPW, "--users-file", users, "--debug-endpoints", "--replicas", "1")
	n.Start()
	ctx := t.Context()

	app := n.redis(func(o *redis.Options) { o.Username, o.Password = "app", "apppw" })
	if err := app.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("app SET over RESP: %v", err)
	}
	ops := n.redis(func(o *redis.Options) { o.Username, o.Password = "ops", "opspw" })
	if err := ops.Set(ctx, "k", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("ops SET over RESP: %v, want NOPERM", err)
	}

	octet := map[string]string{"Content-Type": "application/octet-stream"}
	for _, tc := range []struct {
		name string
		c    httpCall
		want int
	}{
		{"GET key, no credentials", httpCall{method: "GET", path: "/v1/kv/k"}, 401},
		{"PUT key, no credentials", httpCall{method: "PUT", path: "/v1/kv/k", body: "evil", header: octet}, 401},
		{"DELETE key, no credentials", httpCall{method: "DELETE", path: "/v1/kv/k"}, 401},
		{"repair, no credentials", httpCall{method: "POST", path: "/v1/repair"}, 401},
		{"decommission, no credentials", httpCall{method: "POST", path: "/v1/admin/decommission"}, 401},
		{"metrics, no credentials", httpCall{method: "GET", path: "/metrics"}, 401},
		{"hotkeys, no credentials", httpCall{method: "GET", path: "/v1/hotkeys"}, 401},
		{"pprof cmdline, no credentials", httpCall{method: "GET", path: "/debug/pprof/cmdline"}, 401},
		{"clock control, no credentials", httpCall{method: "POST", path: "/debug/clock-offset?d=10s"}, 401},
		{"cross-site text/plain POST", httpCall{method: "POST", path: "/v1/admin/decommission", body: "x", user: "ops", pass: "opspw",
			header: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}}, 403},
		{"app decommission", httpCall{method: "POST", path: "/v1/admin/decommission", user: "app", pass: "apppw"}, 403},
		{"app clock control", httpCall{method: "POST", path: "/debug/clock-offset?d=10s", user: "app", pass: "apppw"}, 403},
		{"app PUT", httpCall{method: "PUT", path: "/v1/kv/h", body: "hv", header: octet, user: "app", pass: "apppw"}, 204},
		{"ops metrics", httpCall{method: "GET", path: "/metrics", user: "ops", pass: "opspw"}, 200},
		{"readyz open", httpCall{method: "GET", path: "/readyz"}, 200},
		{"healthz open", httpCall{method: "GET", path: "/healthz"}, 200},
	} {
		if code, body := tc.c.do(t, n); code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, code, tc.want, body)
		}
	}
	if v, err := app.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after the probes: k = %q, %v; want v", v, err)
	}

	// pprof's cmdline is served to an admin without the password in it.
	code, body := httpCall{method: "GET", path: "/debug/pprof/cmdline", user: "ops", pass: "opspw"}.do(t, n)
	if code != 200 || strings.Contains(body, rootPW) || !strings.Contains(body, "REDACTED") {
		t.Fatalf("pprof cmdline as admin: %d %q, want it served with the password redacted", code, body)
	}

	// The CLI's credentials: RINGKV_PASSWORD for the default user.
	st := exec.Command(binary, "status", "--addr", n.HTTP)
	st.Env = append(os.Environ(), "RINGKV_PASSWORD="+rootPW)
	if out, err := st.CombinedOutput(); err != nil {
		t.Fatalf("ringkv status with RINGKV_PASSWORD: %v\n%s", err, out)
	}
	st = exec.Command(binary, "status", "--addr", n.HTTP, "--user", "app", "--password", "wrong")
	if out, err := st.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("ringkv status with a wrong password: %v\n%s", err, out)
	}
	// Last, as it locks this address out for a while: a burst of wrong
	// passwords is cut short and logged as a few lines.
	var limited bool
	for range 200 {
		err := n.redis(func(o *redis.Options) { o.Password = "guess" }).Ping(ctx).Err()
		if err != nil && strings.Contains(err.Error(), "too many failed authentication attempts") {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("200 wrong passwords from one address were all checked; want the source limited")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(n.LogTail(), "failed logins") {
			return errors.New("no failed-logins line in the log yet")
		}
		return nil
	})
	if c := strings.Count(n.LogTail(), "failed logins"); c > 3 {
		t.Fatalf("failed logins logged %d times in a burst; want them sampled", c)
	}
	if strings.Contains(n.LogTail(), "guess") {
		t.Fatal("a tried password reached the log")
	}
}

// TestProtectedModeRefusesStart: a node reachable beyond loopback without
// credentials does not start unless --insecure says so.
func TestProtectedModeRefusesStart(t *testing.T) {
	// A node that started anyway would serve until killed: the deadline
	// ends the test, and the environment is cleared of every credential
	// the runner's shell may carry (RINGKV_PASSWORD would make it start).
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "server", "--node-id", "p1", "--in-memory",
		"--client-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0",
		"--peer-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RINGKV_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--client-addr") || !strings.Contains(string(out), "--insecure") {
		t.Fatalf("no auth on 0.0.0.0: %v\n%s\nwant a refusal naming --client-addr and --insecure", err, out)
	}
}
