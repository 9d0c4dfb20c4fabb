package hugepages

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestReserveAdvisesTheHeapGrownLater checks the mechanism end to end: the
// heap allocated after Reserve lies in a mapping advised for huge pages, and
// Reserve itself does not touch the memory it advises.
// Reserve acts once per process, so with -count=N the later runs check the
// first run's advice.
func TestReserveAdvisesTheHeapGrownLater(t *testing.T) {
	if m := Mode(); m != ModeMadvise {
		t.Skipf("kernel transparent huge page mode is %q: Reserve advises only under madvise", m)
	}
	const n = 256 << 20
	rss0 := rssBytes(t)
	res, err := Reserve(n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != ModeMadvise || res.Advised < n-2*pmdSize() || res.Advised > n {
		t.Fatalf("Reserve(%d) = %+v, want mode madvise and about %d bytes advised", n, res, n)
	}
	if grew := rssBytes(t) - rss0; grew > n/8 {
		t.Errorf("Reserve(%d MiB) grew the resident set by %d MiB: it touched the memory it advises", n>>20, grew>>20)
	}
	// A large allocation now reuses the freed range, lowest address first.
	// It may begin a little below the range's first whole huge page, which
	// is where the advice starts: look at its middle.
	b := make([]byte, 64<<20)
	mid := uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(len(b)/2)
	if flags := vmFlags(t, mid); !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("a 64 MiB allocation after Reserve lies in a mapping with VmFlags %q, want hg (MADV_HUGEPAGE)", flags)
	}
}

func TestReserveCapsItsSizeAndSkipsTinyRequests(t *testing.T) {
	if m := Mode(); m != ModeMadvise {
		t.Skipf("kernel transparent huge page mode is %q", m)
	}
	res, err := reserve(pmdSize())
	if err != nil || res.Advised != 0 {
		t.Errorf("Reserve(one huge page) = %+v, %v; want nothing advised", res, err)
	}
}

func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// vmFlags returns the VmFlags line of the mapping that holds addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		// A mapping's header is "start-end perms offset dev inode [path]";
		// its attributes follow as "Name: value" lines.
		if lo, hi, ok := strings.Cut(strings.Fields(line)[0], "-"); ok {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = uint64(addr) >= l && uint64(addr) < h
				continue
			}
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping in /proc/self/smaps holds %#x", addr)
	return ""
}
