package storage

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
)

func BenchmarkZZApplyRandom(b *testing.B) {
	mt, _ := strconv.Atoi(os.Getenv("MT"))
	s := openTest(b, Options{Dir: b.TempDir(), Sync: SyncPeriodic, MemTableSize: uint64(mt) << 20})
	keys := make([][]byte, 1000000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key:%012d", i)
	}
	var seq atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(uint64(seq.Add(1)), 1))
		for pb.Next() {
			i := seq.Add(1)
			if _, err := s.Apply(keys[r.IntN(len(keys))], benchRecord(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
