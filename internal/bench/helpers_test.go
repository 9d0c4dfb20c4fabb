package bench

import (
	"log/slog"
	"testing"

	"github.com/ringkv/ringkv/internal/config"
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
