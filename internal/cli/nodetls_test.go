package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/pki"
)

// TestStatusOverTLS: `ringkv status` with --tls-ca, --tls-cert and --tls-key
// reaches a node whose HTTP port requires client certificates; without them
// it does not.
func TestStatusOverTLS(t *testing.T) {
	dir := t.TempDir()
	srvFiles, cliFiles, err := pki.WriteBundle(dir, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ServerConfig(srvFiles, pki.RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(cannedCluster))
	}))
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	te := newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", addr, "--timeout", "5s",
		"--tls-ca", cliFiles.CA, "--tls-cert", cliFiles.Cert, "--tls-key", cliFiles.Key); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	if !strings.Contains(te.stdout.String(), "node1") {
		t.Fatalf("status printed %q", te.stdout.String())
	}

	for name, args := range map[string][]string{
		"no TLS flags":          nil,
		"no client certificate": {"--tls-ca", cliFiles.CA},
	} {
		te := newTestEnv(t)
		if code := te.run(t.Context(), append([]string{"status", "--addr", addr, "--timeout", "5s"}, args...)...); code == exitOK {
			t.Errorf("%s: status succeeded: %s", name, te.stdout.String())
		}
	}

	te = newTestEnv(t)
	if code := te.run(t.Context(), "status", "--addr", addr, "--tls-cert", cliFiles.Cert, "--tls-key", cliFiles.Key); code == exitOK {
		t.Error("--tls-cert without --tls-ca was accepted")
	} else if !strings.Contains(te.stderr.String(), "--tls-ca") {
		t.Errorf("error does not name --tls-ca: %s", te.stderr.String())
	}
}

// TestBenchOverTLS: `ringkv bench` with the TLS flags loads a node whose
// client port requires client certificates.
func TestBenchOverTLS(t *testing.T) {
	dir := t.TempDir()
	srvFiles, cliFiles, err := pki.WriteBundle(dir, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addr := startRealNode(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey, c.TLSCA, c.TLSRequireClientCert = srvFiles.Cert, srvFiles.Key, srvFiles.CA, true
	}).Client
	te := newTestEnv(t)
	if code := te.run(t.Context(), "bench", "--addr", addr, "--requests", "200", "--conns", "2", "--keys", "20",
		"--warmup", "0s", "--consistency", "one", "-q",
		"--tls-ca", cliFiles.CA, "--tls-cert", cliFiles.Cert, "--tls-key", cliFiles.Key); code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, te.stderr.String())
	}
	te = newTestEnv(t)
	if code := te.run(t.Context(), "bench", "--addr", addr, "--requests", "20", "--warmup", "0s", "-q"); code == exitOK {
		t.Fatal("a plain-text bench ran against a TLS port")
	}
}
