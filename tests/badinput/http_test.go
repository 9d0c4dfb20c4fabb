package badinput

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// creds is who a request is sent as; the zero value sends none.
type creds struct{ user, password string }

var (
	noCreds    = creds{}
	asAdmin    = creds{adminUser, adminPassword}
	asReader   = creds{readerUser, readerPassword}
	asWriter   = creds{writerUser, writerPassword}
	wrongCreds = creds{adminUser, "not-the-password"}
)

// httpReply is what an HTTP probe got.
type httpReply struct {
	status int
	header http.Header
	body   string
}

func (r httpReply) String() string {
	return fmt.Sprintf("%d %s", r.status, oneLine(string(truncate([]byte(r.body), 60))))
}

func (c *cluster) httpDo(t *testing.T, n *node, method, path, body string, who creds, header map[string]string) httpReply {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+n.HTTP+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if who.user != "" {
		req.SetBasicAuth(who.user, who.password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return httpReply{resp.StatusCode, resp.Header, string(b)}
}

// refused is an HTTP probe that must get one of the statuses and no data-set
// value in its body.
func refused(n int, method, path, body string, who creds, header map[string]string, want ...int) func(t *testing.T, c *cluster) string {
	return func(t *testing.T, c *cluster) string {
		r := c.httpDo(t, c.nodes[n], method, path, body, who, header)
		ok := false
		for _, w := range want {
			ok = ok || r.status == w
		}
		if !ok {
			t.Errorf("%s %s: %s, want one of %v", method, path, r, want)
		}
		if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", method, path)
		}
		if strings.Contains(r.body, "badinput-value-") {
			t.Errorf("%s %s: the refusal carries data: %s", method, path, r)
		}
		return r.String()
	}
}

// rawHTTP sends raw bytes over TLS to n's HTTP port and returns the answer.
func (c *cluster) rawHTTP(t *testing.T, n *node, data []byte) answer {
	t.Helper()
	conn := c.dialTLS(t, n.HTTP)
	conn.Write(data)
	// Up to the end of the answer's headers: the connection may be kept
	// alive for the next request.
	return readAnswer(conn, 5*time.Second, func(b []byte) bool { return bytes.Contains(b, []byte("\r\n\r\n")) })
}

func (c *cluster) dialTLS(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c.sec.clientTLS())
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// statusOf returns the status code of a raw HTTP answer, 0 if none.
func statusOf(a answer) int {
	var code int
	_, _ = fmt.Sscanf(string(a.data), "HTTP/1.1 %d", &code) // no match leaves 0
	if code == 0 {
		_, _ = fmt.Sscanf(string(a.data), "HTTP/1.0 %d", &code)
	}
	return code
}

func httpProbes() []probe {
	kv := "/v1/kv/" + dataKey(4)
	foreign := map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}
	form := map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
	return []probe{
		{"http", "no-creds-get", "GET a data key without credentials", refused(0, "GET", kv, "", noCreds, nil, 401)},
		{"http", "no-creds-put", "PUT a data key without credentials", refused(0, "PUT", kv, "owned", noCreds, nil, 401)},
		{"http", "no-creds-delete", "DELETE a data key without credentials", refused(1, "DELETE", kv, "", noCreds, nil, 401)},
		{"http", "no-creds-repair", "POST /v1/repair without credentials", refused(1, "POST", "/v1/repair", "", noCreds, nil, 401)},
		{"http", "no-creds-decommission", "POST /v1/admin/decommission without credentials",
			refused(2, "POST", "/v1/admin/decommission", "", noCreds, nil, 401)},
		{"http", "wrong-password-decommission", "POST /v1/admin/decommission with a wrong password",
			refused(2, "POST", "/v1/admin/decommission", "", wrongCreds, nil, 401)},
		{"http", "bearer-wrong", "GET a data key with a wrong bearer token",
			refused(0, "GET", kv, "", noCreds, map[string]string{"Authorization": "Bearer not-the-password"}, 401)},
		{"http", "reader-decommission", "POST /v1/admin/decommission as a user with only the read right",
			refused(2, "POST", "/v1/admin/decommission", "", asReader, nil, 403)},
		{"http", "reader-put", "PUT a data key as a user with only the read right", refused(0, "PUT", kv, "owned", asReader, nil, 403)},
		{"http", "cross-site-text-plain", "text/plain POST /v1/admin/decommission, foreign Origin, admin credentials",
			refused(2, "POST", "/v1/admin/decommission", "x", asAdmin, foreign, 403)},
		{"http", "cross-site-form", "form POST /v1/repair, foreign Origin, admin credentials",
			refused(1, "POST", "/v1/repair", "a=b", asAdmin, form, 403)},
		{"http", "cross-site-put", "text/plain PUT of a data key, foreign Origin, admin credentials",
			refused(0, "PUT", kv, "owned", asAdmin, foreign, 403)},
		{"http", "metrics-no-creds", "GET /metrics without credentials", refused(0, "GET", "/metrics", "", noCreds, nil, 401)},
		{"http", "hotkeys-no-creds", "GET /v1/hotkeys without credentials", refused(0, "GET", "/v1/hotkeys", "", noCreds, nil, 401)},
		{"http", "debug-no-creds", "GET /debug/pprof/cmdline without credentials",
			refused(1, "GET", "/debug/pprof/cmdline", "", noCreds, nil, 401)},
		{"http", "debug-not-admin", "GET /debug/pprof/cmdline as a read-write user",
			refused(1, "GET", "/debug/pprof/cmdline", "", asWriter, nil, 403)},
		{"http", "debug-clock-not-admin", "POST /debug/clock-offset?d=1h as a read-write user",
			refused(1, "POST", "/debug/clock-offset?d=1h", "", asWriter, nil, 403)},
		{"http", "debug-no-secrets", "GET /debug/pprof/cmdline as admin: no password in it",
			func(t *testing.T, c *cluster) string {
				r := c.httpDo(t, c.nodes[1], "GET", "/debug/pprof/cmdline", "", asAdmin, nil)
				if strings.Contains(r.body, defaultPassword) {
					t.Errorf("/debug/pprof/cmdline shows the password: %s", r)
				}
				return fmt.Sprintf("%d, %d bytes, no password", r.status, len(r.body))
			}},
		{"http", "slow-bodies-16MiB", "60 authenticated PUTs declare 16 MiB bodies (a legal size), send 2 bytes",
			func(t *testing.T, c *cluster) string {
				var conns []net.Conn
				for i := range 60 {
					conn := c.dialTLS(t, c.nodes[i%3].HTTP)
					fmt.Fprintf(conn, "PUT /v1/kv/slow%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\nab",
						i, defaultPassword, maxValueBytes)
					conns = append(conns, conn)
				}
				time.Sleep(500 * time.Millisecond) // let the nodes read what they were sent
				c.checkMemory(t, "with 60 bodies of 16 MiB declared")
				answered := 0
				for _, conn := range conns {
					if a := readAnswer(conn, 100*time.Millisecond, nil); len(a.data) > 0 || a.closed {
						answered++
					}
				}
				closeAll(conns)
				return fmt.Sprintf("memory bounded; %d of 60 answered or closed at once", answered)
			}},
		{"http", "plaintext-to-tls", "a plain HTTP request to the TLS port",
			func(t *testing.T, c *cluster) string {
				conn := dial(t, c.nodes[0].HTTP)
				fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", kv)
				a := readAnswer(conn, 5*time.Second, nil)
				if code := statusOf(a); code != 400 && !a.closed || strings.Contains(string(a.data), "badinput-value") {
					t.Errorf("plain HTTP to the TLS port: %s", a)
				}
				return a.String()
			}},
		{"http", "bad-method", "BREW and a 300-byte method on a data key",
			func(t *testing.T, c *cluster) string {
				r := c.httpDo(t, c.nodes[0], "BREW", kv, "", asAdmin, nil)
				if r.status < 400 || r.status >= 500 && r.status != 501 {
					t.Errorf("BREW: %s, want a 4xx or 501", r)
				}
				a := c.rawHTTP(t, c.nodes[0], []byte(strings.Repeat("X", 300)+" "+kv+" HTTP/1.1\r\nHost: x\r\n\r\n"))
				if code := statusOf(a); (code < 400 || code >= 500 && code != 501) && !a.closed {
					t.Errorf("a 300-byte method: %s", a)
				}
				return fmt.Sprintf("BREW: %d; long method: %s", r.status, a)
			}},
		{"http", "huge-header", "a 2 MiB header line",
			func(t *testing.T, c *cluster) string {
				a := c.rawHTTP(t, c.nodes[1], []byte("GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 2<<20)+"\r\n\r\n"))
				if code := statusOf(a); code != 431 && code != 400 && !a.closed {
					t.Errorf("a 2 MiB header: %s, want 431, 400 or a closed connection", a)
				}
				return a.String()
			}},
		{"http", "bad-request-line", "a request line of random garbage",
			func(t *testing.T, c *cluster) string {
				a := c.rawHTTP(t, c.nodes[2], []byte("\x00\x01\xffgarbage\r\n\r\n"))
				if code := statusOf(a); code != 400 && !a.closed {
					t.Errorf("garbage request line: %s", a)
				}
				return a.String()
			}},
		{"http", "bad-ttl", "PUT with ttl=-5, abc, 1e30 and 20 digits",
			func(t *testing.T, c *cluster) string {
				var got []string
				for _, ttl := range []string{"-5", "abc", "1e30", "99999999999999999999"} {
					r := c.httpDo(t, c.nodes[0], "PUT", "/v1/kv/ttlprobe?ttl="+ttl, "v", asAdmin, nil)
					if r.status != 400 {
						t.Errorf("ttl=%s: %s, want 400", ttl, r)
					}
					got = append(got, fmt.Sprintf("%s→%d", ttl, r.status))
				}
				return strings.Join(got, " ")
			}},
		{"http", "bad-format", "GET a data key with format=yaml",
			refused(0, "GET", kv+"?format=yaml", "", asAdmin, nil, 400)},
		{"http", "bad-json", "PUT a data key with Content-Type application/json and broken JSON, no credentials",
			refused(0, "PUT", kv, `{"value": `, noCreds, map[string]string{"Content-Type": "application/json"}, 401)},
	}
}
