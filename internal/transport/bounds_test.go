package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// rawPeer dials addr and sends a valid peer handshake, as any process that
// reaches a port without TLS can.
func rawPeer(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(appendHandshake(nil, handshake{nodeID: "rogue", maxFrame: 1 << 20})); err != nil {
		tb.Fatal(err)
	}
	if _, err := readHandshake(nc); err != nil {
		tb.Fatalf("server handshake: %v", err)
	}
	return nc
}

// waitClosed reads nc until the server closes it, failing if it answers.
func waitClosed(tb testing.TB, nc net.Conn) {
	tb.Helper()
	got, err := io.ReadAll(nc)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		tb.Fatalf("read: %v, want the server to close the connection", err)
	}
	if len(got) != 0 {
		tb.Fatalf("server answered a half-sent frame with %q", got)
	}
}

// Frames that declare 64 MiB and send two bytes (issue 30: twelve of them
// took 512 MiB) cost the server what arrived, not what was declared, and
// are closed once the frame stops arriving.
func TestTCPDeclaredFrameIsNotAllocated(t *testing.T) {
	const conns = 12
	srv := startTCP(t, "server", echo, func(c *TCPConfig) { c.FrameTimeout = 300 * time.Millisecond })
	ncs := make([]net.Conn, conns)
	for i := range ncs {
		ncs[i] = rawPeer(t, srv.Addr())
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, nc := range ncs {
		msg := binary.BigEndian.AppendUint32(nil, 64<<20)
		msg = append(msg, byte(kindRequest), 0, 0, 0, 0, 0, 0, 0, 1, 0, 'h', 'i')
		if _, err := nc.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	// Each connection is closed by the server's frame deadline, which it
	// only arms once it has read the header and started on the payload: by
	// then whatever it was going to allocate for the frame, it has.
	for _, nc := range ncs {
		waitClosed(t, nc)
	}
	runtime.ReadMemStats(&after)
	// Everything allocated meanwhile, by anyone: 12 frames allocated as
	// declared would be 768 MiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
		t.Fatalf("%d connections declaring 64 MiB frames made the process allocate %d MiB", conns, got>>20)
	}
	resp, err := startTCP(t, "client", echo, nil).Call(callCtx(t, 5*time.Second), srv.Addr(), 0, []byte("still serving"))
	if err != nil || string(resp) != "\x00still serving" {
		t.Fatalf("Call after the attack = %q, %v", resp, err)
	}
}

// A header cut short, and a connection that handshakes and then sends part
// of a frame, are closed after the frame deadline rather than held forever.
func TestTCPHalfSentFrameIsClosed(t *testing.T) {
	srv := startTCP(t, "server", echo, func(c *TCPConfig) { c.FrameTimeout = 200 * time.Millisecond })
	for name, part := range map[string][]byte{
		"half a header":  {0, 0, 0, 40, byte(kindRequest)},
		"half a payload": appendFrame(nil, kindRequest, 1, 0, make([]byte, 30))[:20],
	} {
		t.Run(name, func(t *testing.T) {
			nc := rawPeer(t, srv.Addr())
			if _, err := nc.Write(part); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, nc)
		})
	}
}

// Payloads past frameChunk take the growing path; they must arrive whole
// and intact, as must the frames behind them on the same connection.
func TestTCPLargeFramesGrowIntact(t *testing.T) {
	srv := startTCP(t, "server", echo, nil)
	cli := startTCP(t, "client", echo, nil)
	for _, size := range []int{frameChunk + 1, 3*frameChunk + 7, 9 << 20} {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(rand.Uint32())
		}
		resp, err := cli.Call(callCtx(t, 30*time.Second), srv.Addr(), 5, p)
		if err != nil || len(resp) != size+1 || resp[0] != 5 || !bytes.Equal(resp[1:], p) {
			t.Fatalf("%d bytes: got %d bytes, %v", size, len(resp), err)
		}
	}
}

// The frame bounds above cost the steady state nothing: a small call and
// its response, both sides in this process and the handler's copy
// included, take the six allocations they took before the bounds (measured
// on the transport of commit fd07c64).
func TestTCPCallAllocations(t *testing.T) {
	srv := startTCP(t, "server", func(_ context.Context, _ string, _ uint8, p []byte) ([]byte, error) {
		return append([]byte(nil), p...), nil
	}, nil)
	cli := startTCP(t, "client", echo, nil)
	ctx := callCtx(t, time.Minute)
	payload := []byte("0123456789abcdef")
	call := func() {
		if _, err := cli.Call(ctx, srv.Addr(), 1, payload); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		call() // connection, worker and pools warmed
	}
	if n := testing.AllocsPerRun(500, call); n > 6 {
		t.Fatalf("a small call allocates %.1f times, want at most 6", n)
	}
}
