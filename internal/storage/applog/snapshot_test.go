package applog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestSnapshotReplacesSegments(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{FS: fs, Dir: "/log", SegmentSize: 4096, Logger: newTestLogger(t).Logger}
	l, _ := mustOpen(t, opts)
	// Every key written 5 times: the live data is a fifth of the log.
	live := map[string][]byte{}
	for round := range 5 {
		for k := range 100 {
			e := []byte(strings.Repeat("v", 40) + itoa(k) + "-" + itoa(round))
			live[itoa(k)] = e
			if err := l.Append(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Open(opts, nil); err == nil {
		t.Fatal("second Open while open succeeded")
	}
	active := l.Stats().Segments
	if err := l.WriteSnapshot(uint64(active), 0, func(SnapshotWriter) error { return nil }); err == nil {
		t.Fatal("a snapshot over the active segment was accepted")
	}
	before := l.Size()
	upTo, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	err = l.WriteSnapshot(upTo, 0, func(w SnapshotWriter) error {
		// Appends go on while a snapshot is written.
		for i := range 20 {
			if err := l.Append(entry(i)); err != nil {
				return err
			}
			want[string(entry(i))]++
		}
		for _, e := range live {
			if err := w.Add(e); err != nil {
				return err
			}
			want[string(e)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Snapshots != 1 || st.SnapshotSize <= 0 {
		t.Fatalf("stats after snapshot: %+v", st)
	}
	if after := l.Size(); after >= before/2 {
		t.Fatalf("Size %d -> %d: the snapshot did not shrink the log", before, after)
	}
	if segs := logFiles(t, fs, "/log", kindSegment); len(segs) != 1 {
		t.Fatalf("segments after snapshot: %v", segs)
	}
	// A failing fill leaves no file behind and the log as it was.
	boom := errors.New("fill failed")
	upTo2, _ := l.Rotate()
	if err := l.WriteSnapshot(upTo2, 0, func(SnapshotWriter) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("WriteSnapshot = %v, want the fill's error", err)
	}
	size := l.Size()
	l.Close()
	if got := logFiles(t, fs, "/log", kindSnapshot); len(got) != 1 {
		t.Fatalf("snapshots after a failed one: %v", got)
	}
	l, r := mustOpen(t, opts)
	defer l.Close()
	checkSame(t, r.set(), want)
	if l.Size() < size {
		t.Fatalf("Size after reopen %d < %d before", l.Size(), size)
	}
}

func TestSnapshotThrottle(t *testing.T) {
	l, _ := mustOpen(t, Options{FS: vfs.NewMem(), Dir: "/log", Logger: newTestLogger(t).Logger})
	defer l.Close()
	now := time.Unix(1000, 0)
	var slept time.Duration
	l.clock = clock{now: func() time.Time { return now }, sleep: func(d time.Duration) { slept += d; now = now.Add(d) }}
	upTo, _ := l.Rotate()
	const rate = 1 << 20 // 1 MiB/s
	e := make([]byte, 1000)
	var progress []int64
	err := l.WriteSnapshot(upTo, rate, func(w SnapshotWriter) error {
		for i := range 4096 { // ~4 MiB
			if err := w.Add(e); err != nil {
				return err
			}
			if i%1024 == 1023 {
				progress = append(progress, l.Stats().SnapshotWriting)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] <= progress[i-1] {
			t.Fatalf("SnapshotWriting did not grow while writing: %v", progress)
		}
	}
	if w := l.Stats().SnapshotWriting; w != 0 {
		t.Fatalf("SnapshotWriting = %d after the snapshot, want 0", w)
	}
	size := l.Stats().SnapshotSize
	want := time.Duration(float64(size) / rate * float64(time.Second))
	if slept < want-time.Millisecond || slept > want+time.Millisecond {
		t.Fatalf("throttle slept %v for %d bytes at %d B/s, want %v", slept, size, rate, want)
	}
}
