package applog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// DefaultSegmentSize is the size past which the log starts a new segment:
// large enough that rotation (two fsyncs) is rare, small enough that a torn
// tail scan and a compaction's deletions work on bounded files.
const DefaultSegmentSize = 64 << 20

// ErrClosed is returned by every call on a closed Log.
var ErrClosed = errors.New("applog: log is closed")

// Options configures a Log.
type Options struct {
	// FS is the filesystem; vfs.Default for the real disk.
	FS vfs.FS
	// Dir holds the log's files (created if missing).
	Dir string
	// SegmentSize is the size at which a segment is sealed; default
	// DefaultSegmentSize.
	SegmentSize int64
	// Sync makes Append return only after the group's fsync (--sync always).
	// Without it Append returns after write(2) and the owner calls Sync
	// periodically (--sync periodic).
	Sync bool
	// Salvage is the operator's explicit choice to start from damaged files:
	// replay keeps the entries before the damage, sets the file aside and
	// goes on. Without it damage is a *CorruptError and nothing changes.
	Salvage bool
	// Logger receives the log's warnings; nil discards them.
	Logger *slog.Logger
}

// Stats is a snapshot of the log's counters, for metrics.
type Stats struct {
	Appends      int64 // Append calls that returned nil
	Entries      int64 // entries written
	Groups       int64 // group commits (one write each)
	Bytes        int64 // bytes written to segments
	Writes       int64 // write(2) calls on segments
	Fsyncs       int64 // fsyncs of segments (group, Sync, rotation)
	WriteErrors  int64 // failed writes and fsyncs
	TornTails    int64 // torn tails dropped on open
	Salvaged     int64 // files set aside by salvage
	Replayed     int64 // entries replayed on open
	Segments     int64 // segment files now
	Rotations    int64 // segments sealed
	Snapshots    int64 // snapshots written
	SnapshotSize int64 // bytes of the current snapshot
	// SnapshotWriting is the bytes written so far by the snapshot in
	// progress, 0 when none runs: compaction's progress.
	SnapshotWriting int64
}

type stats struct {
	appends, entries, groups, bytes, writes, fsyncs, writeErrors atomic.Int64
	tornTails, salvaged, replayed, segments, rotations           atomic.Int64
	snapshots, snapshotSize, snapshotWriting                     atomic.Int64
}

// waiter is one Append call waiting for its group; pooled so that Append
// does not allocate in steady state.
type waiter struct{ ch chan result }

type result struct {
	err  error
	lead bool // the waiter becomes the leader of the next group
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan result, 1)} }}

// batch is a group being filled or written.
type batch struct {
	buf     []byte
	waiters []*waiter
	entries int
}

// segment is the file appends go to.
type segment struct {
	num    uint64
	f      vfs.File
	size   int64 // bytes written and acknowledged; the next write's offset
	synced int64
	refs   int  // Sync calls using f outside wmu
	sealed bool // rotated away: close when refs drops to 0
}

// Log is an append-only log. All methods are safe for concurrent use.
type Log struct {
	opts Options
	log  *slog.Logger
	lock io.Closer

	// mu guards the group being filled and who writes it.
	mu struct {
		sync.Mutex
		pend, spare *batch
		leading     bool // a leader owns the write path
		closed      bool
		idle        sync.Cond
	}

	// wmu guards the active segment and the files. Lock order: snapMu, then
	// wmu; mu is never held with wmu (a leader drops mu before it writes).
	wmu struct {
		sync.Mutex
		seg      *segment
		broken   error // the last write or fsync failed: rotate before writing
		segs     []uint64
		snapSize int64
		closed   bool
	}
	snapMu sync.Mutex // one WriteSnapshot at a time
	clock  clock

	size           atomic.Int64 // bytes of snapshot + segments
	stats          stats
	salvaged       []SalvageReport // set by Open only
	pendingSalvage []SalvageReport // found by recover, set aside by finishSalvage
	replayed       int64           // entries replayed from the current file (Open only)
}

// Open replays the log in opts.Dir through replay, then opens it for
// appends. The entry slice handed to replay is valid only during the call.
// Damage other than a torn tail returns a *CorruptError (see the package
// doc) and leaves every file as it was.
func Open(opts Options, replay func(entry []byte) error) (*Log, error) {
	if opts.FS == nil {
		return nil, errors.New("applog: Options.FS is nil")
	}
	if replay == nil {
		replay = func([]byte) error { return nil }
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{opts: opts, log: opts.Logger, clock: realClock}
	l.mu.idle.L = &l.mu.Mutex
	l.mu.pend, l.mu.spare = &batch{}, &batch{}
	if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("applog: create %s: %w", opts.Dir, err)
	}
	// A directory created now is durable only once its parent is synced;
	// without it a crash can lose the whole log.
	if err := syncDir(opts.FS, opts.FS.PathDir(opts.Dir)); err != nil {
		return nil, err
	}
	lock, err := opts.FS.Lock(l.path(lockName))
	if err != nil {
		return nil, fmt.Errorf("applog: lock %s (is another ringkv process using this directory?): %w", l.path(lockName), err)
	}
	l.lock = lock
	st, err := l.recover(replay)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.wmu.segs = st.segs
	l.size.Store(st.size)
	if st.hasSnap {
		l.wmu.snapSize = l.fileSize(snapName(st.snap))
		l.stats.snapshotSize.Store(l.wmu.snapSize)
	}
	if err := l.startSegment(st); err != nil {
		// A full disk must not keep the node from starting and serving
		// reads: appends fail until a write path opens (Sync and Append
		// retry the rotation).
		l.stats.writeErrors.Add(1)
		l.markBrokenLocked(err)
	}
	if err := l.finishSalvage(); err != nil {
		if l.wmu.seg.f != nil {
			l.wmu.seg.f.Close()
		}
		lock.Close()
		return nil, err
	}
	l.log.Info("log opened", "dir", opts.Dir, "segments", len(l.wmu.segs), "snapshot", st.hasSnap,
		"entries_replayed", l.stats.replayed.Load(), "bytes", l.size.Load())
	return l, nil
}

// startSegment opens the write path after replay. It never appends to a
// file an earlier process wrote (its tail may be torn, and vfs has no
// truncate): it fsyncs the last segment, whose unsynced tail a process
// killed under Sync false may have left in the page cache, and starts the
// next one recording where the last one validly ends. On failure wmu.seg is
// a stand-in for the last segment, so that a later rotation starts there.
func (l *Log) startSegment(st *dirState) error {
	prev := &segment{num: st.nextSeg - 1, size: int64(st.prevLen), sealed: true}
	l.wmu.seg = prev
	if st.prevLen > 0 {
		f, err := l.opts.FS.Open(l.path(segName(prev.num)))
		if err != nil {
			return fmt.Errorf("applog: open %s: %w", l.path(segName(prev.num)), err)
		}
		prev.f = f
		if err := f.Sync(); err != nil {
			return fmt.Errorf("applog: fsync %s: %w", l.path(segName(prev.num)), err)
		}
		l.stats.fsyncs.Add(1)
		prev.synced = prev.size
	}
	if err := l.createSegmentLocked(st.nextSeg, st.prevLen); err != nil {
		return err
	}
	if prev.f != nil {
		prev.f.Close()
	}
	return nil
}

// createSegmentLocked creates segment num, durable (header and directory
// entry fsynced) before any entry goes to it. wmu is held, or Open runs.
func (l *Log) createSegmentLocked(num, prevLen uint64) error {
	path := l.path(segName(num))
	f, err := l.opts.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("applog: create %s: %w", path, err)
	}
	hdr := header{kind: kindSegment, num: num, prevLen: prevLen}.encode(nil)
	if _, err = f.Write(hdr); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(l.opts.FS, l.opts.Dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("applog: create %s: %w", path, err)
	}
	l.wmu.seg = &segment{num: num, f: f, size: headerSize, synced: headerSize}
	l.wmu.segs = append(l.wmu.segs, num)
	l.size.Add(headerSize)
	l.stats.segments.Store(int64(len(l.wmu.segs)))
	return nil
}

// rotateLocked seals the active segment and starts the next. The old one is
// fsynced first, so that the length the new header records is on disk.
func (l *Log) rotateLocked() error {
	old := l.wmu.seg
	if old.f != nil && (old.synced < old.size || l.wmu.broken != nil) {
		if err := old.f.Sync(); err != nil {
			l.stats.writeErrors.Add(1)
			return fmt.Errorf("applog: fsync %s: %w", l.path(segName(old.num)), err)
		}
		l.stats.fsyncs.Add(1)
		old.synced = old.size
	}
	if err := l.createSegmentLocked(old.num+1, uint64(old.size)); err != nil {
		// Create may have left a partial file; the next try replaces it.
		l.wmu.seg = old
		return err
	}
	l.wmu.broken = nil
	old.sealed = true
	if old.refs == 0 && old.f != nil {
		old.f.Close()
	}
	l.stats.rotations.Add(1)
	return nil
}

// Append writes entries as one unit of a group commit and returns when they
// are written (Sync false) or fsynced (Sync true). Entries are copied; the
// caller may reuse them when Append returns. On error none of the entries
// was acknowledged, and they may or may not be replayed after a restart.
func (l *Log) Append(entries ...[]byte) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if len(e) > MaxEntrySize {
			return fmt.Errorf("applog: entry of %d bytes exceeds MaxEntrySize", len(e))
		}
	}
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	b := l.mu.pend
	for _, e := range entries {
		b.buf = appendFrame(b.buf, e)
	}
	b.entries += len(entries)
	if l.mu.leading {
		// Someone is writing: join the next group and wait for it.
		w := waiterPool.Get().(*waiter)
		b.waiters = append(b.waiters, w)
		l.mu.Unlock()
		r := <-w.ch
		waiterPool.Put(w)
		if !r.lead {
			if r.err == nil {
				l.stats.appends.Add(1)
			}
			return r.err
		}
		l.mu.Lock()
	}
	l.mu.leading = true
	b = l.mu.pend
	l.mu.pend, l.mu.spare = l.mu.spare, nil
	l.mu.Unlock()

	err := l.writeGroup(b)

	l.mu.Lock()
	for _, w := range b.waiters {
		w.ch <- result{err: err}
	}
	clear(b.waiters)
	b.waiters, b.entries = b.waiters[:0], 0
	if cap(b.buf) > 4<<20 {
		b.buf = nil // do not pin a rare huge group's buffer
	}
	b.buf = b.buf[:0]
	l.mu.spare = b
	if next := l.mu.pend; len(next.waiters) > 0 {
		// Hand the write path to the first waiter of the next group, so
		// that this caller returns instead of writing for others forever.
		w := next.waiters[0]
		copy(next.waiters, next.waiters[1:])
		next.waiters[len(next.waiters)-1] = nil
		next.waiters = next.waiters[:len(next.waiters)-1]
		w.ch <- result{lead: true}
	} else {
		l.mu.leading = false
		l.mu.idle.Broadcast()
	}
	l.mu.Unlock()
	if err == nil {
		l.stats.appends.Add(1)
	}
	return err
}

// writeGroup writes one group with one write and at most one fsync. On a
// failure the segment's size stays at the last good offset and the log
// rotates before its next write, so the failed bytes are never replayed as
// entries nor read as corruption.
func (l *Log) writeGroup(b *batch) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.wmu.closed {
		return ErrClosed
	}
	seg := l.wmu.seg
	if l.wmu.broken != nil || (seg.size+int64(len(b.buf)) > l.opts.SegmentSize && seg.size > headerSize) {
		if err := l.rotateLocked(); err != nil {
			l.markBrokenLocked(err)
			return err
		}
		seg = l.wmu.seg
	}
	if _, err := seg.f.Write(b.buf); err != nil {
		l.stats.writeErrors.Add(1)
		err = fmt.Errorf("applog: write %s at offset %d: %w", l.path(segName(seg.num)), seg.size, err)
		l.markBrokenLocked(err)
		return err
	}
	l.stats.writes.Add(1)
	l.stats.groups.Add(1)
	l.stats.entries.Add(int64(b.entries))
	l.stats.bytes.Add(int64(len(b.buf)))
	if l.opts.Sync {
		if err := seg.f.SyncData(); err != nil {
			l.stats.writeErrors.Add(1)
			err = fmt.Errorf("applog: fsync %s: %w", l.path(segName(seg.num)), err)
			l.markBrokenLocked(err)
			return err
		}
		l.stats.fsyncs.Add(1)
	}
	seg.size += int64(len(b.buf))
	if l.opts.Sync {
		seg.synced = seg.size
	}
	l.size.Add(int64(len(b.buf)))
	return nil
}

func (l *Log) markBrokenLocked(err error) {
	if l.wmu.broken == nil {
		l.log.Error("log write failed; appends fail until the next write succeeds on a fresh segment", "err", err)
	}
	l.wmu.broken = err
}

// Sync fsyncs what Append has written. It does not hold up appends while
// the fsync runs.
func (l *Log) Sync() error {
	l.wmu.Lock()
	if l.wmu.closed {
		l.wmu.Unlock()
		return ErrClosed
	}
	if l.wmu.broken != nil {
		// Recover here too, so that a full disk clears once space is
		// freed even when no append comes.
		err := l.rotateLocked()
		if err != nil {
			l.markBrokenLocked(err)
		}
		l.wmu.Unlock()
		return err
	}
	seg := l.wmu.seg
	target := seg.size
	if seg.synced >= target {
		l.wmu.Unlock()
		return nil
	}
	seg.refs++
	l.wmu.Unlock()

	err := seg.f.SyncData()

	l.wmu.Lock()
	defer l.wmu.Unlock()
	seg.refs--
	if err != nil {
		l.stats.writeErrors.Add(1)
		err = fmt.Errorf("applog: fsync %s: %w", l.path(segName(seg.num)), err)
		if !seg.sealed {
			l.markBrokenLocked(err)
		}
	} else {
		l.stats.fsyncs.Add(1)
		seg.synced = max(seg.synced, target)
	}
	if seg.sealed && seg.refs == 0 {
		seg.f.Close()
	}
	return err
}

// Rotate seals the active segment (fsyncing it) and returns its number;
// later appends go to the next segment. Compaction rotates, then writes a
// snapshot that covers every segment up to the returned number.
func (l *Log) Rotate() (uint64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.wmu.closed {
		return 0, ErrClosed
	}
	seg := l.wmu.seg.num
	if err := l.rotateLocked(); err != nil {
		l.markBrokenLocked(err)
		return 0, err
	}
	return seg, nil
}

// Size returns the bytes of the snapshot and every segment.
func (l *Log) Size() int64 { return l.size.Load() }

// Salvaged lists the files Open set aside under Options.Salvage.
func (l *Log) Salvaged() []SalvageReport { return append([]SalvageReport(nil), l.salvaged...) }

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	s := &l.stats
	return Stats{
		Appends: s.appends.Load(), Entries: s.entries.Load(), Groups: s.groups.Load(),
		Bytes: s.bytes.Load(), Writes: s.writes.Load(), Fsyncs: s.fsyncs.Load(),
		WriteErrors: s.writeErrors.Load(), TornTails: s.tornTails.Load(), Salvaged: s.salvaged.Load(),
		Replayed: s.replayed.Load(), Segments: s.segments.Load(), Rotations: s.rotations.Load(),
		Snapshots: s.snapshots.Load(), SnapshotSize: s.snapshotSize.Load(),
		SnapshotWriting: s.snapshotWriting.Load(),
	}
}

// Close waits for the groups in flight, fsyncs the active segment and
// releases the directory. A second Close returns ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.mu.closed = true
	for l.mu.leading {
		l.mu.idle.Wait()
	}
	l.mu.Unlock()

	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.wmu.closed = true
	seg := l.wmu.seg
	var err error
	if seg.synced < seg.size && l.wmu.broken == nil {
		if err = seg.f.Sync(); err != nil {
			err = fmt.Errorf("applog: fsync %s on close: %w", l.path(segName(seg.num)), err)
		}
	}
	seg.sealed = true
	if seg.refs == 0 && seg.f != nil {
		if cerr := seg.f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	if cerr := l.lock.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}
