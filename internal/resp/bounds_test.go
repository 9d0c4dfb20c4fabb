package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/logsample"
	"github.com/ringkv/ringkv/internal/testutil"
)

// closedCount reads ringkv_resp_closed_connections_total{reason}.
func (ts *testServer) closedCount(tb testing.TB, reason string) int {
	tb.Helper()
	for _, mf := range must(ts.reg.Gather()) {
		if mf.GetName() != "ringkv_resp_closed_connections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// loopModes runs fn with connections on an event loop first and on
// goroutines from the start, the two paths a connection may take.
func loopModes(t *testing.T, fn func(t *testing.T, loops int)) {
	t.Helper()
	for _, loops := range []int{1, -1} {
		t.Run(fmt.Sprintf("event-loops=%d", loops), func(t *testing.T) { fn(t, loops) })
	}
}

// TestReadTimeoutClosesHalfSentCommand: a client that begins a command and
// never finishes it is closed after ReadTimeout, while a connection that
// sent whole commands and waits stays open (its limit is IdleTimeout).
func TestReadTimeoutClosesHalfSentCommand(t *testing.T) {
	loopModes(t, func(t *testing.T, loops int) {
		ts := startServer(t, func(c *Config) { c.EventLoops = loops; c.ReadTimeout = 200 * time.Millisecond })
		idle, idleRd := dial(t, ts.addr)
		send(t, idle, "PING\r\n")
		expect(t, idleRd, "+PONG\r\n")

		half, halfRd := dial(t, ts.addr)
		send(t, half, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\nab")
		expectClosed(t, halfRd)
		equal(t, "read timeouts counted", ts.closedCount(t, "read_timeout"), 1)

		// The idle connection outlived the half-sent one's deadline.
		send(t, idle, "PING\r\n")
		expect(t, idleRd, "+PONG\r\n")
	})
}

// TestReadTimeoutCountsFromCommandStart: trickling a byte at a time does
// not renew the deadline; a command must be whole within ReadTimeout.
func TestReadTimeoutCountsFromCommandStart(t *testing.T) {
	loopModes(t, func(t *testing.T, loops int) {
		ts := startServer(t, func(c *Config) { c.EventLoops = loops; c.ReadTimeout = 300 * time.Millisecond })
		nc, rd := dial(t, ts.addr)
		send(t, nc, "*2\r\n$4\r\nECHO\r\n$100000\r\n")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := nc.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
		expectClosed(t, rd)
		equal(t, "read timeouts counted", ts.closedCount(t, "read_timeout"), 1)
	})
}

// TestDeclaredSizeNotAllocated: a bulk that declares 60 MiB and sends
// 20 KiB costs the server a buffer for what was sent, not what was declared:
// the initial 16 KiB doubled once.
func TestDeclaredSizeNotAllocated(t *testing.T) {
	loopModes(t, func(t *testing.T, loops int) {
		ts := startServer(t, func(c *Config) {
			c.EventLoops = loops
			c.MaxValueBytes = 64 << 20
			c.MaxBulkBytes = 64 << 20
		})
		const conns = 20
		for range conns {
			nc, _ := dial(t, ts.addr)
			send(t, nc, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$62914560\r\n"+strings.Repeat("v", 20<<10))
		}
		want := int64(conns * initialBuf)
		testutil.Eventually(t, 5*time.Second, func() error {
			if n := ts.srv.clientMem.Load(); n != want {
				return fmt.Errorf("client buffers beyond the initial ones: %d bytes, want %d", n, want)
			}
			return nil
		})
	})
}

// TestMaxClientMemoryClosesLargest: past the cap, the connection holding
// the largest buffer is closed; the others finish their commands.
func TestMaxClientMemoryClosesLargest(t *testing.T) {
	loopModes(t, func(t *testing.T, loops int) {
		ts := startServer(t, func(c *Config) { c.EventLoops = loops; c.MaxClientMemory = 6 << 20 })
		const kib = 1 << 10
		partial := func(total, sent int) (net.Conn, *bufio.Reader) {
			nc, rd := dial(t, ts.addr)
			send(t, nc, fmt.Sprintf("*2\r\n$4\r\nECHO\r\n$%d\r\n%s", total, strings.Repeat("v", sent)))
			return nc, rd
		}
		waitMem := func(atLeast int64) {
			testutil.Eventually(t, 5*time.Second, func() error {
				if n := ts.srv.clientMem.Load(); n < atLeast {
					return fmt.Errorf("client buffers %d bytes, want at least %d", n, atLeast)
				}
				return nil
			})
		}
		// Buffers double as input arrives: 3 MiB sent holds 4 MiB, 1.2 MiB
		// holds 2 MiB, 600 KiB holds 1 MiB; each counts beyond 16 KiB.
		const big, mid, small = 3 << 20, 1200 * kib, 600 * kib
		_, bigRd := partial(4<<20, big)
		waitMem(4<<20 - 16*kib)
		midC, midRd := partial(2<<20, mid)
		waitMem(6<<20 - 32*kib)
		smallC, smallRd := partial(1<<20, small)

		expectClosed(t, bigRd)
		equal(t, "evictions counted", ts.closedCount(t, "client_memory"), 1)

		send(t, midC, strings.Repeat("v", 2<<20-mid)+"\r\n")
		expect(t, midRd, fmt.Sprintf("$%d\r\n", 2<<20))
		readN(t, midRd, 2<<20+2)
		send(t, smallC, strings.Repeat("v", 1<<20-small)+"\r\n")
		expect(t, smallRd, fmt.Sprintf("$%d\r\n", 1<<20))
		readN(t, smallRd, 1<<20+2)
		testutil.Eventually(t, 5*time.Second, func() error {
			if n := ts.srv.clientMem.Load(); n != 0 {
				return fmt.Errorf("client buffers %d bytes after the commands ended", n)
			}
			return nil
		})
	})
}

// repeatReader returns the same bytes on every Read.
type repeatReader struct{ p []byte }

func (r repeatReader) Read(p []byte) (int, error) { return copy(p, r.p), nil }

// TestReaderAllocations: reading and parsing a pipeline of small commands,
// with the grow hook set as a connection sets it, allocates nothing.
func TestReaderAllocations(t *testing.T) {
	pipeline := strings.Repeat("*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n", 32)
	grows := 0
	r := NewReader(repeatReader{[]byte(pipeline)}, testLimits)
	r.SetGrowHook(func(int) bool { grows++; return true })
	allocs := testing.AllocsPerRun(200, func() {
		if err := r.Fill(); err != nil {
			t.Fatal(err)
		}
		for {
			args, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if args == nil {
				return
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per fill and parse", allocs)
	}
	equal(t, "buffer growths", grows, 0)
}

// TestReaderGrowsWithInput: a bulk that declares far more than it sends
// grows the buffer only with the bytes received, and a refused growth ends
// the reader with errClientMemory.
func TestReaderGrowsWithInput(t *testing.T) {
	head := "*2\r\n$4\r\nECHO\r\n$" + fmt.Sprint(4<<20) + "\r\n"
	in := &chunkReader{data: []byte(head + strings.Repeat("v", 40<<10)), sizes: []int{4 << 10}}
	lim := Limits{MaxArgs: 10, MaxBulk: 8 << 20, MaxQuery: 16 << 20}
	var grown int
	r := NewReader(in, lim)
	r.SetGrowHook(func(d int) bool { grown += d; return true })
	for {
		if err := r.Fill(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		if args, err := r.Next(); args != nil || err != nil {
			t.Fatalf("Next: %v, %v", args, err)
		}
	}
	// 40 KiB and the header fit in 64 KiB: two doublings of 16 KiB.
	equal(t, "buffer size", r.Cap(), 64<<10)
	equal(t, "growth reported", grown, 48<<10)

	in = &chunkReader{data: []byte(head + strings.Repeat("v", 40<<10)), sizes: []int{4 << 10}}
	r = NewReader(in, lim)
	r.SetGrowHook(func(int) bool { return false })
	var err error
	for err == nil {
		err = r.Fill()
	}
	if !errors.Is(err, errClientMemory) {
		t.Fatalf("refused growth: %v, want errClientMemory", err)
	}
	equal(t, "buffer size after a refused growth", r.Cap(), initialBuf)
}

// recordHandler keeps the records logged through it.
type recordHandler struct {
	slog.Handler
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

// TestSampledLog: an event a client repeats is logged once per interval,
// and the next line says how many were not.
func TestSampledLog(t *testing.T) {
	h := &recordHandler{Handler: slog.NewTextHandler(io.Discard, nil)}
	l := slog.New(h)
	now := time.Unix(1e9, 0)
	s := sampledLog{logsample.NewClocked(sampleEvery, func() time.Time { return now })}
	for range 100 {
		s.log(l, slog.LevelInfo, "protocol error")
	}
	equal(t, "lines for 100 events in one interval", len(h.records), 1)
	now = now.Add(sampleEvery) // the interval has passed
	s.log(l, slog.LevelInfo, "protocol error")
	equal(t, "lines after the interval", len(h.records), 2)
	var dropped int64
	h.records[1].Attrs(func(a slog.Attr) bool {
		if a.Key == "not_logged_since_last" {
			dropped = a.Value.Int64()
		}
		return true
	})
	equal(t, "count of the lines not logged", dropped, int64(99))
}
