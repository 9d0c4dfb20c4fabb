package applog

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SnapshotWriter receives the live entries of a snapshot. It is used by one
// goroutine, only during WriteSnapshot's fill.
type SnapshotWriter interface {
	Add(entry []byte) error
}

type snapWriter struct {
	f       vfs.File
	buf     []byte
	entries uint64
	written int64
	rate    int64 // bytes per second, 0 = unlimited
	start   time.Time
	clock   clock
	stats   *stats
}

const snapFlushSize = 256 << 10

// clock is the snapshot throttle's time, a seam for tests.
type clock struct {
	now   func() time.Time
	sleep func(time.Duration)
}

var realClock = clock{now: time.Now, sleep: time.Sleep}

func (w *snapWriter) Add(entry []byte) error {
	if len(entry) > MaxEntrySize {
		return fmt.Errorf("applog: snapshot entry of %d bytes exceeds MaxEntrySize", len(entry))
	}
	w.buf = appendFrame(w.buf, entry)
	w.entries++
	if len(w.buf) >= snapFlushSize {
		return w.flush()
	}
	return nil
}

// flush writes the buffer, then sleeps as long as the rate limit asks: a
// compaction shares the disk with the appends that clients wait for.
func (w *snapWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return err
	}
	w.written += int64(len(w.buf))
	w.stats.snapshotWriting.Store(w.written)
	w.buf = w.buf[:0]
	if w.rate > 0 {
		due := time.Duration(float64(w.written) / float64(w.rate) * float64(time.Second))
		if ahead := due - w.clock.now().Sub(w.start); ahead > 0 {
			w.clock.sleep(ahead)
		}
	}
	return nil
}

// WriteSnapshot writes a snapshot that replaces every segment <= upTo: fill
// adds the live entries through w; the file is fsynced and renamed into
// place, and only then are the covered segments and the previous snapshot
// deleted. A crash at any point leaves a replayable log: before the rename
// the old files are all there; after it the new snapshot is complete.
//
// upTo must be a sealed segment (the number Rotate returned). fill must add
// every entry that is live in segments <= upTo: the engine guarantees it by
// applying a record to memory before its Append. Appends go on meanwhile.
// bytesPerSec > 0 limits the snapshot's write rate.
func (l *Log) WriteSnapshot(upTo uint64, bytesPerSec int64, fill func(w SnapshotWriter) error) error {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	l.wmu.Lock()
	closed, active := l.wmu.closed, l.wmu.seg.num
	l.wmu.Unlock()
	if closed {
		return ErrClosed
	}
	if upTo >= active {
		return fmt.Errorf("applog: snapshot up to segment %d, but segment %d is still active (Rotate first)", upTo, active)
	}
	final := l.path(snapName(upTo))
	tmp := final + tmpSuffix
	f, err := l.opts.FS.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("applog: create %s: %w", tmp, err)
	}
	w := &snapWriter{f: f, rate: bytesPerSec, start: l.clock.now(), clock: l.clock, stats: &l.stats}
	defer l.stats.snapshotWriting.Store(0)
	w.buf = header{kind: kindSnapshot, num: upTo}.encode(make([]byte, 0, snapFlushSize+4096))
	err = fill(w)
	if err == nil {
		w.buf = encodeFooter(w.buf, w.entries)
		err = w.flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.opts.FS.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(l.opts.FS, l.opts.Dir)
	}
	if err != nil {
		_ = l.opts.FS.Remove(tmp)
		return fmt.Errorf("applog: snapshot %s: %w", final, err)
	}
	l.stats.snapshots.Add(1)

	// The snapshot is durable: what it covers can go.
	l.wmu.Lock()
	defer l.wmu.Unlock()
	var freed int64
	keep := l.wmu.segs[:0]
	var rmErr error
	for _, n := range l.wmu.segs {
		if n > upTo {
			keep = append(keep, n)
			continue
		}
		sz := l.fileSize(segName(n))
		if err := l.opts.FS.Remove(l.path(segName(n))); err != nil && rmErr == nil {
			// Left behind, it is removed on the next open.
			rmErr = fmt.Errorf("applog: remove %s after snapshot: %w", segName(n), err)
		}
		freed += sz
	}
	l.wmu.segs = keep
	names, _ := l.opts.FS.List(l.opts.Dir)
	for _, name := range names {
		if kind, n, ok := parseName(name); ok && kind == kindSnapshot && n != upTo {
			if err := l.opts.FS.Remove(l.path(name)); err != nil && rmErr == nil {
				rmErr = fmt.Errorf("applog: remove old snapshot %s: %w", name, err)
			}
		}
	}
	freed += l.wmu.snapSize
	size := w.written
	l.wmu.snapSize = size
	l.stats.snapshotSize.Store(size)
	l.stats.segments.Store(int64(len(l.wmu.segs)))
	l.size.Add(size - freed)
	if err := syncDir(l.opts.FS, l.opts.Dir); err != nil && rmErr == nil {
		rmErr = err
	}
	return rmErr
}
