package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"

	"github.com/ringkv/ringkv/internal/storage/applog"
)

func walFileBytes(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func walWriteFile(t *testing.T, fs vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Clone(b)); err != nil { // Write may scribble on its argument
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckPebbleWAL builds a Pebble store whose data is only in its WAL (a
// crash before any flush), damages the WAL, and expects a CorruptError for
// overwritten bytes and nothing for torn tails.
func TestCheckPebbleWAL(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := openTest(t, Options{Engine: EnginePebble, FS: mem, Dir: "db", Sync: SyncAlways})
	const keys = 300
	for i := range keys {
		mustApply(t, s, fmt.Sprintf("k%d", i), val(1, "a", strings.Repeat("v", 200)))
	}
	base := mem.CrashClone(vfs.CrashCloneCfg{})
	names, err := base.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var walPath string
	var walSize int
	for _, n := range names {
		if _, _, ok := wal.ParseLogFilename(n); ok {
			if b := walFileBytes(t, base, "db/"+n); len(b) > walSize {
				walPath, walSize = "db/"+n, len(b)
			}
		}
	}
	if walSize < 64<<10 {
		t.Fatalf("largest WAL %q is %d bytes, want one spanning blocks", walPath, walSize)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	cases := []struct {
		name    string
		damage  func(b []byte) ([]byte, int)
		corrupt bool
	}{
		{"clean", func(b []byte) ([]byte, int) { return b, -1 }, false},
		{"whole file random", func(b []byte) ([]byte, int) { return random(len(b)), 0 }, true},
		{"middle random", func(b []byte) ([]byte, int) { at := len(b) / 3; copy(b[at:], random(1024)); return b, at }, true},
		{"tail random", func(b []byte) ([]byte, int) { at := len(b) - 2048; copy(b[at:], random(2048)); return b, at }, true},
		{"torn: cut mid-record", func(b []byte) ([]byte, int) { return b[:len(b)-100], -1 }, false},
		{"torn: unwritten blocks", func(b []byte) ([]byte, int) { clear(b[len(b)-1500:]); return b, -1 }, false},
		{"torn: preallocated zeros", func(b []byte) ([]byte, int) { return append(b, make([]byte, 8192)...), -1 }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := base.CrashClone(vfs.CrashCloneCfg{})
			b, at := c.damage(walFileBytes(t, fs, walPath))
			walWriteFile(t, fs, walPath, b)
			err := checkPebbleWAL(fs, "db")
			var ce *applog.CorruptError
			if !c.corrupt {
				if err != nil {
					t.Fatalf("checkPebbleWAL = %v, want nil", err)
				}
				s2 := openTest(t, Options{Engine: EnginePebble, FS: fs, Dir: "db"})
				if n := s2.ApproxCount(); c.name == "clean" && n != keys {
					t.Fatalf("clean WAL replayed %d keys, want %d", n, keys)
				}
				return
			}
			if !errors.As(err, &ce) {
				t.Fatalf("checkPebbleWAL = %v, want *applog.CorruptError", err)
			}
			if ce.Path != walPath || ce.Offset > int64(at) || !strings.Contains(err.Error(), walPath) {
				t.Fatalf("CorruptError %v: want file %s, offset <= %d", err, walPath, at)
			}
			// The engine runs the check: Open refuses the store.
			if s, err := Open(Options{Engine: EnginePebble, FS: fs, Dir: "db", Logger: testLogger(t)}); !errors.As(err, &ce) {
				if s != nil {
					_ = s.Close()
				}
				t.Fatalf("Open of a store with a corrupt WAL = %v, want *applog.CorruptError", err)
			}
		})
	}
	if err := checkPebbleWAL(vfs.NewMem(), "absent"); err != nil {
		t.Fatalf("a directory that does not exist yet: %v", err)
	}
}

// TestCheckPebbleWALQuietOnCrashes runs a Pebble store through memtable
// flushes (so WALs rotate and are recycled), restarts and crashes that keep
// none, half or all of the unsynced blocks: none of that is corruption, and
// the check must not refuse any of it.
func TestCheckPebbleWALQuietOnCrashes(t *testing.T) {
	for _, pct := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", pct), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(pct), 9))
			fs := vfs.NewCrashableMem()
			for round := range 4 {
				s := openTest(t, Options{Engine: EnginePebble, FS: fs, Dir: "db", Sync: SyncPeriodic, MemTableSize: 1 << 20})
				for i := range 3000 {
					mustApply(t, s, fmt.Sprintf("k%d-%d", round, i), val(int64(round+1), "a", strings.Repeat("v", 300)))
				}
				cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct}
				if pct > 0 {
					cfg.RNG = rng
				}
				crashed := fs.CrashClone(cfg)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := checkPebbleWAL(crashed, "db"); err != nil {
					t.Fatalf("round %d: checkPebbleWAL after a crash = %v", round, err)
				}
				if err := checkPebbleWAL(fs, "db"); err != nil {
					t.Fatalf("round %d: checkPebbleWAL after a clean close = %v", round, err)
				}
				fs = crashed
			}
		})
	}
}

// FuzzCheckPebbleWAL: any bytes in a WAL file give nil, a CorruptError or
// an I/O error, never a panic.
func FuzzCheckPebbleWAL(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 600))
	f.Add(bytes.Repeat([]byte{0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMem()
		if err := fs.MkdirAll("db", 0o755); err != nil {
			t.Fatal(err)
		}
		walWriteFile(t, fs, "db/000007.log", data)
		err := checkPebbleWAL(fs, "db")
		var ce *applog.CorruptError
		if err != nil && (!errors.As(err, &ce) || ce.Path != "db/000007.log") {
			t.Fatalf("checkPebbleWAL = %v", err)
		}
	})
}
