package httpapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/testutil"
)

// serveBounded serves the API with NewServer on a loopback port and returns
// its address and a count of the requests its handler has begun.
func serveBounded(tb testing.TB, cfg ServerConfig) (addr string, begun *atomic.Int64) {
	tb.Helper()
	a := New(Config{Logger: slog.New(slog.NewTextHandler(tbWriter{tb}, nil))}, newMemBackend())
	begun = new(atomic.Int64)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begun.Add(1)
		a.Handler().ServeHTTP(w, r)
	})
	cfg.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := NewServer(h, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		if cfg.TLS != nil {
			_ = srv.ServeTLS(ln, "", "")
		} else {
			_ = srv.Serve(ln)
		}
	}()
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), begun
}

func heapBytes() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestDeclaredBodiesDoNotCostMemory is the attack of issue 30: 60 PUTs that
// declare 16 MiB bodies and send 2 bytes. The heap must not grow by what was
// declared (960 MiB), and every connection must be closed once the read
// deadline passes.
func TestDeclaredBodiesDoNotCostMemory(t *testing.T) {
	addr, begun := serveBounded(t, ServerConfig{ReadTimeout: time.Second})
	const n = 60
	before := heapBytes()
	conns := make([]net.Conn, n)
	for i := range conns {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprintf(nc, "PUT /v1/kv/k%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nab", i, 16<<20)
		conns[i] = nc
	}
	deadline := time.Now().Add(10 * time.Second)
	for begun.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := begun.Load(); got < n {
		t.Fatalf("%d of %d requests reached the handler", got, n)
	}
	// The handlers are now reading their bodies; whatever they set aside
	// for them is on the heap.
	time.Sleep(100 * time.Millisecond)
	if grown := int64(heapBytes()) - int64(before); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB for %d requests that sent 2 bytes each", grown>>20, n)
	}

	for i, nc := range conns {
		_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		rd := bufio.NewReader(nc)
		resp, err := http.ReadResponse(rd, nil)
		if err == nil {
			if resp.StatusCode < 400 {
				t.Errorf("connection %d: status %d for a body that never came", i, resp.StatusCode)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			_, err = rd.ReadByte()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open after the read deadline", i)
		}
	}
}

// TestHeaderBytesBounded: a request with more header bytes than allowed is
// refused rather than buffered.
func TestHeaderBytesBounded(t *testing.T) {
	addr, _ := serveBounded(t, ServerConfig{MaxHeaderBytes: 4 << 10})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// TestHTTPS: with TLS set the port serves HTTPS, verified against the CA,
// and a client certificate is required when asked for.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	serverFiles, clientFiles, err := pki.WriteBundle(dir, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverCfg, err := pki.ServerConfig(serverFiles, pki.RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveBounded(t, ServerConfig{TLS: serverCfg})

	get := func(cfg *tls.Config) (int, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + addr + "/livez")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	withCert, err := pki.ClientConfig(clientFiles)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := get(withCert); err != nil || status != http.StatusOK {
		t.Fatalf("with a client certificate: status %d, err %v", status, err)
	}
	noCert, err := pki.ClientConfig(pki.Files{CA: serverFiles.CA})
	if err != nil {
		t.Fatal(err)
	}
	if status, err := get(noCert); err == nil {
		t.Fatalf("without a client certificate: status %d, want a refused handshake", status)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	if resp, err := c.Get("http://" + addr + "/livez"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served")
		}
	}
	// The node serves its RESP port with the same config: net/http must
	// not have written into it.
	if len(serverCfg.NextProtos) != 0 {
		t.Fatalf("serving HTTPS changed the caller's TLS config: NextProtos %v", serverCfg.NextProtos)
	}
}

// TestWriteTimeout: a client that asks for a large value and does not read
// it is cut off once the write timeout passes, while a keep-alive
// connection idle for longer than it still serves its next request.
func TestWriteTimeout(t *testing.T) {
	addr, _ := serveBounded(t, ServerConfig{WriteTimeout: 300 * time.Millisecond})
	hc := &http.Client{Timeout: 20 * time.Second}
	defer hc.CloseIdleConnections()
	value := strings.Repeat("v", DefaultMaxValueBytes)
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/kv/big", strings.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("PUT: status %d", resp.StatusCode)
	}

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET /v1/kv/big HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(time.Second) // not reading: the server's write blocks
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, _ := io.ReadAll(nc)
	if len(got) >= len(value) {
		t.Fatalf("a client that did not read got all %d bytes", len(got))
	}

	// The deadline does not outlive its request.
	for i := range 2 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		resp, err := hc.Get("http://" + addr + "/livez")
		if err != nil {
			t.Fatalf("request %d on a keep-alive connection: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
}

// TestConnectionsBounded holds MaxConns keep-alive connections open: the next
// one is closed unanswered, and once one of the held connections goes a new
// one is served again.
func TestConnectionsBounded(t *testing.T) {
	addr, _ := serveBounded(t, ServerConfig{MaxConns: 2})
	get := func(nc net.Conn) error {
		if _, err := fmt.Fprintf(nc, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	held := []net.Conn{dial(), dial()}
	for i, nc := range held {
		if err := get(nc); err != nil {
			t.Fatalf("connection %d within the bound: %v", i, err)
		}
	}
	if err := get(dial()); err == nil {
		t.Fatal("a third connection was served with MaxConns 2")
	}
	held[0].Close()
	testutil.Eventually(t, 5*time.Second, func() error { return get(dial()) })
	// The held connection still works: the refusals did not touch it.
	if err := get(held[1]); err != nil {
		t.Fatalf("held connection after the refusals: %v", err)
	}
}
