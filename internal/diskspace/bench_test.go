package diskspace

import "testing"

// BenchmarkCheck is the write path's cost: atomic loads, and a statfs when
// the reading is older than staleAfter.
func BenchmarkCheck(b *testing.B) {
	m, err := New(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := m.Check(100); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStatfs is one reading.
func BenchmarkStatfs(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if _, _, err := statfs(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckSerial is Check from one goroutine, without contention on
// the charged counter.
func BenchmarkCheckSerial(b *testing.B) {
	m, err := New(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := m.Check(100); err != nil {
			b.Fatal(err)
		}
	}
}
