//go:build linux && !race

package memindex

import (
	"fmt"
	"syscall"
	"unsafe"
)

// Anonymous private mappings: the kernel backs a page with memory on first
// touch, so the unused tail of a chunk costs address space, not memory, and
// unmapping returns memory to the system at once, where a freed Go object
// waits for a collection and the scavenger.
//
// Under the race detector the heap allocator (mem_heap.go) is used instead:
// the detector watches only the Go heap and data segments, and the chunks and
// tables are exactly the memory whose races matter.

const mapsOffHeap = true

func mapBytes(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		// Put has no error to return: running out of address space or
		// memory here is the same failure as the Go heap's, which also
		// ends the process. The engine bounds memory above (--max-memory).
		panic(fmt.Sprintf("memindex: mmap %d bytes: %v", n, err))
	}
	return b
}

func unmapBytes(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		// Only a slice that mapBytes did not return can fail: a bug here.
		panic(fmt.Sprintf("memindex: munmap %d bytes: %v", len(b), err))
	}
}

func mapSlots(n int) []slot {
	b := mapBytes(n * slotBytes)
	return unsafe.Slice((*slot)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

func unmapSlots(s []slot) {
	unmapBytes(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*slotBytes))
}
