//go:build linux

package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// holdTablesFS makes the next table file created wait until released, so a
// test can look at a flush while it runs.
type holdTablesFS struct {
	vfs.FS
	once    sync.Once
	held    chan struct{} // closed when a table's creation is held
	release chan struct{}
}

func (fs *holdTablesFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") {
		fs.once.Do(func() {
			close(fs.held)
			<-fs.release
		})
	}
	return fs.FS.Create(name, cat)
}

// nicedThreads lists this process's threads whose nice value is nice.
func nicedThreads(t *testing.T, nice int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread has exited
		}
		// After the command name in parentheses: state is field 3, nice 19.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if n, err := strconv.Atoi(f[16]); err == nil && n == nice {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}

// With LowPriorityBackground a flush runs on a thread at nice 19 while it
// lasts, and that thread is gone once the flush is (or, the main thread,
// parked for good): nothing else of the process runs at the lowered
// priority. Without it, no thread is lowered.
func TestFlushRunsOnALowPriorityThread(t *testing.T) {
	for _, low := range []bool{false, true} {
		t.Run(fmt.Sprintf("low=%v", low), func(t *testing.T) {
			fs := &holdTablesFS{FS: vfs.NewMem(), held: make(chan struct{}), release: make(chan struct{})}
			s := openTest(t, Options{Engine: EnginePebble, FS: fs, Dir: "db", LowPriorityBackground: low})
			for i := range 1000 {
				if _, err := s.Apply([]byte(fmt.Sprintf("k%04d", i)), val(int64(i+1), "n1", "v")); err != nil {
					t.Fatal(err)
				}
			}
			// The main thread cannot exit: a job that ran there leaves it
			// parked for good at the lowered priority, running nothing more.
			main := strconv.Itoa(os.Getpid())
			before := nicedThreads(t, backgroundNice)
			lowered := func() []string {
				return slices.DeleteFunc(nicedThreads(t, backgroundNice), func(tid string) bool {
					return slices.Contains(before, tid)
				})
			}
			flushed := make(chan error, 1)
			go func() { flushed <- pebbleOf(s).db.Flush() }()
			<-fs.held
			during := lowered()
			close(fs.release)
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[low]; len(during) != want {
				t.Fatalf("threads at nice %d during the flush: %v, want %d", backgroundNice, during, want)
			}
			m := s.Metrics()
			if low && (m.BackgroundJobsLowered == 0 || m.BackgroundLowerErrors != 0) {
				t.Fatalf("lowered %d jobs, %d errors; want the flush lowered", m.BackgroundJobsLowered, m.BackgroundLowerErrors)
			}
			if !low && m.BackgroundJobsLowered != 0 {
				t.Fatalf("lowered %d jobs with LowPriorityBackground off", m.BackgroundJobsLowered)
			}
			before = append(before, main)
			deadline := time.Now().Add(10 * time.Second)
			for len(lowered()) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("threads %v still at nice %d after the flush", lowered(), backgroundNice)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
