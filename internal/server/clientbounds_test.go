package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/testutil"
)

// TestClientTLS starts a node with --tls-cert, --tls-key, --tls-ca and
// --tls-require-client-cert: go-redis and net/http reach it over mutual TLS,
// and neither port answers a plain-text client.
func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	srvFiles, cliFiles, err := pki.WriteBundle(dir, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.EventLoops = 0
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA, cfg.TLSRequireClientCert = srvFiles.Cert, srvFiles.Key, srvFiles.CA, true
	s := startServer(t, cfg)
	addrs := s.Addrs()
	tc, err := pki.ClientConfig(cliFiles)
	if err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	rc := redis.NewClient(&redis.Options{Addr: addrs.Client, TLSConfig: tc, MaxRetries: -1})
	defer rc.Close()
	testutil.Eventually(t, 60*time.Second, func() error { return rc.Set(ctx, "k", "v", 0).Err() })
	if got, err := rc.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET over TLS: %q, %v", got, err)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + addrs.HTTP + "/v1/kv/k")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "v" {
		t.Fatalf("HTTPS GET: %d %q", resp.StatusCode, body)
	}

	plain := redis.NewClient(&redis.Options{Addr: addrs.Client, MaxRetries: -1, ReadTimeout: 2 * time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("a plain-text RESP client was answered")
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addrs.HTTP + "/v1/kv/k"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "v") && resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served")
		}
	}
}

// TestClientTLSBadFiles: a node given a certificate it cannot load refuses
// to start, naming the flags.
func TestClientTLSBadFiles(t *testing.T) {
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.TLSCert, cfg.TLSKey = "/nonexistent/node.crt", "/nonexistent/node.key"
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("started with a missing certificate")
	}
	if !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("error %q does not name the flag", err)
	}
	s.Shutdown(context.Background())
}

func TestMaxClientMemoryCap(t *testing.T) {
	if got := maxClientMemoryCap(5 << 20); got != 5<<20 {
		t.Errorf("a set cap: %d", got)
	}
	if got := maxClientMemoryCap(0); got < 64<<20 || got > 1<<30 {
		t.Errorf("automatic cap %d, want 64 MiB..1 GiB", got)
	}
}

// TestClientTimeoutsReachThePorts: a node's --client-read-timeout closes an
// HTTP PUT that declared 16 MiB and sent 2 bytes, and a RESP command that
// stopped half way, and the 60 PUTs of issue 30 leave the heap bounded.
func TestClientTimeoutsReachThePorts(t *testing.T) {
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.ClientReadTimeout = time.Second
	s := startServer(t, cfg)
	addrs := s.Addrs()

	before := heapInUse()
	var conns []net.Conn
	for i := range 60 {
		nc, err := net.Dial("tcp", addrs.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprintf(nc, "PUT /v1/kv/k%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nab", i, 16<<20)
		conns = append(conns, nc)
	}
	resp, err := net.Dial("tcp", addrs.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	fmt.Fprintf(resp, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\nab", 16<<20)

	time.Sleep(200 * time.Millisecond) // the handlers have begun to read
	if grown := int64(heapInUse()) - int64(before); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB for 60 PUTs that sent 2 bytes each", grown>>20)
	}
	for i, nc := range append(conns, resp) {
		_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.Copy(io.Discard, nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open after the read timeout", i)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
