package resp

import (
	"crypto/tls"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/pki"
)

// tlsFiles makes a CA, a server certificate for loopback and a client
// certificate, all in a temporary directory.
type tlsFiles struct {
	server, client pki.Files
	// otherClient is a client certificate from a CA the server does not trust.
	otherClient pki.Files
}

func newTLSFiles(tb testing.TB) tlsFiles {
	tb.Helper()
	dir, otherDir := tb.TempDir(), tb.TempDir()
	ca := must(pki.NewCA("test CA", time.Hour))
	noErr(tb, "write CA", ca.WriteCA(dir))
	other := must(pki.NewCA("other CA", time.Hour))
	noErr(tb, "write other CA", other.WriteCA(otherDir))
	return tlsFiles{
		server:      must(ca.IssueFiles(dir, "server", []string{"127.0.0.1", "localhost"}, pki.Server, time.Hour)),
		client:      must(ca.IssueFiles(dir, "client", nil, pki.Client, time.Hour)),
		otherClient: must(other.IssueFiles(otherDir, "client", nil, pki.Client, time.Hour)),
	}
}

func startTLSServer(tb testing.TB, f tlsFiles, auth pki.ClientAuth, loops int) *testServer {
	tb.Helper()
	cfg := must(pki.ServerConfig(f.server, auth))
	return startServer(tb, func(c *Config) { c.TLS = cfg; c.EventLoops = loops })
}

// TestTLSWithGoRedis: go-redis over TLS, verifying the server against the
// CA, runs commands on either kind of server loop setting; a plain-text
// client gets no reply and is closed.
func TestTLSWithGoRedis(t *testing.T) {
	f := newTLSFiles(t)
	loopModes(t, func(t *testing.T, loops int) {
		ts := startTLSServer(t, f, pki.NoClientCert, loops)
		clientCfg := must(pki.ClientConfig(pki.Files{CA: f.server.CA}))
		c := ts.client(t, 3, func(o *redis.Options) { o.TLSConfig = clientCfg })
		noErr(t, "SET over TLS", c.Set(t.Context(), "k", "v", 0).Err())
		equal(t, "GET over TLS", must(c.Get(t.Context(), "k").Result()), "v")
		pipe := c.Pipeline()
		for range 100 {
			pipe.Get(t.Context(), "k")
		}
		_, err := pipe.Exec(t.Context())
		noErr(t, "pipeline over TLS", err)

		plain, rd := dial(t, ts.addr)
		send(t, plain, "PING\r\n")
		expectClosed(t, rd)
		equal(t, "failed handshakes counted", ts.closedCount(t, "tls_handshake"), 1)
	})
}

// TestTLSClientCertificates: with a CA and client certificates required,
// only a client holding a certificate from that CA gets to run commands.
func TestTLSClientCertificates(t *testing.T) {
	f := newTLSFiles(t)
	ts := startTLSServer(t, f, pki.RequireClientCert, 1)

	with := must(pki.ClientConfig(f.client))
	c := ts.client(t, 2, func(o *redis.Options) { o.TLSConfig = with })
	noErr(t, "PING with a client certificate", c.Ping(t.Context()).Err())

	for name, files := range map[string]pki.Files{
		"no certificate":            {CA: f.server.CA},
		"certificate of another CA": {CA: f.server.CA, Cert: f.otherClient.Cert, Key: f.otherClient.Key},
	} {
		cfg := must(pki.ClientConfig(files))
		c := ts.client(t, 2, func(o *redis.Options) { o.TLSConfig = cfg })
		if err := c.Ping(t.Context()).Err(); err == nil {
			t.Errorf("%s: PING answered", name)
		}
	}

	// A client that does not check the server is still refused without
	// a certificate: the check is the server's.
	nc, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the point of the test
	if err == nil {
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = nc.Write([]byte("PING\r\n"))
		if err == nil {
			buf := make([]byte, 16)
			var n int
			n, err = nc.Read(buf)
			if n > 0 {
				t.Errorf("a client without a certificate read %q", buf[:n])
			}
		}
		nc.Close()
	}
	if err == nil {
		t.Error("a client without a certificate was not refused")
	}
}

// TestTLSRedisCLI: redis-cli --tls --cacert works against the port, the way
// the operations guide tells operators to connect.
func TestTLSRedisCLI(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed")
	}
	if out, _ := exec.Command(cli, "--help").CombinedOutput(); !strings.Contains(string(out), "--tls") {
		t.Skip("this redis-cli was built without TLS")
	}
	f := newTLSFiles(t)
	ts := startTLSServer(t, f, pki.NoClientCert, 1)
	host, port := splitHostPort(t, ts.addr)
	run := func(args ...string) string {
		t.Helper()
		base := []string{"--tls", "--cacert", f.server.CA, "-h", host, "-p", port}
		out, err := exec.CommandContext(t.Context(), cli, append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	equal(t, "SET", run("SET", "greeting", "hello"), "OK")
	equal(t, "GET", run("GET", "greeting"), "hello")

	// Without --tls, redis-cli gets no answer.
	out, err := exec.CommandContext(t.Context(), cli, "-h", host, "-p", port, "PING").CombinedOutput()
	if err == nil && strings.Contains(string(out), "PONG") {
		t.Errorf("plain redis-cli got %q", out)
	}
}

func splitHostPort(tb testing.TB, addr string) (host, port string) {
	tb.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		tb.Fatal(errors.New("no port in " + addr))
	}
	return addr[:i], addr[i+1:]
}

func noErr(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}
