//go:build amd64 || arm64

package memindex

// prefetch asks the CPU to bring addr's cache line in. It never faults, so
// addr may be stale: a table a concurrent writer has just unmapped costs a
// wasted hint, not a crash, which is what lets Prefetch run without the
// shard locks.
//
//go:noescape
func prefetch(addr uintptr)
