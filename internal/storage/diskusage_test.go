package storage

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// duBytes is what du says dir occupies, in bytes.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatalf("du: %v", err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatalf("du output %q: %v", out, err)
	}
	return n
}

// TestDiskUsageIsWhatTheDirectoryHolds: the disk metric of either engine is
// what du measures for the data directory, preallocated WAL space included,
// and an idle store's directory stays small.
func TestDiskUsageIsWhatTheDirectoryHolds(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		dir := t.TempDir()
		s := openTest(t, Options{Engine: engine, Dir: dir})
		idle := duBytes(t, dir)
		if idle > 8<<20 {
			t.Errorf("an empty %s store takes %d bytes on disk, want under 8 MiB", engine, idle)
		}
		for i := range 2000 {
			mustApply(t, s, fmt.Sprintf("key-%05d", i), val(int64(i+1), "n1", strings.Repeat("v", 500)))
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		// The walk is cached: age it, so that this Metrics walks again.
		s.disk.at = s.disk.at.AddDate(-1, 0, 0)
		got := int64(s.Metrics().DiskUsageBytes)
		want := duBytes(t, dir)
		if got != want {
			t.Fatalf("%s: disk_usage_bytes %d, du %d", engine, got, want)
		}
		if got < 2000*500 {
			t.Fatalf("%s: disk_usage_bytes %d for 1 MB of values", engine, got)
		}
	})
}
