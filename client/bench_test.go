package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkThroughput compares this client, which sends each request to a
// replica of its key, with go-redis sending everything to one node, which
// then coordinates every request itself (one more hop for the keys it does
// not hold). It runs on the shared 3-node, RF=3 cluster, at QUORUM, with
// GOMAXPROCS × 16 concurrent callers (go test -cpu sets GOMAXPROCS).
//
//	go test -run '^$' -bench Throughput -benchtime 20000x ./client
func BenchmarkThroughput(b *testing.B) {
	const keys = 10000
	value := make([]byte, 100)
	ctx := context.Background()
	c, err := New(ctx, Config{Seeds: shared.seeds()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for i := range keys {
		if err := c.Set(ctx, fmt.Sprintf("bench:%d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: shared.Node(0).Addrs().Client, PoolSize: 3 * DefaultPoolSize})
	defer rdb.Close()

	type op func(key string) error
	run := func(b *testing.B, f op) {
		b.Helper()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := f(fmt.Sprintf("bench:%d", rand.IntN(keys))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	}
	b.Run("get/direct", func(b *testing.B) {
		run(b, func(k string) error { _, err := c.Get(ctx, k); return err })
	})
	b.Run("get/coordinator", func(b *testing.B) {
		run(b, func(k string) error { return rdb.Get(ctx, k).Err() })
	})
	b.Run("set/direct", func(b *testing.B) {
		run(b, func(k string) error { return c.Set(ctx, k, value) })
	})
	b.Run("set/coordinator", func(b *testing.B) {
		run(b, func(k string) error { return rdb.Set(ctx, k, value, 0).Err() })
	})
}
