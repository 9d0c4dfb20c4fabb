package applog

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// BenchmarkAppend measures Append on the real disk (b.TempDir) with 128-byte
// entries and 1, 16 and 64 concurrent appenders; entries/write is the group
// commit's effect.
func BenchmarkAppend(b *testing.B) {
	for _, syncOn := range []bool{false, true} {
		for _, conc := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("sync=%t/appenders=%d", syncOn, conc), func(b *testing.B) {
				l, err := Open(Options{FS: vfs.Default, Dir: b.TempDir(), Sync: syncOn}, func([]byte) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				e := make([]byte, 128)
				per := b.N / conc
				b.ReportAllocs()
				b.SetBytes(int64(len(e)))
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range conc {
					n := per
					if w == 0 {
						n += b.N % conc
					}
					wg.Go(func() {
						for range n {
							if err := l.Append(e); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				st := l.Stats()
				b.ReportMetric(float64(st.Entries)/float64(max(st.Writes, 1)), "entries/write")
				b.ReportMetric(float64(st.Fsyncs)/float64(b.N), "fsyncs/op")
			})
		}
	}
}
