package storage

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/ringkv/ringkv/internal/record"
)

// benchValue is a typical small cache value.
var benchValue = make([]byte, 128)

func benchStore(b *testing.B, mode SyncMode) *Store {
	b.Helper()
	return openTest(b, Options{Dir: b.TempDir(), Sync: mode})
}

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "bench-key-%08d", i)
	}
	return keys
}

func benchRecord(i int64) record.Record {
	return record.Record{Value: benchValue, Version: record.Version{TS: ts(i, 0), Node: "bench"}}
}

func BenchmarkApply(b *testing.B) {
	for _, mode := range []SyncMode{SyncPeriodic, SyncAlways} {
		b.Run(mode.String(), func(b *testing.B) {
			s := benchStore(b, mode)
			keys := benchKeys(1 << 16)
			b.SetBytes(int64(len(benchValue)))
			i := 0
			for b.Loop() {
				if _, err := s.Apply(keys[i%len(keys)], benchRecord(int64(i))); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkApplyParallel(b *testing.B) {
	for _, mode := range []SyncMode{SyncPeriodic, SyncAlways} {
		b.Run(mode.String(), func(b *testing.B) {
			s := benchStore(b, mode)
			keys := benchKeys(1 << 16)
			var seq atomic.Int64
			b.SetBytes(int64(len(benchValue)))
			b.SetParallelism(4) // writers block on fsync; more than GOMAXPROCS
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					if _, err := s.Apply(keys[int(i)%len(keys)], benchRecord(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkApplyRandom1M writes random keys of a 1M keyspace from
// concurrent writers, as redis-benchmark -r 1000000 does: unlike the 64K
// keys in order above, it pays Pebble's skiplist seeks through a large
// memtable, its flushes and compactions, and the row cache's growth, which
// is what docs/performance.md's storage apply figures measure.
func BenchmarkApplyRandom1M(b *testing.B) {
	s := openTest(b, Options{Dir: b.TempDir(), Sync: SyncPeriodic, ExpiryInterval: -1})
	keys := benchKeys(1 << 20)
	var seq atomic.Int64
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(uint64(seq.Add(1)), 1))
		for pb.Next() {
			i := seq.Add(1)
			if _, err := s.Apply(keys[r.IntN(len(keys))], benchRecord(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b, SyncPeriodic)
	keys := benchKeys(1 << 16)
	for i, k := range keys {
		if _, err := s.Apply(k, benchRecord(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil { // read from sstables, not only the memtable
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchValue)))
	i := 0
	for b.Loop() {
		if _, found, err := s.Get(keys[i%len(keys)]); err != nil || !found {
			b.Fatalf("Get: %t %v", found, err)
		}
		i++
	}
}

func BenchmarkScan(b *testing.B) {
	s := benchStore(b, SyncPeriodic)
	keys := benchKeys(1 << 14)
	for i, k := range keys {
		if _, err := s.Apply(k, benchRecord(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		n := 0
		if err := s.Scan(0, func(uint64, []byte, *record.Record) error { n++; return nil }); err != nil || n != len(keys) {
			b.Fatalf("Scan: %d %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/record")
}
