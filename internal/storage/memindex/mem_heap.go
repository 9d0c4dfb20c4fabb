//go:build !linux || race

package memindex

// The portable allocator: chunks and tables on the Go heap. They still hold no
// pointers, so the collector does not scan them, but they count towards the
// heap target. Race builds use it on Linux too (see mem_mmap.go).

const mapsOffHeap = false

func mapBytes(n int) []byte { return make([]byte, n) }

func unmapBytes([]byte) {}

func mapSlots(n int) []slot { return make([]slot, n) }

func unmapSlots([]slot) {}
