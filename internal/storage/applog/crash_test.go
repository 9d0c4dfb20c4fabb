package applog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// model is the engine's side of the contract: an entry is applied to memory
// (here: recorded) before its Append, and a snapshot's fill adds every
// applied entry.
type model struct {
	mu      sync.Mutex
	applied [][]byte
	acked   []string
	synced  int // acked[:synced] were acknowledged before a Sync that returned nil
}

func (m *model) apply(e []byte) {
	m.mu.Lock()
	m.applied = append(m.applied, e)
	m.mu.Unlock()
}

func (m *model) ack(e []byte) {
	m.mu.Lock()
	m.acked = append(m.acked, string(e))
	m.mu.Unlock()
}

func (m *model) fill(w SnapshotWriter) error {
	m.mu.Lock()
	live := m.applied[:len(m.applied):len(m.applied)]
	m.mu.Unlock()
	for _, e := range live {
		if err := w.Add(e); err != nil {
			return err
		}
	}
	return nil
}

// required returns the entries a crash now must not lose.
func (m *model) required(syncOn bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if syncOn {
		return append([]string(nil), m.acked...)
	}
	return append([]string(nil), m.acked[:m.synced]...)
}

func (m *model) check(t *testing.T, required []string, r *replayed) {
	t.Helper()
	got := r.set()
	for _, e := range required {
		if got[e] == 0 {
			t.Fatalf("acknowledged durable entry %.20q lost in the crash (%d required, %d replayed)", e, len(required), len(got))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all := map[string]bool{}
	for _, e := range m.applied {
		all[string(e)] = true
	}
	for e := range got {
		if !all[e] {
			t.Fatalf("replayed %.20q, which was never appended", e)
		}
	}
}

// TestCrashKeepsAcknowledged crashes the filesystem at random moments while
// appenders, the periodic syncer and compaction (rotate + snapshot) run, with
// none, half or all of the unsynced blocks surviving. Every crash must open
// without corruption and keep what the log promised.
func TestCrashKeepsAcknowledged(t *testing.T) {
	for _, syncOn := range []bool{true, false} {
		for _, pct := range []int{0, 50, 100} {
			t.Run(fmt.Sprintf("sync=%t/unsynced=%d%%", syncOn, pct), func(t *testing.T) {
				for seed := range uint64(6) {
					crashOnce(t, syncOn, pct, seed)
				}
			})
		}
	}
}

func crashOnce(t *testing.T, syncOn bool, pct int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(pct)))
	mem := vfs.NewCrashableMem()
	l, _ := mustOpen(t, Options{FS: mem, Dir: "/log", Sync: syncOn, SegmentSize: 8 << 10, Logger: newTestLogger(t).Logger})
	m := &model{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				e := entry(int(next.Add(1)))
				m.apply(e)
				if err := l.Append(e); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				m.ack(e)
			}
		})
	}
	if !syncOn {
		// A long interval leaves many unsynced blocks, so that a crash
		// that keeps some of them leaves holes before the tail.
		interval := []time.Duration{200 * time.Microsecond, 5 * time.Millisecond}[seed%2]
		wg.Go(func() {
			for !stop.Load() {
				m.mu.Lock()
				n := len(m.acked)
				m.mu.Unlock()
				if err := l.Sync(); err != nil {
					t.Errorf("Sync: %v", err)
					return
				}
				m.mu.Lock()
				m.synced = n
				m.mu.Unlock()
				time.Sleep(interval)
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			time.Sleep(time.Millisecond)
			upTo, err := l.Rotate()
			if err == nil {
				err = l.WriteSnapshot(upTo, 0, m.fill)
			}
			if err != nil {
				t.Errorf("compaction: %v", err)
				return
			}
		}
	})
	time.Sleep(time.Duration(2+rng.IntN(15)) * time.Millisecond)
	required := m.required(syncOn)
	cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct}
	if pct > 0 {
		cfg.RNG = rng
	}
	crashed := mem.CrashClone(cfg)
	stop.Store(true)
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	tl := newTestLogger(t)
	r := &replayed{}
	l2, err := Open(Options{FS: crashed, Dir: "/log", Logger: tl.Logger}, r.add)
	if err != nil {
		var ce *CorruptError
		t.Fatalf("seed %d: open after crash: %v (corrupt: %t)", seed, err, errors.As(err, &ce))
	}
	m.check(t, required, r)
	// What the crash left must stay consistent across another open.
	m.apply([]byte("after-crash"))
	if err := l2.Append([]byte("after-crash")); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	l3, r3 := mustOpen(t, Options{FS: crashed, Dir: "/log", Logger: tl.Logger})
	defer l3.Close()
	m.check(t, required, r3)
	if r3.set()["after-crash"] != 1 {
		t.Fatal("entry appended after the crash recovery lost")
	}
}

// hookFS calls hook before every operation that changes the filesystem, so
// that a test can crash at each step of a sequence.
type hookFS struct {
	vfs.FS
	hook func()
}

func (fs *hookFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	fs.hook()
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return &hookFile{File: f, fs: fs}, nil
}
func (fs *hookFS) Rename(a, b string) error { fs.hook(); return fs.FS.Rename(a, b) }
func (fs *hookFS) Remove(a string) error    { fs.hook(); return fs.FS.Remove(a) }
func (fs *hookFS) OpenDir(a string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(a)
	if err != nil {
		return nil, err
	}
	return &hookFile{File: f, fs: fs}, nil
}

type hookFile struct {
	vfs.File
	fs *hookFS
}

func (f *hookFile) Write(p []byte) (int, error) { f.fs.hook(); return f.File.Write(p) }
func (f *hookFile) Sync() error                 { f.fs.hook(); return f.File.Sync() }
func (f *hookFile) SyncData() error             { f.fs.hook(); return f.File.SyncData() }

// TestCrashDuringCompaction crashes at every filesystem step of rotate +
// snapshot + cleanup (and the appends around it), keeping none or half of
// the unsynced data: each crash must replay every acknowledged entry.
func TestCrashDuringCompaction(t *testing.T) {
	for _, pct := range []int{0, 50} {
		for step := 0; ; step++ {
			mem := vfs.NewCrashableMem()
			rng := rand.New(rand.NewPCG(uint64(step), 7))
			var ops int
			var crashed *vfs.MemFS
			var acked []string
			var required []string
			fs := &hookFS{FS: mem}
			fs.hook = func() {
				if ops == step && crashed == nil {
					cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct}
					if pct > 0 {
						cfg.RNG = rng
					}
					crashed = mem.CrashClone(cfg)
					required = append([]string(nil), acked...)
				}
				ops++
			}
			l, _ := mustOpen(t, Options{FS: fs, Dir: "/log", Sync: true, SegmentSize: 4 << 10, Logger: newTestLogger(t).Logger})
			ops = 0 // count from the workload on
			m := &model{}
			appendN := func(from, n int) {
				for i := from; i < from+n; i++ {
					m.apply(entry(i))
					if err := l.Append(entry(i)); err != nil {
						t.Fatal(err)
					}
					acked = append(acked, string(entry(i)))
				}
			}
			appendN(0, 60)
			upTo, err := l.Rotate()
			if err != nil {
				t.Fatal(err)
			}
			appendN(60, 5)
			if err := l.WriteSnapshot(upTo, 0, m.fill); err != nil {
				t.Fatal(err)
			}
			appendN(65, 5)
			upTo, err = l.Rotate()
			if err != nil {
				t.Fatal(err)
			}
			if err := l.WriteSnapshot(upTo, 0, m.fill); err != nil {
				t.Fatal(err)
			}
			appendN(70, 5)
			l.Close()
			if crashed == nil {
				if step < 20 {
					t.Fatalf("only %d steps", step)
				}
				break
			}
			r := &replayed{}
			l2, err := Open(Options{FS: crashed, Dir: "/log", Logger: newTestLogger(t).Logger}, r.add)
			if err != nil {
				t.Fatalf("unsynced=%d%% crash at step %d: open: %v", pct, step, err)
			}
			l2.Close()
			got := r.set()
			for _, e := range required {
				if got[e] == 0 {
					t.Fatalf("unsynced=%d%% crash at step %d lost acknowledged %.20q", pct, step, e)
				}
			}
		}
	}
}

// noSyncFS drops every fsync: a process killed before it synced anything.
type noSyncFS struct{ vfs.FS }

func (fs noSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return noSyncFile{f}, err
}
func (fs noSyncFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return noSyncFile{f}, err
}

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error     { return nil }
func (noSyncFile) SyncData() error { return nil }

// TestRestartThenPowerLoss: a process appends under Sync false and dies
// before any fsync, leaving its entries in the page cache; the next process
// opens the log, and then the machine loses power. The restart recorded the
// old segment's length in the new segment's header, so it must have made
// that length durable first, or the power loss turns into corruption.
func TestRestartThenPowerLoss(t *testing.T) {
	mem := vfs.NewCrashableMem()
	l, _ := mustOpen(t, Options{FS: noSyncFS{mem}, Dir: "/log", Logger: newTestLogger(t).Logger})
	want := map[string]int{}
	for i := range 50 {
		if err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		want[string(entry(i))]++
	}
	l.Close() // its fsyncs go nowhere: as good as a kill -9

	l, r := mustOpen(t, Options{FS: mem, Dir: "/log", Logger: newTestLogger(t).Logger})
	checkSame(t, r.set(), want)
	crashed := mem.CrashClone(vfs.CrashCloneCfg{}) // power loss while running
	l.Close()
	l, r = mustOpen(t, Options{FS: crashed, Dir: "/log", Logger: newTestLogger(t).Logger})
	defer l.Close()
	checkSame(t, r.set(), want)
}
