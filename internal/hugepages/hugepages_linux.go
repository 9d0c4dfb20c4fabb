package hugepages

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

var once struct {
	sync.Once
	res Result
	err error
	// advised is the address range the advice covers, for tests to look at.
	advised [2]uintptr
}

// Reserve advises n bytes of heap for huge pages when the kernel's mode is
// "madvise", and does nothing otherwise. Call it early, before the heap has
// grown: it only helps the heap the process grows into afterwards, and only
// up to n bytes of it, and a heap that has grown already has dirty memory
// the allocation would reuse and zero. It acts once per process; later calls
// return the first one's result. It runs a garbage collection.
//
// n is capped at half the machine's memory: the allocation is never touched,
// but a kernel that refuses to overcommit would still refuse a mapping
// larger than it can back, and the runtime cannot survive that.
func Reserve(n int64) (Result, error) {
	once.Do(func() { once.res, once.advised, once.err = reserve(n) })
	return once.res, once.err
}

func reserve(n int64) (Result, [2]uintptr, error) {
	res := Result{Mode: Mode()}
	if res.Mode != ModeMadvise || n <= 0 {
		return res, [2]uintptr{}, nil
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil {
		if half := int64(si.Totalram) * int64(si.Unit) / 2; half > 0 && n > half {
			n = half
		}
	}
	huge := pmdSize()
	if n < 2*huge {
		return res, [2]uintptr{}, nil
	}
	// The runtime hands fresh memory to a large allocation without zeroing
	// it (a new mapping is zero already), so b costs address space, not
	// memory.
	b := make([]byte, n)
	// madvise wants the range aligned to huge pages: advise the whole huge
	// pages inside b.
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	from := int64((base+uintptr(huge)-1)&^(uintptr(huge)-1) - base)
	to := from + (n-from)&^(huge-1)
	err := syscall.Madvise(b[from:to], syscall.MADV_HUGEPAGE)
	runtime.KeepAlive(b)
	// Free the range now, so that the heap grows into it rather than
	// beside it.
	runtime.GC()
	if err != nil {
		return res, [2]uintptr{}, fmt.Errorf("hugepages: madvise: %w", err)
	}
	res.Advised = to - from
	return res, [2]uintptr{base + uintptr(from), base + uintptr(to)}, nil
}

// pmdSize is the size of a transparent huge page: 2 MiB on x86-64, more on
// some arm64 kernels.
func pmdSize() int64 {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 2 << 20
}
