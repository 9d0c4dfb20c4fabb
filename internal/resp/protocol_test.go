package resp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// dial opens a raw connection for protocol tests.
func dial(tb testing.TB, addr string) (net.Conn, *bufio.Reader) {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return nc, bufio.NewReader(nc)
}

func send(tb testing.TB, nc net.Conn, s string) {
	tb.Helper()
	if _, err := io.WriteString(nc, s); err != nil {
		tb.Fatal(err)
	}
}

// readN reads exactly n bytes, with a generous deadline so a missing reply
// fails the test instead of hanging it.
func readN(tb testing.TB, rd *bufio.Reader, n int) string {
	tb.Helper()
	buf := make([]byte, n)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(rd, buf)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatalf("read %d bytes: %v (got %q)", n, err, buf)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("no reply after 10s")
	}
	return string(buf)
}

func expect(tb testing.TB, rd *bufio.Reader, want string) {
	tb.Helper()
	if got := readN(tb, rd, len(want)); got != want {
		tb.Fatalf("reply %q, want %q", got, want)
	}
}

// expectClosed checks that the server closes the connection with nothing more.
func expectClosed(tb testing.TB, rd *bufio.Reader) {
	tb.Helper()
	done := make(chan error, 1)
	var extra []byte
	go func() {
		var err error
		extra, err = io.ReadAll(rd)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			tb.Fatalf("read until close: %v", err)
		}
		if len(extra) > 0 {
			tb.Fatalf("unexpected bytes before close: %q", extra)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("connection not closed after 10s")
	}
}

// TestBadInput sends malformed or hostile input on one connection and checks
// the exact reply, that the connection is closed, that another client is still
// served and that stored data is intact.
func TestBadInput(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MaxArgs = 1000
		c.MaxBulkBytes = 1 << 20
		c.MaxValueBytes = 1 << 20
	})
	good, goodRd := dial(t, ts.addr)
	send(t, good, "SET keep intact\r\n")
	expect(t, goodRd, "+OK\r\n")

	const (
		protoErr = "-ERR Protocol error: "
		dropped  = "" // closed without a reply
	)
	cases := []struct {
		name, in, reply string
	}{
		{"non-numeric count", "*x\r\n", protoErr + "invalid multibulk length\r\n"},
		{"count over MaxArgs", "*1001\r\n", protoErr + "invalid multibulk length\r\n"},
		{"huge count", "*9223372036854775807\r\n", protoErr + "invalid multibulk length\r\n"},
		{"count overflow", "*99999999999999999999\r\n", protoErr + "invalid multibulk length\r\n"},
		{"count without CR", "*1\n$4\r\nPING\r\n", protoErr + "invalid multibulk length\r\n"},
		{"count line too long", "*" + strings.Repeat("1", 100), protoErr + "too big mbulk count string\r\n"},
		{"element not a bulk", "*2\r\n$3\r\nGET\r\n:1\r\n", protoErr + "expected '$', got ':'\r\n"},
		{"negative bulk", "*1\r\n$-1\r\n", protoErr + "invalid bulk length\r\n"},
		{"null bulk", "*1\r\n$-0\r\n", protoErr + "invalid bulk length\r\n"},
		{"bulk over limit", "*2\r\n$3\r\nSET\r\n$1048577\r\n", protoErr + "invalid bulk length\r\n"},
		{"huge bulk", "*1\r\n$9223372036854775807\r\n", protoErr + "invalid bulk length\r\n"},
		{"bulk leading zero", "*1\r\n$04\r\nPING\r\n", protoErr + "invalid bulk length\r\n"},
		{"bulk plus sign", "*1\r\n$+4\r\nPING\r\n", protoErr + "invalid bulk length\r\n"},
		{"bulk without CR", "*1\r\n$4\nPING\r\n", protoErr + "invalid bulk length\r\n"},
		{"bulk line too long", "*1\r\n$" + strings.Repeat("9", 100), protoErr + "too big bulk count string\r\n"},
		{"data longer than declared", "*1\r\n$4\r\nPINGxx\r\n", protoErr + "expected CRLF after bulk data\r\n"},
		{"unbalanced quotes", "SET k \"v\r\n", protoErr + "unbalanced quotes in request\r\n"},
		{"quote not followed by space", "SET k \"v\"x\r\n", protoErr + "unbalanced quotes in request\r\n"},
		{"inline too big", strings.Repeat("a", maxInline+10), protoErr + "too big inline request\r\n"},
		{"HTTP GET", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", dropped},
		{"HTTP POST", "POST /v1/kv HTTP/1.1\r\n", dropped},
		{"Host header after a command", "PING\r\nHost: evil\r\n", dropped},
		{"HTTP verb as multibulk", "*1\r\n$4\r\nPOST\r\n", dropped},
		{"valid then garbage", "PING\r\n*x\r\n", "+PONG\r\n" + protoErr + "invalid multibulk length\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, rd := dial(t, ts.addr)
			send(t, nc, tc.in)
			if tc.reply == dropped {
				// An HTTP client gets nothing at all, not even earlier replies.
				expectClosed(t, rd)
			} else {
				expect(t, rd, tc.reply)
				expectClosed(t, rd)
			}
			send(t, good, "GET keep\r\n")
			expect(t, goodRd, "$6\r\nintact\r\n")
		})
	}
	if _, ok := ts.b.record("k"); ok {
		t.Fatal("a rejected command stored a key")
	}
}

// TestInline covers telnet-style commands and quoting.
func TestInline(t *testing.T) {
	ts := startServer(t, nil)
	nc, rd := dial(t, ts.addr)
	send(t, nc, "\r\n\r\nSET k \"a\\x41\\n\\\"b\"  \r\nGET k\r\nECHO 'it\\'s'\nPING\n")
	expect(t, rd, "+OK\r\n$5\r\naA\n\"b\r\n$4\r\nit's\r\n+PONG\r\n")
}

// TestSplitAcrossReads sends a pipeline one byte at a time.
func TestSplitAcrossReads(t *testing.T) {
	ts := startServer(t, nil)
	nc, rd := dial(t, ts.addr)
	in := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nGET k\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
	for i := range len(in) {
		send(t, nc, in[i:i+1])
	}
	expect(t, rd, "+OK\r\n$5\r\nhello\r\n$5\r\nhello\r\n")
}

// TestLargeValue moves a value much larger than the read buffer.
func TestLargeValue(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t, 2)
	big := strings.Repeat("0123456789", 200_000) // 2 MB
	must(c.Set(t.Context(), "big", big, 0).Result())
	equal(t, "GET big", must(c.Get(t.Context(), "big").Result()) == big, true)
}
