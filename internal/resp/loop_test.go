//go:build linux

package resp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

// loopConns reads the gauge of connections on event loops.
func (ts *testServer) loopConns(tb testing.TB) int {
	tb.Helper()
	for _, mf := range must(ts.reg.Gather()) {
		if mf.GetName() == "ringkv_resp_loop_connections" {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	tb.Fatal("no ringkv_resp_loop_connections gauge")
	return 0
}

// waitLoopConns waits for the gauge to read n: a loop admits a connection
// and hands it off on its own goroutine.
func (ts *testServer) waitLoopConns(tb testing.TB, n int) {
	tb.Helper()
	testutil.Eventually(tb, 5*time.Second, func() error {
		if got := ts.loopConns(tb); got != n {
			return fmt.Errorf("%d connections on event loops, want %d", got, n)
		}
		return nil
	})
}

// onLoop dials ts and checks, with a PING, that a loop serves the connection
// (the only one open).
func (ts *testServer) onLoop(tb testing.TB) (net.Conn, *bufio.Reader) {
	tb.Helper()
	nc, rd := dial(tb, ts.addr)
	send(tb, nc, "PING\r\n")
	expect(tb, rd, "+PONG\r\n")
	equal(tb, "connections on loops", ts.loopConns(tb), 1)
	return nc, rd
}

// TestLoopHandsOffInOrder checks that a connection stays on its event loop
// while it sends GETs and connection commands, and that the first command
// that may wait moves it to a goroutine without reordering or losing the
// commands of the same pipeline around it.
func TestLoopHandsOffInOrder(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.ConcurrentPipeline = true })
	nc, rd := ts.onLoop(t)
	send(t, nc, "GET k\r\nCLIENT SETNAME loop\r\nGET k\r\n")
	expect(t, rd, "$-1\r\n+OK\r\n$-1\r\n")
	equal(t, "connections on loops after GETs", ts.loopConns(t), 1)

	// One pipeline: reads on the loop, a write that hands off, reads after.
	send(t, nc, "GET k\r\nGET j\r\nSET k v1\r\nGET k\r\nSET k v2\r\nGET k\r\nCLIENT GETNAME\r\n")
	expect(t, rd, "$-1\r\n$-1\r\n+OK\r\n$2\r\nv1\r\n+OK\r\n$2\r\nv2\r\n$4\r\nloop\r\n")
	ts.waitLoopConns(t, 0)
	send(t, nc, "GET k\r\n")
	expect(t, rd, "$2\r\nv2\r\n")
}

// TestLoopLeavesReadsThatWait checks that a node that does not answer reads
// alone runs no GET on its loop.
func TestLoopLeavesReadsThatWait(t *testing.T) {
	ts := startServer(t, nil)
	ts.b.notAlone.Store(true)
	nc, rd := ts.onLoop(t)
	send(t, nc, "GET k\r\n")
	expect(t, rd, "$-1\r\n")
	ts.waitLoopConns(t, 0)
}

// TestLoopSlowReader checks that a client that does not read its replies
// cannot stall the loop it shares with others, and still gets every reply,
// whole and in order, once it reads.
func TestLoopSlowReader(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.ConcurrentPipeline = true; c.EventLoops = 1 })
	ctx := t.Context()
	val := strings.Repeat("x", 1<<20)
	if err := ts.client(t, 2).Set(ctx, "big", val, 0).Err(); err != nil {
		t.Fatal(err)
	}
	slow, slowRd := dial(t, ts.addr)
	const n = 64 // 64 MiB of replies: far more than the socket buffers hold
	send(t, slow, strings.Repeat("GET big\r\n", n))

	// The one loop serves another connection meanwhile.
	other, otherRd := dial(t, ts.addr)
	for range 3 {
		send(t, other, "PING\r\n")
		expect(t, otherRd, "+PONG\r\n")
	}
	want := fmt.Sprintf("$%d\r\n%s\r\n", len(val), val)
	for i := range n {
		if got := readN(t, slowRd, len(want)); got != want {
			t.Fatalf("reply %d: %d bytes, not the value", i, len(got))
		}
	}
	send(t, slow, "PING\r\n")
	expect(t, slowRd, "+PONG\r\n")
}

// TestLoopIdleTimeout checks that a loop closes connections that send
// nothing, as a connection's goroutine does.
func TestLoopIdleTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	_, rd := ts.onLoop(t)
	expectClosed(t, rd)
	ts.waitLoopConns(t, 0)
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := ts.srv.numConns(); n != 0 {
			return fmt.Errorf("%d connections registered", n)
		}
		return nil
	})
}

// TestLoopProtocolError checks that a malformed command on a loop connection
// gets the goroutine path's error and close, after the replies to the
// commands before it, and that the loop's other connections are untouched.
func TestLoopProtocolError(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.EventLoops = 1 })
	good, goodRd := ts.onLoop(t)

	bad, badRd := dial(t, ts.addr)
	send(t, bad, "GET k\r\n*1\r\n$x\r\n")
	expect(t, badRd, "$-1\r\n-ERR Protocol error: invalid bulk length\r\n")
	expectClosed(t, badRd)

	send(t, good, "GET k\r\n")
	expect(t, goodRd, "$-1\r\n")
}

// TestWithoutEventLoops runs the basics with every connection on its own
// goroutine from the start, as on systems without epoll.
func TestWithoutEventLoops(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.EventLoops = -1; c.ConcurrentPipeline = true })
	ctx := t.Context()
	c := ts.client(t, 3)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pipe := c.Pipeline()
	get := pipe.Get(ctx, "k")
	missing := pipe.Get(ctx, "nope")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	equal(t, "GET k", must(get.Result()), "v")
	equal(t, "GET nope is nil", errors.Is(missing.Err(), redis.Nil), true)
	equal(t, "connections on loops", ts.loopConns(t), 0)
}
