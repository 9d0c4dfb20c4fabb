//go:build unix

package memindex

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock reads the process's CPU time. On a shared machine wall time per
// operation includes the time spent waiting for a core; CPU time does not,
// so the benchmarks report both.
type cpuClock struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{cpuNow()} }

func (c cpuClock) report(b *testing.B) {
	b.Helper()
	b.ReportMetric(float64(cpuNow()-c.start)/float64(b.N), "cpu-ns/op")
}
