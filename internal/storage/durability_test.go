package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/testutil"
)

func TestReopenPersists(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		for _, mode := range []SyncMode{SyncPeriodic, SyncAlways} {
			t.Run(mode.String(), func(t *testing.T) {
				dir := t.TempDir()
				clk := clock.NewManual(epoch)
				open := func() *Store {
					s, err := Open(Options{Engine: engine, Dir: dir, Sync: mode, Clock: clk, ExpiryInterval: -1, Logger: testLogger(t)})
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					return s
				}
				s := open()
				for i := range 100 {
					mustApply(t, s, fmt.Sprintf("k%d", i), val(1, "a", fmt.Sprintf("v%d", i)))
				}
				for i := range 10 {
					mustApply(t, s, fmt.Sprintf("k%d", i), del(2, "a"))
				}
				mustApply(t, s, "ttl", withTTL(val(1, "a", "v"), 5000))
				if err := s.Keyspace(PrefixMeta).Set([]byte("node-id"), []byte("n1")); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}

				s = open()
				defer s.Close()
				if n := s.ApproxCount(); n != 101 {
					t.Fatalf("ApproxCount after reopen = %d, want 101", n)
				}
				for i := range 100 {
					r, found := mustGet(t, s, fmt.Sprintf("k%d", i))
					if !found {
						t.Fatalf("k%d lost", i)
					}
					if wantTomb := i < 10; r.Tombstone != wantTomb || (!wantTomb && string(r.Value) != fmt.Sprintf("v%d", i)) {
						t.Fatalf("k%d = %s after reopen", i, fmtRecord(r))
					}
				}
				if v, ok, _ := s.Keyspace(PrefixMeta).Get([]byte("node-id")); !ok || string(v) != "n1" {
					t.Fatalf("meta after reopen = %q %t", v, ok)
				}
				checkIndex(t, s)
				// The deadline index survived too: the TTL still fires.
				clk.Advance(5 * time.Second)
				if n, err := s.ExpireNow(); err != nil || n != 1 {
					t.Fatalf("ExpireNow after reopen = %d, %v", n, err)
				}
			})
		}
	})
}

// TestCrashKeepsSyncedWrites crashes Pebble's in-memory filesystem, dropping
// every write that was not fsynced: SyncAlways writes and periodic writes
// followed by Flush must survive, also in a data directory whose parents the
// store created (their directory entries must be synced too).
func TestCrashKeepsSyncedWrites(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		tests := []struct {
			mode  SyncMode
			flush bool
		}{
			{SyncAlways, false},
			{SyncPeriodic, true},
		}
		for _, tt := range tests {
			t.Run(tt.mode.String(), func(t *testing.T) {
				fs := vfs.NewCrashableMem()
				const dir = "srv/ringkv/db"
				s := openTest(t, Options{Engine: engine, FS: fs, Dir: dir, Sync: tt.mode})
				for i := range 200 {
					mustApply(t, s, fmt.Sprintf("k%d", i), val(1, "a", fmt.Sprintf("v%d", i)))
				}
				if tt.flush {
					if err := s.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})

				s2 := openTest(t, Options{Engine: engine, FS: crashed, Dir: dir})
				for i := range 200 {
					r, found := mustGet(t, s2, fmt.Sprintf("k%d", i))
					if !found || string(r.Value) != fmt.Sprintf("v%d", i) {
						t.Fatalf("k%d after crash = %s (found %t)", i, fmtRecord(r), found)
					}
				}
				if n := s2.ApproxCount(); n != 200 {
					t.Fatalf("ApproxCount after crash = %d", n)
				}
			})
		}
	})
}

// TestPeriodicSyncerSyncs checks that SyncPeriodic makes writes durable on its
// own, without Flush or Close.
func TestPeriodicSyncerSyncs(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		fs := vfs.NewCrashableMem()
		s := openTest(t, Options{Engine: engine, FS: fs, Dir: "db", Sync: SyncPeriodic})
		mustApply(t, s, "k", val(1, "a", "v"))
		testutil.EventuallyEvery(t, 10*time.Second, 20*time.Millisecond, func() error {
			crashed, err := Open(Options{Engine: engine, FS: fs.CrashClone(vfs.CrashCloneCfg{}), Dir: "db", ExpiryInterval: -1, Logger: testLogger(t)})
			if err != nil {
				return err
			}
			defer crashed.Close()
			if _, found, err := crashed.Get([]byte("k")); err != nil || !found {
				return fmt.Errorf("write not synced yet (err %v)", err)
			}
			return nil
		})
	})
}

// crashDirEnv names the directory TestCrashHelper writes to; the helper does
// nothing when it is unset, so it passes in a normal test run.
const crashDirEnv = "RINGKV_STORAGE_CRASH_DIR"

// crashEngineEnv names the engine TestCrashHelper writes with.
const crashEngineEnv = "RINGKV_STORAGE_CRASH_ENGINE"

// TestCrashHelper is the child process of TestCrashAcknowledgedWrites. It
// writes with SyncAlways from several goroutines and prints "ack <key>\n"
// only after Apply returned, until the parent kills it.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	s, err := Open(Options{Engine: os.Getenv(crashEngineEnv), Dir: dir, Sync: SyncAlways, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("child Open: %v", err)
	}
	var outMu sync.Mutex
	var wg sync.WaitGroup
	stopAt := time.Now().Add(time.Minute) // in case the parent dies first
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stopAt); i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.Apply([]byte(key), val(1, "child", "value-"+key)); err != nil {
					t.Errorf("child Apply: %v", err)
					return
				}
				outMu.Lock()
				// One write per line keeps each ack whole on the pipe.
				_, err := os.Stdout.WriteString("ack " + key + "\n")
				outMu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCrashAcknowledgedWrites kills a writing process with SIGKILL and checks
// that every write it acknowledged is on disk after reopening.
func TestCrashAcknowledgedWrites(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashEngineEnv+"="+engine)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}

		acks := make(chan string, 1024)
		readDone := make(chan error, 1)
		go func() {
			defer close(acks)
			r := bufio.NewReader(out)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					// A line cut short by the kill has no newline; it is
					// dropped, which is safe: it was never acknowledged.
					if errors.Is(err, io.EOF) {
						err = nil
					}
					readDone <- err
					return
				}
				if key, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ack "); ok {
					acks <- key
				}
			}
		}()

		var acked []string
		var killTimer <-chan time.Time
		for key := range acks {
			acked = append(acked, key)
			if killTimer == nil {
				// Let it write for a while once it is clearly running.
				killTimer = time.After(500 * time.Millisecond)
			}
			select {
			case <-killTimer:
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatalf("kill child: %v", err)
				}
				killTimer = make(chan time.Time) // never fires again
			default:
			}
		}
		if err := <-readDone; err != nil {
			t.Fatalf("reading child output: %v", err)
		}
		werr := cmd.Wait()
		var exitErr *exec.ExitError
		if !errors.As(werr, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die by SIGKILL: %v\nstderr:\n%s", werr, stderr.String())
		}
		if len(acked) == 0 {
			t.Fatalf("child acknowledged nothing\nstderr:\n%s", stderr.String())
		}

		s := openTest(t, Options{Engine: engine, Dir: dir})
		for _, key := range acked {
			r, found := mustGet(t, s, key)
			if !found || r.Tombstone || string(r.Value) != "value-"+key {
				t.Fatalf("acknowledged key %q after crash = %s (found %t)", key, fmtRecord(r), found)
			}
		}
		if n := s.ApproxCount(); n < int64(len(acked)) {
			t.Fatalf("ApproxCount %d < %d acknowledged", n, len(acked))
		}
		t.Logf("%d acknowledged writes survived SIGKILL", len(acked))
	})
}
