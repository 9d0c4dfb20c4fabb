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

// BenchmarkReplay measures Open over 1M 128-byte entries on the real disk
// (the page cache warm): the log's share of a restart.
func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(Options{FS: vfs.Default, Dir: dir}, nil)
	if err != nil {
		b.Fatal(err)
	}
	e := make([]byte, 128)
	const n = 1 << 20
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = e
	}
	for range n / len(batch) {
		if err := l.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(l.Size())
	b.ResetTimer()
	for range b.N {
		count := 0
		l, err := Open(Options{FS: vfs.Default, Dir: dir}, func([]byte) error { count++; return nil })
		if err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("replayed %d, want %d", count, n)
		}
		l.Close()
	}
}
