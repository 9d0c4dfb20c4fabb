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
	var before int64 // a later run's: the first run's range, and what it holds now
	if once.advised[1] != 0 {
		before = rssOfRange(t, once.advised[0], once.advised[1])
	}
	res, err := Reserve(n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != ModeMadvise || res.Advised < n-2*pmdSize() || res.Advised > n {
		t.Fatalf("Reserve(%d) = %+v, want mode madvise and about %d bytes advised", n, res, n)
	}
	// The resident memory of the advised range itself, not the process's:
	// under the race detector, allocating the range fills the detector's
	// own metadata for it (half its size), which is not the range's.
	if grew := rssOfRange(t, once.advised[0], once.advised[1]) - before; grew > n/8 {
		t.Errorf("Reserve(%d MiB) made %d MiB of the range it advised resident: it touched the memory", n>>20, grew>>20)
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
	res, _, err := reserve(pmdSize())
	if err != nil || res.Advised != 0 {
		t.Errorf("Reserve(one huge page) = %+v, %v; want nothing advised", res, err)
	}
}

// rssOfRange returns the resident memory of the mappings that overlap
// [from, to), by /proc/self/smaps.
func rssOfRange(t *testing.T, from, to uintptr) int64 {
	t.Helper()
	if from >= to {
		t.Fatalf("empty range %#x-%#x", from, to)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rss int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := mappingBounds(line); ok {
			in = lo < uint64(to) && hi > uint64(from)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); in && ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			rss += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rss
}

// mappingBounds parses a mapping's header line in /proc/self/smaps,
// "start-end perms offset dev inode [path]"; its attributes follow as
// "Name: value" lines, which it rejects.
func mappingBounds(line string) (lo, hi uint64, ok bool) {
	fs := strings.Fields(line)
	if len(fs) == 0 {
		return 0, 0, false
	}
	l, h, ok := strings.Cut(fs[0], "-")
	if !ok {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(l, 16, 64)
	hi, err2 := strconv.ParseUint(h, 16, 64)
	return lo, hi, err1 == nil && err2 == nil
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
		if lo, hi, ok := mappingBounds(line); ok {
			in = uint64(addr) >= lo && uint64(addr) < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping in /proc/self/smaps holds %#x", addr)
	return ""
}
