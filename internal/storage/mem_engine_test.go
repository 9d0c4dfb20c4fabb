package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage/applog"
)

// openMem opens a memory-engine store on dir (real disk) with the expiry
// cycle off.
func openMem(tb testing.TB, dir string, opts Options) (*Store, error) {
	tb.Helper()
	opts.Engine, opts.Dir = EngineMemory, dir
	if opts.ExpiryInterval == 0 {
		opts.ExpiryInterval = -1
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(tb)
	}
	return Open(opts)
}

func mustOpenMem(tb testing.TB, dir string, opts Options) *Store {
	tb.Helper()
	s, err := openMem(tb, dir, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

// logFiles lists dir's log files (segments and snapshot), sorted.
func logFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if isLogFile(n.Name()) {
			out = append(out, filepath.Join(dir, n.Name()))
		}
	}
	slices.Sort(out)
	return out
}

// TestMemReplayRedoesExpiryAndGC restarts a store whose records expired and
// whose tombstones passed their GC deadline while it was down: replay must
// redo both from the records and the clock, which the log never recorded.
func TestMemReplayRedoesExpiryAndGC(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewManual(epoch)
	s := mustOpenMem(t, dir, Options{Clock: clk, GCGrace: time.Minute})
	// ttl expires at 50 s and its tombstone is purged at 110 s; deleted's
	// tombstone at 60 s.
	mustApply(t, s, "ttl", withTTL(val(0, "a", "v"), 50_000))
	mustApply(t, s, "deleted", val(0, "a", "v"))
	mustApply(t, s, "deleted", del(1, "a"))
	mustApply(t, s, "kept", val(0, "a", "v"))
	if err := s.Keyspace(PrefixMeta).Set([]byte("gone"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Keyspace(PrefixMeta).Delete([]byte("gone")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(90 * time.Second)
	s = mustOpenMem(t, dir, Options{Clock: clk, GCGrace: time.Minute})
	defer s.Close()
	if r, found := mustGet(t, s, "ttl"); !found || !r.Tombstone {
		t.Fatalf("expired record after replay = %s (found %t), want its tombstone", fmtRecord(r), found)
	}
	if r, found := mustGet(t, s, "deleted"); found {
		t.Fatalf("tombstone past GC came back on replay: %s", fmtRecord(r))
	}
	if _, found := mustGet(t, s, "kept"); !found {
		t.Fatal("kept lost")
	}
	if _, ok, _ := s.Keyspace(PrefixMeta).Get([]byte("gone")); ok {
		t.Fatal("a deleted raw key came back on replay")
	}
	checkIndex(t, s)
}

// TestMemReplayWriteAfterPurge: a tombstone purged by GC, then an older
// write of its key admitted (nothing was stored): the write was
// acknowledged and must survive a restart, though the log still holds the
// newer tombstone.
func TestMemReplayWriteAfterPurge(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewManual(epoch)
	opts := Options{Clock: clk, GCGrace: time.Minute}
	s := mustOpenMem(t, dir, opts)
	mustApply(t, s, "k", del(10_000, "a"))
	clk.Advance(2 * time.Minute)
	if _, err := s.ExpireAll(); err != nil {
		t.Fatal(err)
	}
	if _, found := mustGet(t, s, "k"); found {
		t.Fatal("tombstone not purged")
	}
	if res := mustApply(t, s, "k", val(5_000, "a", "late")); !res.Applied {
		t.Fatal("older write refused after the purge")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenMem(t, dir, opts)
	defer s.Close()
	if r, found := mustGet(t, s, "k"); !found || string(r.Value) != "late" {
		t.Fatalf("after replay k = %s (found %t), want the write acknowledged after the purge", fmtRecord(r), found)
	}
}

// TestMemTornTail cuts the last segment's final frame short, as a crash in
// the middle of a write leaves it: the store opens with every earlier write.
func TestMemTornTail(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenMem(t, dir, Options{Sync: SyncAlways})
	for i := range 50 {
		mustApply(t, s, fmt.Sprintf("k%d", i), val(1, "a", "v"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := logFiles(t, dir)
	last := files[len(files)-1]
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A frame header promising 100 bytes, followed by 10 of them.
	if _, err := f.Write([]byte{100, 0, 0, 0, 1, 2, 3, 4, 'p', 'a', 'r', 't', 'i', 'a', 'l', '.', '.', '.'}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	s = mustOpenMem(t, dir, Options{})
	defer s.Close()
	for i := range 50 {
		if _, found := mustGet(t, s, fmt.Sprintf("k%d", i)); !found {
			t.Fatalf("k%d lost with the torn tail", i)
		}
	}
	if m := s.Metrics(); m.LogTornTailsTruncated != 1 {
		t.Fatalf("torn tails counted: %d", m.LogTornTailsTruncated)
	}
}

// TestMemCorruptLogRefusesToOpen overwrites a segment with random bytes
// (issue 29 case 4): Open must fail with the log's CorruptError naming the
// file, never start empty, and leave the file as it was. With Salvage it
// opens, keeps what precedes the damage and reports the file set aside.
func TestMemCorruptLogRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenMem(t, dir, Options{})
	for i := range 100 {
		mustApply(t, s, fmt.Sprintf("k%d", i), val(1, "a", "v"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A later segment with writes of its own, so that the damaged one is
	// not the last (a torn tail) and its successor's data must survive
	// salvage.
	s = mustOpenMem(t, dir, Options{})
	mustApply(t, s, "later", val(2, "a", "v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := logFiles(t, dir)
	victim := files[0]
	info, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, info.Size())
	r := rand.New(rand.NewPCG(1, 2))
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(victim, junk, 0o644); err != nil {
		t.Fatal(err)
	}

	_, err = openMem(t, dir, Options{})
	var ce *applog.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open of a corrupt log: %v, want an applog.CorruptError", err)
	}
	if !strings.Contains(err.Error(), filepath.Base(victim)) {
		t.Fatalf("error does not name the file %s: %v", victim, err)
	}
	if got, _ := os.ReadFile(victim); string(got) != string(junk) {
		t.Fatal("the corrupt file was changed by a failed Open")
	}

	s = mustOpenMem(t, dir, Options{Salvage: true})
	defer s.Close()
	rep := s.Salvaged()
	if len(rep) != 1 || rep[0].Path != victim {
		t.Fatalf("Salvaged() = %+v, want the one file %s", rep, victim)
	}
	if _, err := os.Stat(rep[0].MovedTo); err != nil {
		t.Fatalf("the set-aside file %s: %v", rep[0].MovedTo, err)
	}
	if _, found := mustGet(t, s, "later"); !found {
		t.Fatal("salvage lost the later segment's write")
	}
	mustApply(t, s, "after-salvage", val(3, "a", "v"))
}

// TestMemDiskFull fails the log's writes with ENOSPC: writes fail with an
// error that says so, nothing of them becomes visible, reads keep working,
// and once space is back writes succeed and everything acknowledged
// replays.
func TestMemDiskFull(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncPeriodic} {
		t.Run(mode.String(), func(t *testing.T) {
			mem := vfs.NewMem()
			var full atomic.Bool
			fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if full.Load() && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt) {
					return syscall.ENOSPC
				}
				return nil
			}))
			s := openTest(t, Options{Engine: EngineMemory, FS: fs, Dir: "db", Sync: mode})
			mustApply(t, s, "before", val(1, "a", "v"))

			full.Store(true)
			_, err := s.Apply([]byte("during"), val(2, "a", "v"))
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Apply on a full disk: %v, want ENOSPC", err)
			}
			ws := []Write{{Key: []byte("b1"), Rec: val(2, "a", "v")}, {Key: []byte("b2"), Rec: val(2, "a", "v")}}
			s.ApplyBatch(ws)
			for _, w := range ws {
				if !errors.Is(w.Err, syscall.ENOSPC) {
					t.Fatalf("ApplyBatch on a full disk: %v, want ENOSPC", w.Err)
				}
			}
			if _, found := mustGet(t, s, "during"); found {
				t.Fatal("a failed write became visible")
			}
			if _, found := mustGet(t, s, "before"); !found {
				t.Fatal("reads stopped on a full disk")
			}
			if m := s.Metrics(); m.LogWriteErrors == 0 {
				t.Fatal("log write errors not counted")
			}

			full.Store(false)
			mustApply(t, s, "after", val(3, "a", "v"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openTest(t, Options{Engine: EngineMemory, FS: mem, Dir: "db"})
			for _, k := range []string{"before", "after"} {
				if _, found := mustGet(t, s2, k); !found {
					t.Fatalf("%s lost after the disk-full episode", k)
				}
			}
		})
	}
}

// TestMemCompactionUnderWrites compacts the log again and again while
// writers overwrite and delete keys and write raw entries: the log must
// shrink, and a reopen must hold exactly the last acknowledged state.
func TestMemCompactionUnderWrites(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewManual(epoch)
	s := mustOpenMem(t, dir, Options{Clock: clk, LogCompactBytesPerSec: -1})
	me := s.eng.(*memEngine)
	const writers, keys, rounds = 4, 200, 60
	var wg sync.WaitGroup
	final := make([]map[string]record.Record, writers)
	for w := range writers {
		final[w] = map[string]record.Record{}
		wg.Go(func() {
			for i := range rounds * keys {
				k := fmt.Sprintf("w%d-k%d", w, i%keys)
				var r record.Record
				if i%7 == 0 {
					r = del(int64(i+1), "a")
				} else {
					r = val(int64(i+1), "a", strings.Repeat("x", 50+i%50))
				}
				if _, err := s.Apply([]byte(k), r); err != nil {
					t.Error(err)
					return
				}
				final[w][k] = r
				if i%100 == 0 {
					if err := s.Keyspace(PrefixHints).Set(fmt.Appendf(nil, "w%d", w), fmt.Appendf(nil, "%d", i)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	compactions := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if err := me.compact(nil); err != nil {
			t.Fatalf("compact: %v", err)
		}
		compactions++
	}
	if err := me.compact(nil); err != nil {
		t.Fatal(err)
	}
	if size, appended := me.wal.Size(), me.wal.Stats().Bytes; size*2 > appended {
		t.Fatalf("log holds %d bytes after compaction, of %d appended", size, appended)
	}
	if m := s.Metrics(); m.LogCompactions != uint64(compactions+1) || m.LogCompactionBytes == 0 {
		t.Fatalf("metrics: %d compactions, %d bytes; ran %d", m.LogCompactions, m.LogCompactionBytes, compactions+1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpenMem(t, dir, Options{Clock: clk})
	defer s.Close()
	for w := range writers {
		for k, want := range final[w] {
			got, found := mustGet(t, s, k)
			if !found || !sameRecord(got, want) {
				t.Fatalf("%s after compactions and reopen = %s (found %t), want %s", k, fmtRecord(got), found, fmtRecord(want))
			}
		}
		v, ok, err := s.Keyspace(PrefixHints).Get(fmt.Appendf(nil, "w%d", w))
		if err != nil || !ok || string(v) != fmt.Sprint((rounds*keys-1)/100*100) {
			t.Fatalf("raw entry of w%d = %q %t %v", w, v, ok, err)
		}
	}
	t.Logf("%d compactions under writes", compactions)
}

// TestMaxMemory fills a store past MaxMemory: new data is refused with
// ErrOutOfMemory, deletes and reads keep working.
func TestMaxMemory(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s := openTest(t, Options{Engine: engine, MaxMemory: 4 << 20})
		var refused error
		var n int
		for n = 0; n < 1_000_000 && refused == nil; n++ {
			_, refused = s.Apply(fmt.Appendf(nil, "k%d", n), val(1, "a", strings.Repeat("v", 1000)))
		}
		if !errors.Is(refused, ErrOutOfMemory) {
			t.Fatalf("writes past MaxMemory: %v after %d writes, want ErrOutOfMemory", refused, n)
		}
		ws := []Write{{Key: []byte("new"), Rec: val(1, "a", "v")}, {Key: []byte("k0"), Rec: del(2, "a")}}
		s.ApplyBatch(ws)
		if !errors.Is(ws[0].Err, ErrOutOfMemory) || ws[1].Err != nil || !ws[1].Result.Applied {
			t.Fatalf("batch past MaxMemory: %v, %v", ws[0].Err, ws[1].Err)
		}
		if res, err := s.Apply([]byte("k1"), del(2, "a")); err != nil || !res.Applied {
			t.Fatalf("a delete past MaxMemory: %v", err)
		}
		if _, found := mustGet(t, s, "k2"); !found {
			t.Fatal("reads stopped past MaxMemory")
		}
		if m := s.Metrics(); m.OOMRefused < 2 || m.MemoryBytes == 0 || m.MaxMemoryBytes != 4<<20 {
			t.Fatalf("metrics: %+v", m)
		}
	})
}

// TestDataDirLocked opens a second store on a directory in use: it must
// fail naming the lock file and the holder's pid (issue 29 case 6).
func TestDataDirLocked(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		dir := t.TempDir()
		s := openTest(t, Options{Engine: engine, Dir: dir})
		mustApply(t, s, "k", val(1, "a", "v"))
		_, err := Open(Options{Engine: engine, Dir: dir, Logger: testLogger(t)})
		if err == nil {
			t.Fatal("a second Open of a directory in use succeeded")
		}
		for _, want := range []string{filepath.Join(dir, lockFileName), fmt.Sprintf("pid %d", os.Getpid())} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := openTest(t, Options{Engine: engine, Dir: dir})
		if _, found := mustGet(t, s2, "k"); !found {
			t.Fatal("k lost")
		}
	})
}

// TestEngineMismatch opens a directory with the other engine than the one
// that wrote it: it must refuse, not serve an empty store.
func TestEngineMismatch(t *testing.T) {
	for _, tt := range []struct{ wrote, opens string }{{EngineMemory, EnginePebble}, {EnginePebble, EngineMemory}} {
		t.Run(tt.wrote, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, Options{Engine: tt.wrote, Dir: dir})
			mustApply(t, s, "k", val(1, "a", "v"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			_, err := Open(Options{Engine: tt.opens, Dir: dir, Logger: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), "--engine "+tt.wrote) {
				t.Fatalf("Open with %s of %s's directory: %v", tt.opens, tt.wrote, err)
			}
		})
	}
}

// TestInMemoryWithoutDir: --in-memory needs no data directory (issue 29
// case 6), and a named one need not exist.
func TestInMemoryWithoutDir(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		for _, dir := range []string{"", "./ringkv-data"} {
			s, err := Open(Options{Engine: engine, InMemory: true, Dir: dir, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("Open in memory with Dir %q: %v", dir, err)
			}
			mustApply(t, s, "k", val(1, "a", "v"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat("ringkv-data"); err == nil {
			t.Fatal("an in-memory store created a directory on disk")
		}
	})
}
