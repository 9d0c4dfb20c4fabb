package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// testLogger sends a component's logs to the test's output.
func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startTCP starts a transport on a loopback port chosen by the kernel and
// closes it when the test ends. mod adjusts the config first.
func startTCP(tb testing.TB, id string, h Handler, mod func(*TCPConfig)) *TCP {
	tb.Helper()
	cfg := TCPConfig{Addr: "127.0.0.1:0", NodeID: id, Handler: h, Logger: testLogger(tb).With("node", id)}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := Listen(cfg)
	if err != nil {
		tb.Fatalf("Listen: %v", err)
	}
	tb.Cleanup(func() {
		if err := tr.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return tr
}

// echo answers with the method byte followed by the payload, so a test can
// check that every response belongs to its request.
func echo(_ context.Context, _ string, method uint8, payload []byte) ([]byte, error) {
	return append([]byte{method}, payload...), nil
}

func callCtx(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// countingConn counts Write calls, which are write syscalls for a TCP conn.
type countingConn struct {
	net.Conn
	writes *countWrites
}

type countWrites struct{ atomic.Int64 }

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	writes *countWrites
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, writes: l.writes}, nil
}

// gatedConn counts writes and blocks the second one (the first after the
// handshake) until released, so a test can hold frames in the queue.
type gatedConn struct {
	net.Conn
	writes  atomic.Int64
	entered chan struct{}
	release chan struct{}
	held    atomic.Int64 // frames in the blocked write
}

func newGate() *gatedConn {
	return &gatedConn{entered: make(chan struct{}), release: make(chan struct{})}
}

func (c *gatedConn) Write(p []byte) (int, error) {
	if c.writes.Add(1) == 2 {
		c.held.Store(int64(countFrames(p)))
		close(c.entered)
		<-c.release
	}
	return c.Conn.Write(p)
}

type gatedListener struct {
	net.Listener
	gate *gatedConn
}

// Accept gates the first accepted connection.
func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.gate.Conn == nil {
		l.gate.Conn = c
		return l.gate, nil
	}
	return c, nil
}

// countFrames counts the whole frames in an encoded batch.
func countFrames(b []byte) int {
	n := 0
	for len(b) >= 4 {
		l := int(binary.BigEndian.Uint32(b)) + 4
		if l > len(b) {
			break
		}
		b = b[l:]
		n++
	}
	return n
}

func isDeadline(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
