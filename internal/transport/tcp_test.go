package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringkv/ringkv/internal/testutil"
)

func TestTCPConcurrentCallsMatchResponses(t *testing.T) {
	// The handler answers out of order (later requests often finish first)
	// to prove responses are matched by id, not by arrival.
	var served atomic.Int64
	h := func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
		if from != "client" {
			return nil, fmt.Errorf("from = %q, want client", from)
		}
		if served.Add(1)%3 == 0 {
			time.Sleep(time.Millisecond)
		}
		return echo(ctx, from, method, payload)
	}
	srv := startTCP(t, "server", h, nil)
	cli := startTCP(t, "client", echo, nil)

	const workers, calls = 32, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				req := fmt.Appendf(nil, "worker %d call %d %s", w, i, strings.Repeat("x", i*37))
				method := uint8(w*calls + i)
				resp, err := cli.Call(callCtx(t, 10*time.Second), srv.Addr(), method, req)
				if err != nil {
					errs <- fmt.Errorf("worker %d call %d: %w", w, i, err)
					return
				}
				if want := append([]byte{method}, req...); !bytes.Equal(resp, want) {
					errs <- fmt.Errorf("worker %d call %d: got %q, want %q", w, i, resp, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := served.Load(); got != workers*calls {
		t.Errorf("handler ran %d times, want %d", got, workers*calls)
	}
}

func TestTCPEmptyPayloads(t *testing.T) {
	srv := startTCP(t, "server", func(context.Context, string, uint8, []byte) ([]byte, error) { return nil, nil }, nil)
	cli := startTCP(t, "client", echo, nil)
	resp, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 0, nil)
	if err != nil || len(resp) != 0 {
		t.Fatalf("Call = %q, %v; want empty, nil", resp, err)
	}
}

func TestTCPRemoteError(t *testing.T) {
	h := func(_ context.Context, _ string, method uint8, _ []byte) ([]byte, error) {
		if method == 2 {
			panic("handler bug")
		}
		return nil, errors.New("storage: clock skew too large")
	}
	srv := startTCP(t, "server", h, nil)
	cli := startTCP(t, "client", echo, nil)

	for _, tc := range []struct {
		method uint8
		want   string
	}{
		{1, "storage: clock skew too large"},
		{2, "internal error in method 2"}, // a panic is contained, not fatal
	} {
		_, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), tc.method, []byte("x"))
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("method %d: err = %v, want *RemoteError", tc.method, err)
		}
		if re.Message != tc.want || re.Peer != srv.Addr() {
			t.Errorf("method %d: RemoteError = %+v, want message %q from %s", tc.method, re, tc.want, srv.Addr())
		}
		if NotSent(err) {
			t.Errorf("method %d: NotSent(%v) = true; the handler ran", tc.method, err)
		}
	}
}

func TestTCPDeadlineExceeded(t *testing.T) {
	release := make(chan struct{})
	var applied atomic.Bool
	h := func(ctx context.Context, _ string, method uint8, p []byte) ([]byte, error) {
		if method == 1 {
			applied.Store(true)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return p, nil
	}
	srv := startTCP(t, "server", h, nil)
	cli := startTCP(t, "client", echo, nil)

	_, err := cli.Call(callCtx(t, 100*time.Millisecond), srv.Addr(), 1, []byte("slow"))
	if !isDeadline(err) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if NotSent(err) {
		t.Errorf("NotSent(%v) = true, but the request reached the peer", err)
	}
	testutil.EventuallyEvery(t, 10*time.Second, time.Millisecond, func() error {
		if !applied.Load() {
			return errors.New("handler did not run")
		}
		return nil
	})
	close(release)
	// The connection stays usable and the late response is discarded.
	resp, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 0, []byte("fast"))
	if err != nil || string(resp) != "fast" {
		t.Fatalf("Call after timeout = %q, %v", resp, err)
	}
}

func TestTCPCanceledBeforeCall(t *testing.T) {
	cli := startTCP(t, "client", echo, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := cli.Call(ctx, "127.0.0.1:1", 0, nil)
	if !errors.Is(err, context.Canceled) || !NotSent(err) {
		t.Fatalf("err = %v, want NotSent context.Canceled", err)
	}
}

// A frame still queued behind a stuck write when the caller gives up is pulled
// back and reported as not sent; one already handed to the socket is not.
func TestTCPDeadlineWhileQueuedIsNotSent(t *testing.T) {
	srv := startTCP(t, "server", echo, nil)
	gate := newGate()
	cli := startTCP(t, "client", echo, func(c *TCPConfig) {
		c.ConnsPerPeer = 1
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			gate.Conn = nc
			return gate, nil
		}
	})

	first := make(chan error, 1)
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	defer cancelFirst()
	go func() {
		_, err := cli.Call(firstCtx, srv.Addr(), 1, []byte("first"))
		first <- err
	}()
	<-gate.entered // the writer holds "first" and is stuck in Write

	_, err := cli.Call(callCtx(t, 50*time.Millisecond), srv.Addr(), 2, []byte("second"))
	if !isDeadline(err) || !NotSent(err) {
		t.Errorf("queued call: err = %v, want NotSent DeadlineExceeded", err)
	}
	cancelFirst()
	err = <-first
	if !errors.Is(err, context.Canceled) || NotSent(err) {
		t.Errorf("written call: err = %v, want Canceled that is not NotSent", err)
	}
	close(gate.release)
	// The pulled-back frame left no hole in the stream: the connection works.
	resp, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 3, []byte("third"))
	if err != nil || string(resp) != "\x03third" {
		t.Fatalf("Call after release = %q, %v", resp, err)
	}
}

func TestTCPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	cli := startTCP(t, "client", echo, func(c *TCPConfig) { c.RedialBackoff = time.Hour; c.MaxRedialBackoff = time.Hour })
	for i := range 2 { // the second call fails fast from the backoff
		_, err := cli.Call(callCtx(t, 5*time.Second), addr, 0, nil)
		if !errors.Is(err, ErrUnreachable) || !NotSent(err) {
			t.Fatalf("call %d: err = %v, want NotSent ErrUnreachable", i, err)
		}
	}
}

func TestTCPPeerRestart(t *testing.T) {
	srv := startTCP(t, "server", echo, nil)
	addr := srv.Addr()
	cli := startTCP(t, "client", echo, nil)
	if _, err := cli.Call(callCtx(t, 5*time.Second), addr, 0, []byte("a")); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := cli.Call(callCtx(t, 5*time.Second), addr, 0, []byte("b"))
	if err == nil {
		t.Fatalf("call to a closed peer succeeded")
	}

	// The restarted peer listens on the same address; calls recover once the
	// dial backoff passes.
	restarted := startTCP(t, "server", echo, func(c *TCPConfig) { c.Addr = addr })
	testutil.EventuallyEvery(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, err := cli.Call(callCtx(t, time.Second), restarted.Addr(), 0, []byte("c"))
		return err
	})
}

func TestTCPInflightCallsFailWhenPeerGoes(t *testing.T) {
	started := make(chan struct{}, 8)
	h := func(ctx context.Context, _ string, _ uint8, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done() // released by the server's Close
		return nil, ctx.Err()
	}
	srv := startTCP(t, "server", h, nil)
	cli := startTCP(t, "client", echo, nil)

	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			// No deadline: only the connection failure can end these calls.
			_, err := cli.Call(context.Background(), srv.Addr(), 0, []byte("x"))
			errs <- err
		}()
	}
	for range n {
		<-started
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		err := <-errs
		if !errors.Is(err, ErrConnectionLost) || NotSent(err) {
			t.Errorf("err = %v, want ErrConnectionLost (may have been applied)", err)
		}
	}
}

func TestTCPCloseFailsOutstandingCalls(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	srv := startTCP(t, "server", func(ctx context.Context, _ string, _ uint8, _ []byte) ([]byte, error) {
		close(started)
		<-release
		return nil, nil
	}, nil)
	t.Cleanup(func() { close(release) })
	cli, err := Listen(TCPConfig{Addr: "127.0.0.1:0", NodeID: "client", Handler: echo, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := cli.Call(context.Background(), srv.Addr(), 0, nil)
		errc <- err
	}()
	<-started
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) || NotSent(err) {
		t.Errorf("outstanding call: err = %v, want ErrClosed, not NotSent", err)
	}
	if _, err := cli.Call(context.Background(), srv.Addr(), 0, nil); !errors.Is(err, ErrClosed) || !NotSent(err) {
		t.Errorf("call after Close: err = %v, want NotSent ErrClosed", err)
	}
	if err := cli.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Garbage, HTTP and foreign handshakes on the peer port are refused and their
// connections closed, while a real peer's calls keep flowing.
func TestTCPRefusesForeignConnections(t *testing.T) {
	srv := startTCP(t, "server", echo, nil)
	cli := startTCP(t, "client", echo, nil)
	call := func() {
		t.Helper()
		resp, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 7, []byte("ok"))
		if err != nil || string(resp) != "\x07ok" {
			t.Fatalf("peer call = %q, %v", resp, err)
		}
	}
	call() // the good connection exists before the bad ones arrive

	wrongVersion := append(magic[:], 99, 0, 1, 0, 0, 0)
	tinyFrame := append(magic[:], protoVersion, 0, 0, 0, 16, 0)
	for name, input := range map[string][]byte{
		"garbage":       {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7},
		"http":          []byte("GET /v1/kv/foo HTTP/1.1\r\nHost: localhost\r\n\r\n"),
		"resp":          []byte("*1\r\n$4\r\nPING\r\n"),
		"wrong version": wrongVersion,
		"tiny frame":    tinyFrame,
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := nc.Write(input); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(nc)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read: %v (want the server to close the connection)", err)
			}
			if len(got) != 0 {
				t.Errorf("server answered a foreign connection with %q", got)
			}
			call()
		})
	}
}

func TestTCPFrameLimits(t *testing.T) {
	const small = 8 << 10
	srv := startTCP(t, "server", func(_ context.Context, _ string, method uint8, p []byte) ([]byte, error) {
		if method == 1 {
			return make([]byte, 2*small), nil // larger than the client accepts
		}
		return p, nil
	}, func(c *TCPConfig) { c.MaxFrame = small })
	cli := startTCP(t, "client", echo, func(c *TCPConfig) { c.MaxFrame = 4 * small })

	t.Run("over own limit", func(t *testing.T) {
		_, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 0, make([]byte, 4*small))
		if !errors.Is(err, ErrFrameTooLarge) || !NotSent(err) {
			t.Fatalf("err = %v, want NotSent ErrFrameTooLarge", err)
		}
	})
	t.Run("over peer limit", func(t *testing.T) {
		// The handshake told the client the server's limit, so the request
		// is refused locally instead of breaking the shared connection.
		_, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 0, make([]byte, small))
		if !errors.Is(err, ErrFrameTooLarge) || !NotSent(err) {
			t.Fatalf("err = %v, want NotSent ErrFrameTooLarge", err)
		}
	})
	t.Run("response over limit", func(t *testing.T) {
		_, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 1, nil)
		var re *RemoteError
		if !errors.As(err, &re) || !strings.Contains(re.Message, "frame too large") {
			t.Fatalf("err = %v, want a RemoteError about the frame size", err)
		}
	})
	t.Run("largest allowed", func(t *testing.T) {
		p := bytes.Repeat([]byte{'z'}, small-frameOverhead)
		resp, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 0, p)
		if err != nil || !bytes.Equal(resp, p) {
			t.Fatalf("Call = %d bytes, %v", len(resp), err)
		}
	})
	t.Run("oversized frame on the wire", func(t *testing.T) {
		// A peer that ignores the announced limit gets its connection closed
		// before the server allocates for the frame.
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		msg := appendHandshake(nil, handshake{nodeID: "rogue", maxFrame: 1 << 20})
		msg = binary.BigEndian.AppendUint32(msg, 1<<30)
		msg = append(msg, byte(kindRequest), 0, 0, 0, 0, 0, 0, 0, 1, 0)
		if _, err := nc.Write(msg); err != nil {
			t.Fatal(err)
		}
		br := io.Reader(nc)
		if _, err := readHandshake(br); err != nil {
			t.Fatalf("server handshake: %v", err)
		}
		if rest, err := io.ReadAll(br); (err != nil && !errors.Is(err, syscall.ECONNRESET)) || len(rest) != 0 {
			t.Fatalf("after oversized frame read %q, %v; want the connection closed", rest, err)
		}
		resp, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 0, []byte("still fine"))
		if err != nil || string(resp) != "still fine" {
			t.Fatalf("Call = %q, %v", resp, err)
		}
	})
}

func TestTCPConfigValidate(t *testing.T) {
	base := TCPConfig{Addr: "127.0.0.1:0", Handler: echo}
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*TCPConfig){
		"no handler":     func(c *TCPConfig) { c.Handler = nil },
		"no address":     func(c *TCPConfig) { c.Addr = "" },
		"long node id":   func(c *TCPConfig) { c.NodeID = strings.Repeat("n", 256) },
		"tiny frame":     func(c *TCPConfig) { c.MaxFrame = 100 },
		"negative dial":  func(c *TCPConfig) { c.DialTimeout = -1 },
		"backoff order":  func(c *TCPConfig) { c.RedialBackoff = time.Second; c.MaxRedialBackoff = time.Millisecond },
		"negative conns": func(c *TCPConfig) { c.ConnsPerPeer = -1 },
	} {
		c := base
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		if _, err := Listen(c); err == nil {
			t.Errorf("%s: Listen accepted an invalid config", name)
		}
	}
}

// Frames queued while a write is in flight leave together in the next write,
// on both the calling and the serving side: with one connection, n calls cost
// at most three writes each way (handshake, the batch that was in flight,
// everything queued behind it).
func TestTCPCoalescesWrites(t *testing.T) {
	const n = 200
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvGate, cliGate := newGate(), newGate()
	srv := startTCP(t, "server", echo, func(c *TCPConfig) { c.Listener = gatedListener{Listener: ln, gate: srvGate} })
	cli := startTCP(t, "client", echo, func(c *TCPConfig) {
		c.ConnsPerPeer = 1
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			cliGate.Conn = nc
			return cliGate, nil
		}
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := fmt.Appendf(nil, "%d", i)
			resp, err := cli.Call(callCtx(t, 30*time.Second), srv.Addr(), 5, p)
			if err != nil || !bytes.Equal(resp, append([]byte{5}, p...)) {
				t.Errorf("call %d = %q, %v", i, resp, err)
			}
		})
	}

	<-cliGate.entered
	cliConn := onlyConn(t, cli)
	testutil.EventuallyEvery(t, 10*time.Second, time.Millisecond, func() error {
		if q := queuedFrameCount(cliConn); int(cliGate.held.Load())+q != n {
			return fmt.Errorf("client: %d frames in flight, %d queued, want %d in all", cliGate.held.Load(), q, n)
		}
		return nil
	})
	close(cliGate.release)

	<-srvGate.entered
	srvConn := onlyConn(t, srv)
	testutil.EventuallyEvery(t, 10*time.Second, time.Millisecond, func() error {
		if q := queuedFrameCount(srvConn); int(srvGate.held.Load())+q != n {
			return fmt.Errorf("server: %d frames in flight, %d queued, want %d in all", srvGate.held.Load(), q, n)
		}
		return nil
	})
	close(srvGate.release)
	wg.Wait()

	// The batch in flight may already hold everything, hence "at most".
	if got := cliGate.writes.Load(); got > 3 {
		t.Errorf("client made %d writes for %d calls, want at most 3", got, n)
	}
	if got := srvGate.writes.Load(); got > 3 {
		t.Errorf("server made %d writes for %d responses, want at most 3", got, n)
	}
}

// onlyConn returns tr's single live connection.
func onlyConn(tb testing.TB, tr *TCP) *conn {
	tb.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.mu.conns) != 1 {
		tb.Fatalf("transport has %d connections, want 1", len(tr.mu.conns))
	}
	for c := range tr.mu.conns {
		return c
	}
	return nil
}

func queuedFrameCount(c *conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return countFrames(c.mu.pending)
}

// Reset fails the calls stuck on a peer's pooled connections at once, as
// possibly applied, and the next call dials a fresh connection that works.
func TestTCPResetRedials(t *testing.T) {
	block := make(chan struct{})
	var blocking atomic.Bool
	blocking.Store(true)
	started := make(chan struct{}, 8)
	h := func(ctx context.Context, _ string, _ uint8, p []byte) ([]byte, error) {
		if blocking.Load() {
			started <- struct{}{}
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil, ctx.Err()
		}
		return p, nil
	}
	srv := startTCP(t, "server", h, nil)
	defer close(block)
	cli := startTCP(t, "client", echo, func(c *TCPConfig) { c.Registerer = prometheus.NewRegistry() })

	errs := make(chan error, 2)
	for range 2 {
		go func() {
			// No deadline: only the reset can end these calls.
			_, err := cli.Call(context.Background(), srv.Addr(), 0, []byte("x"))
			errs <- err
		}()
	}
	<-started
	<-started
	dials := func() float64 {
		var m dto.Metric
		if err := cli.metrics.dialsOK.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	before := dials()
	blocking.Store(false)
	cli.Reset(srv.Addr())
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrConnectionLost) || NotSent(err) {
			t.Fatalf("stuck call after Reset: err = %v, want ErrConnectionLost", err)
		}
	}
	resp, err := cli.Call(t.Context(), srv.Addr(), 0, []byte("again"))
	if err != nil || string(resp) != "again" {
		t.Fatalf("call after Reset: %q %v", resp, err)
	}
	if after := dials(); after <= before {
		t.Fatalf("successful dials %v -> %v: the call after Reset reused a connection", before, after)
	}
	cli.Reset("127.0.0.1:1") // a peer never called: nothing to do
}

// A call given up while its frame is being written, to a peer that stopped
// reading part way through it, fails alone: the rest of the frame still
// follows, intact, on the connection every other call shares.
func TestTCPCallGivenUpMidWriteKeepsConnection(t *testing.T) {
	const big = 32 << 20 // larger than loopback's socket buffers
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	got := make(chan []byte, 1)
	srv := startTCP(t, "server", func(_ context.Context, _ string, method uint8, payload []byte) ([]byte, error) {
		switch method {
		case 1:
			<-release
		case 3:
			got <- bytes.Clone(payload)
		}
		return []byte{method}, nil
	}, func(c *TCPConfig) { c.MaxConcurrentRequests = 1 })
	var dials atomic.Int64
	cli := startTCP(t, "client", echo, func(c *TCPConfig) {
		c.ConnsPerPeer = 1
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}
	})
	// Cleanups run last-registered first: the handler must be free before
	// the transports close, or Close waits for it forever.
	t.Cleanup(unblock)
	bg := context.Background()
	// The first call holds the server's only handler; the server reads the
	// second frame and then stops reading while it waits for a handler.
	var wg sync.WaitGroup
	for _, m := range []uint8{1, 2} {
		wg.Go(func() {
			if _, err := cli.Call(bg, srv.Addr(), m, []byte("x")); err != nil {
				t.Errorf("call %d: %v", m, err)
			}
		})
		time.Sleep(50 * time.Millisecond)
	}
	payload := make([]byte, big)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	bigErr := make(chan error, 1)
	go func() {
		_, err := cli.Call(ctx, srv.Addr(), 3, payload)
		bigErr <- err
	}()
	// Give up on the call once the writer has taken its frame: three calls
	// outstanding and nothing left queued. The server reads none of it
	// before release, so the write is stuck part way.
	c := onlyConn(t, cli)
	testutil.EventuallyEvery(t, 10*time.Second, time.Millisecond, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.mu.calls) != 3 || len(c.mu.pending) != 0 {
			return fmt.Errorf("%d calls outstanding, %d bytes queued", len(c.mu.calls), len(c.mu.pending))
		}
		return nil
	})
	cancel()
	if err := <-bigErr; !errors.Is(err, context.Canceled) || NotSent(err) {
		t.Fatalf("big call: err = %v, want Canceled that is not NotSent", err)
	}
	unblock()
	select {
	case p := <-got:
		if !bytes.Equal(p, payload) {
			t.Fatalf("server got %d bytes, not the %d-byte payload sent", len(p), len(payload))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the big frame never reached the handler")
	}
	wg.Wait()
	if resp, err := cli.Call(callCtx(t, 5*time.Second), srv.Addr(), 4, []byte("after")); err != nil || resp[0] != 4 {
		t.Fatalf("call after = %q, %v", resp, err)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials: the connection broke", n)
	}
}

// Small calls share one connection, so that their frames coalesce into
// shared writes; a large one goes out on another, so that small calls do not
// queue behind it.
func TestTCPSmallCallsShareOneConnection(t *testing.T) {
	srv := startTCP(t, "server", echo, nil)
	cli := startTCP(t, "client", echo, func(c *TCPConfig) { c.ConnsPerPeer = 3 })
	conns := func() int {
		cli.mu.Lock()
		defer cli.mu.Unlock()
		return len(cli.mu.conns)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			p := fmt.Appendf(nil, "%d", i)
			if resp, err := cli.Call(callCtx(t, 10*time.Second), srv.Addr(), 1, p); err != nil || !bytes.Equal(resp[1:], p) {
				t.Errorf("call %d = %q, %v", i, resp, err)
			}
		})
	}
	wg.Wait()
	if n := conns(); n != 1 {
		t.Fatalf("50 small calls used %d connections, want 1", n)
	}
	large := make([]byte, LargeFrame)
	for range 2 {
		if resp, err := cli.Call(callCtx(t, 10*time.Second), srv.Addr(), 2, large); err != nil || len(resp) != len(large)+1 {
			t.Fatalf("large call: %d bytes, %v", len(resp), err)
		}
	}
	if n := conns(); n != 3 {
		t.Fatalf("after two large calls: %d connections, want 3 (one small, two large in turn)", n)
	}
}
