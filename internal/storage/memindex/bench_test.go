package memindex

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"

	"github.com/cespare/xxhash/v2"
)

var benchBig = flag.Bool("memindex.big", false, "also run the 10M-entry benchmarks (about 4 GB of memory)")

const (
	benchKeyLen = 16
	benchValLen = 100
)

// benchKey writes the 16-byte key of entry i into k.
func benchKey(k []byte, i int) []byte {
	// By hand: fmt boxes i, an allocation the Put benchmark would count.
	k = append(k[:0], "key:000000000000"...)
	for j := len(k) - 1; i > 0; j-- {
		k[j] = byte('0' + i%10)
		i /= 10
	}
	return k
}

func benchValue(r *rand.Rand) []byte {
	v := make([]byte, benchValLen)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

func buildIndex(n int) *Index {
	ix := New(Options{})
	r := rand.New(rand.NewPCG(1, 2))
	v := benchValue(r)
	var k []byte
	for i := range n {
		k = benchKey(k, i)
		v[0], v[1] = byte(i), byte(i>>8)
		ix.Put(xxhash.Sum64(k), k, v)
	}
	return ix
}

func sizes(b *testing.B) []int {
	b.Helper()
	if *benchBig {
		return []int{1_000_000, 10_000_000}
	}
	return []int{1_000_000}
}

// BenchmarkGet reads random present keys into a reused buffer.
func BenchmarkGet(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ix := buildIndex(n)
			defer ix.Close()
			keys := make([][]byte, 1<<16)
			toks := make([]uint64, len(keys))
			r := rand.New(rand.NewPCG(3, 4))
			for i := range keys {
				keys[i] = benchKey(nil, r.IntN(n))
				toks[i] = xxhash.Sum64(keys[i])
			}
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				j := i & (len(keys) - 1)
				var ok bool
				if buf, ok = ix.Get(toks[j], keys[j], buf[:0]); !ok {
					b.Fatal("missing key")
				}
				i++
			}
			cpu.report(b)
		})
	}
}

// BenchmarkGetPrefetch16 reads like BenchmarkGet in batches of 16, each
// announced by Prefetch, the way the engine serves a pipelined batch.
func BenchmarkGetPrefetch16(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ix := buildIndex(n)
			defer ix.Close()
			keys := make([][]byte, 1<<16)
			toks := make([]uint64, len(keys))
			r := rand.New(rand.NewPCG(3, 4))
			for i := range keys {
				keys[i] = benchKey(nil, r.IntN(n))
				toks[i] = xxhash.Sum64(keys[i])
			}
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				j := i & (len(keys) - 1)
				if j%16 == 0 {
					ix.Prefetch(toks[j : j+16])
				}
				var ok bool
				if buf, ok = ix.Get(toks[j], keys[j], buf[:0]); !ok {
					b.Fatal("missing key")
				}
				i++
			}
			cpu.report(b)
		})
	}
}

// BenchmarkMapGet is the baseline for BenchmarkGet on the same machine: a
// map[string][]byte, no lock, the value copied out the same way.
func BenchmarkMapGet(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			m := buildMap(n)
			keys := make([][]byte, 1<<16)
			r := rand.New(rand.NewPCG(3, 4))
			for i := range keys {
				keys[i] = benchKey(nil, r.IntN(n))
			}
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				v, ok := m[string(keys[i&(len(keys)-1)])]
				if !ok {
					b.Fatal("missing key")
				}
				buf = append(buf[:0], v...)
				i++
			}
			cpu.report(b)
		})
	}
}

func buildMap(n int) map[string][]byte {
	m := make(map[string][]byte)
	r := rand.New(rand.NewPCG(1, 2))
	v := benchValue(r)
	var k []byte
	for i := range n {
		k = benchKey(k, i)
		m[string(k)] = append([]byte(nil), v...)
	}
	return m
}

// BenchmarkPut overwrites random present keys (the steady state of a SET
// load, compaction included) or inserts new ones.
func BenchmarkPut(b *testing.B) {
	for _, n := range sizes(b) {
		for _, mode := range []string{"overwrite", "insert"} {
			b.Run(fmt.Sprintf("%s/n=%d", mode, n), func(b *testing.B) {
				ix := buildIndex(n)
				defer ix.Close()
				r := rand.New(rand.NewPCG(5, 6))
				v := benchValue(r)
				keys := make([][]byte, 1<<16)
				toks := make([]uint64, len(keys))
				for i := range keys {
					keys[i] = benchKey(nil, r.IntN(n))
					toks[i] = xxhash.Sum64(keys[i])
				}
				var k []byte
				b.ReportAllocs()
				cpu := startCPU()
				i := 0
				for b.Loop() {
					if mode == "insert" {
						k = benchKey(k, n+i)
						ix.Put(xxhash.Sum64(k), k, v)
					} else {
						j := i & (len(keys) - 1)
						ix.Put(toks[j], keys[j], v)
					}
					i++
				}
				cpu.report(b)
			})
		}
	}
}

// BenchmarkGC measures what a full garbage collection costs with n entries
// of 16-byte keys and 100-byte values held by the index, and by a
// map[string][]byte for comparison: ns/op is one forced runtime.GC(), with
// the stop-the-world pauses, the collector's CPU and the heap beside it.
// Run: go test -run '^$' -bench BenchmarkGC -benchtime 5x [-memindex.big].
func BenchmarkGC(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("index/n=%d", n), func(b *testing.B) {
			ix := buildIndex(n)
			defer ix.Close()
			measureGC(b)
			b.ReportMetric(float64(ix.MemoryBytes())/(1<<20), "index-MB")
			b.ReportMetric(float64(ix.MemoryBytes()-int64(n)*(benchKeyLen+benchValLen))/float64(n), "overhead-B/entry")
			runtime.KeepAlive(ix)
		})
		b.Run(fmt.Sprintf("map/n=%d", n), func(b *testing.B) {
			m := buildMap(n)
			measureGC(b)
			runtime.KeepAlive(m)
		})
	}
}

func measureGC(b *testing.B) {
	b.Helper()
	runtime.GC()
	var before, after debug.GCStats
	debug.ReadGCStats(&before)
	cpu := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(cpu)
	gcCPU0 := cpu[0].Value.Float64()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	b.StopTimer()
	debug.ReadGCStats(&after)
	metrics.Read(cpu)
	cycles := after.NumGC - before.NumGC
	if cycles == 0 {
		b.Fatal("no collection ran")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(after.PauseTotal-before.PauseTotal)/float64(cycles)/1e3, "pause-µs/gc")
	b.ReportMetric((cpu[0].Value.Float64()-gcCPU0)/float64(cycles)*1e3, "gc-cpu-ms/gc")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
	if rss, ok := residentBytes(); ok {
		b.ReportMetric(float64(rss)/(1<<20), "rss-MB")
	}
}

// residentBytes reads the process's resident set size on Linux, the
// figure the memory target is stated in.
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0, false
	}
	return resident * int64(os.Getpagesize()), true
}

// BenchmarkRange enumerates one shard's slice of the ring (an anti-entropy
// bucket or a SCAN step) and the whole ring; ns/op is per entry visited.
func BenchmarkRange(b *testing.B) {
	for _, n := range sizes(b) {
		ix := buildIndex(n)
		width := uint64(1) << ix.shift
		for _, c := range []struct {
			name     string
			from, to uint64
		}{{"shard", 5 * width, 6 * width}, {"ring", 0, 0}} {
			b.Run(fmt.Sprintf("%s/n=%d", c.name, n), func(b *testing.B) {
				var seen int
				cpu := startCPU()
				for b.Loop() {
					err := ix.Range(c.from, c.to, nil, func(uint64, []byte, []byte) error {
						seen++
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seen), "ns/entry")
			})
		}
		ix.Close()
	}
}
