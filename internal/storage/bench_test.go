package storage

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// benchValue is a typical small cache value.
var benchValue = make([]byte, 128)

func benchStore(b *testing.B, engine string, mode SyncMode) *Store {
	b.Helper()
	return openTest(b, Options{Engine: engine, Dir: b.TempDir(), Sync: mode})
}

// forEachEngineB runs fn as a sub-benchmark per engine.
func forEachEngineB(b *testing.B, fn func(b *testing.B, engine string)) {
	b.Helper()
	for _, e := range engines {
		b.Run(e, func(b *testing.B) { fn(b, e) })
	}
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
	forEachEngineB(b, benchmarkApply)
}

func benchmarkApply(b *testing.B, engine string) {
	b.Helper()
	for _, mode := range []SyncMode{SyncPeriodic, SyncAlways} {
		b.Run(mode.String(), func(b *testing.B) {
			s := benchStore(b, engine, mode)
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
	forEachEngineB(b, benchmarkApplyParallel)
}

func benchmarkApplyParallel(b *testing.B, engine string) {
	b.Helper()
	for _, mode := range []SyncMode{SyncPeriodic, SyncAlways} {
		b.Run(mode.String(), func(b *testing.B) {
			s := benchStore(b, engine, mode)
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
	random1M(b, func(s *Store, pb *testing.PB, next func() Write) {
		for pb.Next() {
			w := next()
			if _, err := s.Apply(w.Key, w.Rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkApplyBatchRandom1M is BenchmarkApplyRandom1M's load in batches of
// 16, as a pipeline of SETs arrives (ApplyBatch): ns/op is per write.
func BenchmarkApplyBatchRandom1M(b *testing.B) {
	random1M(b, func(s *Store, pb *testing.PB, next func() Write) {
		ws := make([]Write, 0, 16)
		flush := func() bool {
			s.ApplyBatch(ws)
			for _, w := range ws {
				if w.Err != nil {
					b.Error(w.Err)
					return false
				}
			}
			ws = ws[:0]
			return true
		}
		for pb.Next() {
			ws = append(ws, next())
			if len(ws) == cap(ws) && !flush() {
				return
			}
		}
		flush()
	})
}

// random1M runs body on every parallel goroutine against a fresh store on
// disk; next gives a write of a random key of 1M under a fresh version.
func random1M(b *testing.B, body func(s *Store, pb *testing.PB, next func() Write)) {
	b.Helper()
	keys := benchKeys(1 << 20)
	forEachEngineB(b, func(b *testing.B, engine string) {
		s := openTest(b, Options{Engine: engine, Dir: b.TempDir(), Sync: SyncPeriodic, ExpiryInterval: -1})
		var seq atomic.Int64
		b.SetBytes(int64(len(benchValue)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(uint64(seq.Add(1)), 1))
			body(s, pb, func() Write {
				return Write{Key: keys[r.IntN(len(keys))], Rec: benchRecord(seq.Add(1))}
			})
		})
	})
}

// BenchmarkApplyBatch16 applies batches of 16 writes of 64K keys in order
// from one goroutine, as one connection's pipeline of SETs arrives: ns/op
// and allocs/op are per batch.
func BenchmarkApplyBatch16(b *testing.B) {
	forEachEngineB(b, func(b *testing.B, engine string) {
		for _, mode := range []SyncMode{SyncPeriodic, SyncAlways} {
			b.Run(mode.String(), func(b *testing.B) {
				s := benchStore(b, engine, mode)
				keys := benchKeys(1 << 16)
				ws := make([]Write, 16)
				b.SetBytes(int64(len(benchValue) * len(ws)))
				i := 0
				for b.Loop() {
					for j := range ws {
						ws[j] = Write{Key: keys[i%len(keys)], Rec: benchRecord(int64(i))}
						i++
					}
					s.ApplyBatch(ws)
					if ws[0].Err != nil {
						b.Fatal(ws[0].Err)
					}
				}
			})
		}
	})
}

func BenchmarkGet(b *testing.B) {
	forEachEngineB(b, benchmarkGet)
}

func benchmarkGet(b *testing.B, engine string) {
	b.Helper()
	s := benchStore(b, engine, SyncPeriodic)
	keys := benchKeys(1 << 16)
	for i, k := range keys {
		if _, err := s.Apply(k, benchRecord(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	if pe, ok := s.eng.(*pebbleEngine); ok {
		if err := pe.db.Flush(); err != nil { // read from sstables, not only the memtable
			b.Fatal(err)
		}
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
	forEachEngineB(b, benchmarkScan)
}

func benchmarkScan(b *testing.B, engine string) {
	b.Helper()
	s := benchStore(b, engine, SyncPeriodic)
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

// rowProbe is one cached key as a lookup takes it, laid out flat so that a
// benchmark reading probes in sequence costs no cache miss of its own.
type rowProbe struct {
	tok uint64
	key [16]byte
	rk  [32]byte
	n   int // length of the Pebble key in rk
}

// rowCacheBench fills a row cache with n keys as the store would (token,
// Pebble key, 100-byte value) and returns it with the keys' probes in a
// random order.
func rowCacheBench(b *testing.B, n int) (*rowCache, []rowProbe) {
	b.Helper()
	c := newRowCache(DefaultRowCacheSize)
	probes := make([]rowProbe, n)
	rec := record.Record{Value: make([]byte, 100), Version: record.Version{TS: ts(1, 0), Node: "bench"}}
	for i, j := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		p := &probes[j]
		copy(p.key[:], fmt.Appendf(nil, "key:%012d", i))
		p.tok = ring.Token(p.key[:])
		p.n = len(appendRecordKey(p.rk[:0], p.tok, p.key[:]))
		c.put(p.tok, p.rk[:p.n], &rec)
	}
	return c, probes
}

// A million cached records looked up at random, as a GET P16 load over 1M
// keys does: the cost is cache misses, the table's and the entry's.
func BenchmarkRowCacheHit1M(b *testing.B) {
	c, probes := rowCacheBench(b, 1<<20)
	i := 0
	for b.Loop() {
		p := &probes[i]
		if _, ok := c.get(p.tok, p.rk[:p.n]); !ok {
			b.Fatal("miss")
		}
		if i++; i == len(probes) {
			i = 0
		}
	}
}

// Lookups of keys the cache does not hold, as the read-before-write of a
// new key makes: a probe sequence walked to its end.
func BenchmarkRowCacheMiss1M(b *testing.B) {
	c, _ := rowCacheBench(b, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		key := fmt.Appendf(nil, "absent:%012d", r.IntN(1<<20))
		tok := ring.Token(key)
		if _, ok := c.get(tok, recordKey(tok, key)); ok {
			b.Fatal("hit")
		}
	}
}

// The same lookups in batches of 16, as a pipeline's GETs arrive, each batch
// prefetched first (keys hashed, then looked up, as a coordinator and Store.PrefetchTokens do).
func BenchmarkRowCacheHit1MPrefetch16(b *testing.B) {
	c, probes := rowCacheBench(b, 1<<20)
	keys := make([][]byte, len(probes))
	for i := range probes {
		keys[i] = probes[i].key[:]
	}
	var tokens [16]uint64
	i := 0
	for b.Loop() {
		if i%16 == 0 {
			if i+16 > len(probes) {
				i = 0
			}
			for j, k := range keys[i : i+16] {
				tokens[j] = ring.Token(k)
			}
			c.prefetch(tokens[:])
		}
		p := &probes[i]
		if _, ok := c.get(ring.Token(keys[i]), p.rk[:p.n]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}
