package applog

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestRoundTrip(t *testing.T) {
	for _, syncOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%t", syncOn), func(t *testing.T) {
			fs := vfs.NewMem()
			opts := Options{FS: fs, Dir: "/log", Sync: syncOn, SegmentSize: 4096, Logger: newTestLogger(t).Logger}
			l, r := mustOpen(t, opts)
			if len(r.entries) != 0 {
				t.Fatalf("fresh log replayed %d entries", len(r.entries))
			}
			want := map[string]int{}
			for i := range 500 {
				e := entry(i)
				if i%10 == 0 {
					if err := l.Append(e, entry(i+100000)); err != nil {
						t.Fatal(err)
					}
					want[string(entry(i+100000))]++
				} else if err := l.Append(e); err != nil {
					t.Fatal(err)
				}
				want[string(e)]++
			}
			if err := l.Append([]byte{}); err != nil { // an empty entry is an entry
				t.Fatal(err)
			}
			want[""]++
			st := l.Stats()
			if st.Rotations == 0 || st.Segments < 2 {
				t.Fatalf("4 KiB segments never rotated: %+v", st)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Close = %v, want ErrClosed", err)
			}
			if err := l.Append(entry(1)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append after Close = %v, want ErrClosed", err)
			}
			for range 2 { // a reopen replays the same; its new empty segment changes nothing
				l, r = mustOpen(t, opts)
				checkSame(t, r.set(), want)
				if l.Size() <= 0 {
					t.Fatalf("Size = %d", l.Size())
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func checkSame(t testing.TB, got, want map[string]int) {
	t.Helper()
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("entry %.20q replayed %d times, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			t.Fatalf("entry %.20q replayed %d times, never appended", k, n)
		}
	}
}

func TestConcurrentAppendersShareWrites(t *testing.T) {
	for _, syncOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%t", syncOn), func(t *testing.T) {
			fs := &countingFS{FS: vfs.NewMem(), delay: 100 * time.Microsecond}
			opts := Options{FS: fs, Dir: "/log", Sync: syncOn, SegmentSize: 1 << 20, Logger: newTestLogger(t).Logger}
			l, _ := mustOpen(t, opts)
			const writers, per = 32, 200
			w0, s0 := fs.writes.Load(), fs.syncs.Load()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range per {
						if err := l.Append(entry(w*per + i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			writes, syncs := fs.writes.Load()-w0, fs.syncs.Load()-s0
			st := l.Stats()
			t.Logf("%d appends: %d writes, %d fsyncs, %d groups, %d rotations", writers*per, writes, syncs, st.Groups, st.Rotations)
			if st.Appends != writers*per || st.Entries != writers*per {
				t.Fatalf("stats count %d appends, %d entries, want %d", st.Appends, st.Entries, writers*per)
			}
			// Each rotation adds a header write and two fsyncs.
			if groupWrites := writes - st.Rotations; groupWrites > writers*per/2 || groupWrites != st.Groups {
				t.Fatalf("%d group writes for %d appends (groups %d): no group commit", groupWrites, writers*per, st.Groups)
			}
			if syncOn && syncs-2*st.Rotations > st.Groups {
				t.Fatalf("%d fsyncs for %d groups: more than one per group", syncs, st.Groups)
			}
			if !syncOn && syncs != 2*st.Rotations {
				t.Fatalf("Sync:false fsynced %d times outside rotation", syncs-2*st.Rotations)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{}
			for i := range writers * per {
				want[string(entry(i))]++
			}
			l, r := mustOpen(t, opts)
			defer l.Close()
			checkSame(t, r.set(), want)
		})
	}
}

func TestReplayErrorStopsOpen(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{FS: fs, Dir: "/log", Logger: newTestLogger(t).Logger}
	l, _ := mustOpen(t, opts)
	if err := l.Append(entry(1)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	boom := errors.New("engine refused")
	if _, err := Open(opts, func([]byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Open = %v, want the replay error", err)
	}
	// The lock was released: a later Open works.
	l, r := mustOpen(t, opts)
	defer l.Close()
	if len(r.entries) != 1 {
		t.Fatalf("replayed %d, want 1", len(r.entries))
	}
}

func TestSecondOpenRefused(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{FS: fs, Dir: "/log", Logger: newTestLogger(t).Logger}
	l, _ := mustOpen(t, opts)
	defer l.Close()
	if _, err := Open(opts, func([]byte) error { return nil }); err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
}
