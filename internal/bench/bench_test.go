package bench

import (
	"path/filepath"
	"testing"

	"github.com/ringkv/ringkv/internal/config"
)

// These benchmarks run `ringkv bench`'s load against real nodes in this
// process, on disk with --sync periodic as in production, so that
//
//	go test ./internal/bench -run '^$' -bench Node -cpuprofile cpu.out
//	go tool pprof -top cpu.out
//
// profiles the server's request path (client-side frames are the ones in
// package bench). They report the achieved rate as ops/s.

func BenchmarkSingleNodeP16(b *testing.B) { benchNodes(b, 1, 16) }

func BenchmarkCluster3P16(b *testing.B) { benchNodes(b, 3, 16) }

// BenchmarkCluster3P1 is the open loop's request path (one request in
// flight per connection), where each request pays its own fan-out.
func BenchmarkCluster3P1(b *testing.B) { benchNodes(b, 3, 1) }

func benchNodes(b *testing.B, n, pipeline int) {
	b.Helper()
	dir := b.TempDir()
	addrs := startCluster(b, n, func(c *config.Config) {
		c.InMemory, c.DataDir = false, filepath.Join(dir, c.NodeID)
		c.Sync = config.SyncPeriodic
	})
	for _, tc := range []struct {
		name  string
		ratio Ratio
	}{{"SET", Ratio{Set: 1}}, {"GET", Ratio{Get: 1}}} {
		b.Run(tc.name, func(b *testing.B) {
			c := DefaultConfig()
			c.Addrs, c.Keys, c.Ratio = addrs, 100_000, tc.ratio
			c.Pipeline, c.Conns = pipeline, 50
			c.Duration, c.Warmup, c.Requests = 0, 0, int64(b.N)
			c.Consistency = "QUORUM"
			b.ResetTimer()
			res, err := Run(b.Context(), c)
			if err != nil {
				b.Fatal(err)
			}
			if tot := res.Total(); tot.Errors > 0 {
				b.Fatalf("%d error replies: %v", tot.Errors, res.ErrorSamples)
			}
			b.ReportMetric(res.Total().OpsPerSec, "ops/s")
			b.ReportMetric(res.Total().P99, "p99-ms")
		})
	}
}
