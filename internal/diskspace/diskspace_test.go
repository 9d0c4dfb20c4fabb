package diskspace

import (
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeFS is a filesystem whose free space the test sets.
type fakeFS struct {
	mu           sync.Mutex
	avail, total uint64
	calls        int
	err          error
}

func (f *fakeFS) statfs(string) (uint64, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.avail, f.total, f.err
}

func (f *fakeFS) set(avail uint64) {
	f.mu.Lock()
	f.avail = avail
	f.mu.Unlock()
}

func TestDefaultReserve(t *testing.T) {
	for _, tc := range []struct{ total, want uint64 }{
		{40 << 20, 2 << 20},    // 5% of a small disk
		{10 << 20, 1 << 20},    // never below 1 MiB
		{100 << 30, 256 << 20}, // capped on a large one
	} {
		fs := &fakeFS{avail: tc.total, total: tc.total}
		m, err := New(Config{Dir: t.TempDir(), Statfs: fs.statfs})
		if err != nil {
			t.Fatal(err)
		}
		if m.Reserve() != tc.want {
			t.Errorf("total %d: reserve %d, want %d", tc.total, m.Reserve(), tc.want)
		}
	}
}

func TestFullAndFreedWithHysteresis(t *testing.T) {
	fs := &fakeFS{avail: 100 << 20, total: 1 << 30}
	dir := t.TempDir()
	m, err := New(Config{Dir: dir, Reserve: 10 << 20, Statfs: fs.statfs})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(100); err != nil || m.Full() {
		t.Fatalf("100 MiB free: Check %v, Full %v", err, m.Full())
	}
	fs.set(5 << 20)
	m.Refresh()
	err = m.Check(100)
	if !m.Full() || !errors.Is(err, ErrDiskFull) {
		t.Fatalf("5 MiB free: Full %v, Check %v", m.Full(), err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "5.0 MB free") {
		t.Errorf("error does not name the directory and the free space: %v", err)
	}
	// Just above the reserve is not enough to clear: it would flap.
	fs.set(11 << 20)
	m.Refresh()
	if !m.Full() {
		t.Fatal("cleared at 11 MiB free with a 10 MiB reserve; want hysteresis")
	}
	fs.set(13 << 20)
	m.Refresh()
	if m.Full() || m.Check(100) != nil {
		t.Fatal("not cleared at 13 MiB free with a 10 MiB reserve")
	}
}

// Writes admitted between two readings are charged, so a burst cannot run
// through the reserve before the next tick.
func TestCheckChargesWritesAndRemeasures(t *testing.T) {
	fs := &fakeFS{avail: 20 << 20, total: 1 << 30}
	m, err := New(Config{Dir: t.TempDir(), Reserve: 10 << 20, Statfs: fs.statfs})
	if err != nil {
		t.Fatal(err)
	}
	for range 9 {
		if err := m.Check(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	// The engine wrote them: the disk now has 11 MiB free.
	fs.set(11 << 20)
	before := fs.calls
	if err := m.Check(1 << 20); err != nil {
		t.Fatalf("10th MiB: %v", err)
	}
	if err := m.Check(2 << 20); err == nil {
		t.Fatal("a write that would go into the reserve was admitted")
	} else if m.Full() {
		t.Fatal("one write too large for the space left made the whole disk full")
	}
	if fs.calls == before {
		t.Fatal("crossing the reserve did not measure again")
	}
	fs.set(9 << 20)
	if err := m.Check(2 << 20); !errors.Is(err, ErrDiskFull) || !m.Full() {
		t.Fatalf("below the reserve: Check %v, Full %v", err, m.Full())
	}
}

func TestStatfsFailureKeepsState(t *testing.T) {
	fs := &fakeFS{avail: 1 << 20, total: 1 << 30}
	m, err := New(Config{Dir: t.TempDir(), Reserve: 10 << 20, Statfs: fs.statfs})
	if err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.err, fs.avail = syscall.EIO, 1<<30
	fs.mu.Unlock()
	m.Refresh()
	if !m.Full() {
		t.Fatal("a failed reading cleared the full state")
	}
}

// The real statfs on a real directory: some space, a size at least as large.
func TestStatfsReal(t *testing.T) {
	m, err := New(Config{Dir: t.TempDir() + "/not/yet/made"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Total() == 0 || m.Free() > m.Total() {
		t.Fatalf("free %d of %d", m.Free(), m.Total())
	}
	m.Start()
	m.Kick()
	m.Close()
}

// SetReserve makes a disk full without filling it, and 0 restores the
// reserve New chose.
func TestSetReserve(t *testing.T) {
	fs := &fakeFS{avail: 100 << 20, total: 1 << 30}
	m, err := New(Config{Dir: t.TempDir(), Reserve: 10 << 20, Statfs: fs.statfs})
	if err != nil {
		t.Fatal(err)
	}
	m.SetReserve(1 << 50)
	if !m.Full() || !errors.Is(m.Check(1), ErrDiskFull) {
		t.Fatal("a reserve above the free space did not make the disk full")
	}
	m.SetReserve(0)
	if m.Full() || m.Reserve() != 10<<20 {
		t.Fatalf("after SetReserve(0): full %v, reserve %d", m.Full(), m.Reserve())
	}
}
