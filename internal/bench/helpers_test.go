package bench

import (
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/resp"
	"github.com/ringkv/ringkv/internal/testcluster"
)

// tbWriter sends log lines to t.Log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(p))
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startCluster starts n real in-memory ringkv nodes in this process
// (internal/testcluster), joined into one cluster, and returns their client
// addresses once every node sees all n up and normal.
func startCluster(tb testing.TB, n int, mutate func(*config.Config)) []string {
	tb.Helper()
	c := testcluster.Start(tb, testcluster.Options{Nodes: n, IDPrefix: "bench", Configure: mutate, Logger: testLogger(tb)})
	return c.ClientAddrs()
}

// serveRESP serves RESP on a loopback port until the test ends: each
// connection gets its own handler from newConn, which answers each command
// and says whether to hang up after the answer. A pipeline's answers go out
// in one write, as a server's do.
func serveRESP(t *testing.T, newConn func() func(args [][]byte) (reply string, closeConn bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				handle := newConn()
				r := resp.NewReader(nc, resp.Limits{MaxArgs: 16, MaxBulk: 1 << 20, MaxQuery: 2 << 20})
				for {
					var out []byte
					for {
						args, err := r.Next()
						if err != nil {
							return
						}
						if args == nil {
							break
						}
						reply, closeConn := handle(args)
						out = append(out, reply...)
						if closeConn {
							_, _ = nc.Write(out)
							return
						}
					}
					if len(out) > 0 {
						if _, err := nc.Write(out); err != nil {
							return
						}
					}
					if err := r.Fill(); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}
