package applog

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// fullFS acts out a full disk: while full, a write stores part of its bytes
// and fails with ENOSPC, as write(2) does when the last blocks run out, and
// creating a file fails.
type fullFS struct {
	vfs.FS
	full atomic.Bool
}

func (fs *fullFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if fs.full.Load() {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: f, fs: fs}, nil
}

type fullFile struct {
	vfs.File
	fs *fullFS
}

func (f *fullFile) Write(p []byte) (int, error) {
	if f.fs.full.Load() {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: "seg", Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func TestDiskFullFailsGroupThenRecovers(t *testing.T) {
	for _, syncOn := range []bool{true, false} {
		t.Run(map[bool]string{true: "sync", false: "nosync"}[syncOn], func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			fs := &fullFS{FS: mem}
			tl := newTestLogger(t)
			opts := Options{FS: fs, Dir: "/log", Sync: syncOn, Logger: tl.Logger}
			l, _ := mustOpen(t, opts)
			want := map[string]int{}
			for i := range 50 {
				if err := l.Append(entry(i)); err != nil {
					t.Fatal(err)
				}
				want[string(entry(i))]++
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}

			fs.full.Store(true)
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					err := l.Append(entry(1000+w), entry(2000+w))
					if !errors.Is(err, syscall.ENOSPC) {
						t.Errorf("Append on a full disk = %v, want ENOSPC", err)
					}
				})
			}
			wg.Wait()
			if err := l.Sync(); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Sync on a full disk = %v, want ENOSPC", err)
			}
			if st := l.Stats(); st.WriteErrors == 0 {
				t.Fatal("no write error counted")
			}

			fs.full.Store(false) // space freed
			for i := 100; i < 150; i++ {
				if err := l.Append(entry(i)); err != nil {
					t.Fatalf("Append after space came back: %v", err)
				}
				want[string(entry(i))]++
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			// A crash now: every acknowledged entry is there, none of the
			// failed group's, and its partial bytes are not corruption.
			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			l.Close()
			tl = newTestLogger(t)
			l, r := mustOpen(t, Options{FS: crashed, Dir: "/log", Logger: tl.Logger})
			defer l.Close()
			checkSame(t, r.set(), want)
			if w := tl.Warnings(); len(w) != 0 {
				t.Fatalf("replay after a full disk warned: %q", w)
			}
		})
	}
}

func TestFsyncErrorFailsGroupThenRecovers(t *testing.T) {
	var on atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) && strings.HasSuffix(op.Path, segSuffix) {
			return &os.PathError{Op: "fsync", Path: op.Path, Err: syscall.EIO}
		}
		return nil
	})
	mem := vfs.NewCrashableMem()
	opts := Options{FS: errorfs.Wrap(mem, inj), Dir: "/log", Sync: true, Logger: newTestLogger(t).Logger}
	l, _ := mustOpen(t, opts)
	want := map[string]int{}
	for i := range 20 {
		if err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		want[string(entry(i))]++
	}
	on.Store(true)
	for i := range 3 {
		if err := l.Append(entry(500 + i)); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Append with failing fsync = %v, want EIO", err)
		}
	}
	on.Store(false)
	for i := 20; i < 40; i++ {
		if err := l.Append(entry(i)); err != nil {
			t.Fatalf("Append after fsync recovered: %v", err)
		}
		want[string(entry(i))]++
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	l.Close()
	l, r := mustOpen(t, Options{FS: crashed, Dir: "/log", Logger: newTestLogger(t).Logger})
	defer l.Close()
	checkSame(t, r.set(), want)
}

// TestOpenOnFullDisk: a node restarted on a full disk opens, replays and
// serves; appends fail with ENOSPC until space is freed, then succeed, and
// nothing acknowledged is lost.
func TestOpenOnFullDisk(t *testing.T) {
	mem := vfs.NewCrashableMem()
	fs := &fullFS{FS: mem}
	opts := Options{FS: fs, Dir: "/log", Sync: true, Logger: newTestLogger(t).Logger}
	l, _ := mustOpen(t, opts)
	want := map[string]int{}
	for i := range 30 {
		if err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		want[string(entry(i))]++
	}
	l.Close()

	fs.full.Store(true)
	l, r := mustOpen(t, opts)
	checkSame(t, r.set(), want)
	if err := l.Append(entry(100)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append on a full disk = %v, want ENOSPC", err)
	}
	if err := l.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync on a full disk = %v, want ENOSPC", err)
	}
	fs.full.Store(false)
	if err := l.Sync(); err != nil { // the periodic syncer reopens the write path
		t.Fatalf("Sync after space came back: %v", err)
	}
	for i := 30; i < 40; i++ {
		if err := l.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
		want[string(entry(i))]++
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	l.Close()
	tl := newTestLogger(t)
	l, r = mustOpen(t, Options{FS: crashed, Dir: "/log", Logger: tl.Logger})
	defer l.Close()
	checkSame(t, r.set(), want)
	if w := tl.Warnings(); len(w) != 0 {
		t.Fatalf("replay warned: %q", w)
	}
}
