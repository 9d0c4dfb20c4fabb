// Package hugepages asks the kernel to back the Go heap with transparent huge
// pages where it hands them out only on request.
//
// Most distributions set the kernel's transparent huge page mode to
// "madvise": a mapping gets 2 MiB pages only once madvise(MADV_HUGEPAGE)
// names it, and the Go runtime names none of its heap. The heap then holds
// Pebble's memtable arenas (64 MiB each, Go memory in a build without cgo)
// in 4 KiB pages, and every step of a skiplist walk through an arena misses
// the TLB: on the 2-core machines ringkv is measured on, a SET cost about a
// quarter more CPU than with the mode at "always" (docs/performance.md).
//
// The runtime maps heap memory once and keeps the mapping for the life of the
// process (memory it returns to the kernel is released with MADV_DONTNEED,
// which keeps a mapping's advice), and it reuses free heap addresses lowest
// first. So Reserve allocates the heap the node will need up front, advises
// that range and frees it: the pages are never touched until the runtime
// reuses them for memtables, caches and everything else, and then the kernel
// backs them with huge pages. Nothing is locked or pinned; the advice only
// changes the size of the pages the kernel faults in.
package hugepages
