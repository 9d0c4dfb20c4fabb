package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage/applog"
	"github.com/ringkv/ringkv/internal/storage/memindex"
)

// memEngine keeps every record in memory, in a memindex.Index keyed by
// (token, key) whose value is the encoded record, and makes writes durable
// in an applog.Log in the data directory. The raw keyspaces live in
// B-trees beside it and in the same log; the deadline index is rebuilt from
// the records at open.
//
// A write is appended to the log first and put in the index after the
// append returns: with SyncAlways no reader sees a write before it is
// durable, and a write the log refuses (a full disk) changes nothing.
// Concurrent writers' appends are group-committed by the log: one write(2)
// and at most one fsync for all of them.
type memEngine struct {
	opts    *Options
	log     *slog.Logger
	idx     *memindex.Index
	wal     *applog.Log
	graceMS int64 // Options.GCGrace, for deadlineOf
	dls     deadlines
	raw     *rawSpaces
	lock    *dirLock

	// logMu is read-held by every logged write from its append until it is
	// visible in memory, and write-held by a compaction while it rotates
	// the log: so every entry in the segments a compaction replaces is in
	// memory before the compaction's snapshot reads memory (see compact).
	logMu sync.RWMutex

	compactions, compactBytes  atomic.Uint64
	compactErrors, writeErrors atomic.Uint64
	compacting                 atomic.Bool
	compactMu                  sync.Mutex // one compaction at a time
	compactMin, compactRate    int64
}

var _ engine = (*memEngine)(nil)

func openMemEngine(opts *Options) (*memEngine, error) {
	fs, dir := opts.fs(), opts.dir()
	lock, err := lockDir(opts)
	if err != nil {
		return nil, err
	}
	if err := checkNoPebble(fs, dir); err != nil {
		lock.release()
		return nil, err
	}
	if err := createDir(fs, dir); err != nil {
		lock.release()
		return nil, err
	}
	e := &memEngine{
		opts:        opts,
		log:         opts.Logger,
		idx:         memindex.New(memindex.Options{}),
		graceMS:     opts.GCGrace.Milliseconds(),
		raw:         newRawSpaces(),
		lock:        lock,
		compactMin:  opts.LogCompactMinBytes,
		compactRate: opts.LogCompactBytesPerSec,
	}
	if e.compactMin <= 0 {
		e.compactMin = DefaultLogCompactMinBytes
	}
	if e.compactRate == 0 {
		e.compactRate = DefaultLogCompactBytesPerSec
	}
	if e.compactRate < 0 {
		e.compactRate = 0
	}
	r := newReplay(e, opts.Clock.Now().UnixMilli())
	start := time.Now()
	wal, err := applog.Open(applog.Options{
		FS: fs, Dir: dir, Sync: opts.Sync == SyncAlways, Salvage: opts.Salvage,
		Logger: opts.Logger,
	}, r.replay)
	if rerr := r.finish(); err == nil && rerr != nil {
		_ = wal.Close()
		err = rerr
	}
	if err != nil {
		e.idx.Close()
		lock.release()
		// %w keeps an *applog.CorruptError visible to errors.As.
		return nil, fmt.Errorf("storage: open log in %s: %w", dir, err)
	}
	e.wal = wal
	// Replay's garbage (read buffers, decoded records) would hold the
	// heap, and the RSS, at its peak until the Go runtime's scavenger got
	// to it; the records themselves live off the heap. One collection that
	// returns it at once costs milliseconds, once.
	debug.FreeOSMemory()
	e.log.Info("log replayed", "entries", r.entries, "records", e.idx.Len(), "log_bytes", wal.Size(),
		"salvaged", len(wal.Salvaged()), "took", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// createDir creates dir and whichever of its ancestors are missing, and
// syncs the parent of each directory it created, top down, so that the
// directory entries, and with them the log's first fsynced writes, survive a
// crash right after: a data directory whose parent was created too (a first
// start with --data-dir /var/lib/ringkv/n1) is otherwise lost whole on a
// filesystem that does not sync directory entries of its own accord.
func createDir(fs vfs.FS, dir string) error {
	var created []string // missing directories, deepest first
	for d := dir; ; d = fs.PathDir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		if parent := fs.PathDir(d); parent == d {
			break
		}
	}
	if len(created) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("storage: create %s: %w", dir, err)
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := syncDir(fs, fs.PathDir(created[i])); err != nil {
			return fmt.Errorf("storage: sync parent of %s: %w", created[i], err)
		}
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkNoPebble refuses to open the log in a directory that holds a Pebble
// store: the node would serve an empty store while its data sits unread.
func checkNoPebble(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return nil // no directory yet: the log creates it
	}
	for _, n := range names {
		if n == "CURRENT" || strings.HasPrefix(n, "MANIFEST-") {
			return fmt.Errorf("storage: %s holds a Pebble store (%s); start with --engine pebble", dir, n)
		}
	}
	return nil
}

// isLogFile tells the memory engine's log files (applog's segments and
// snapshots) from others.
func isLogFile(name string) bool {
	return strings.HasSuffix(name, ".seg") || strings.HasSuffix(name, ".snap")
}

func (e *memEngine) count() int64 { return e.idx.Len() }

func (e *memEngine) expiring() int64 {
	var n int64
	_ = e.idx.Range(0, 0, &sync.Mutex{}, func(_ uint64, _, val []byte) error {
		if record.Expiring(val) {
			n++
		}
		return nil
	})
	return n
}

func (e *memEngine) prefetch(tokens []uint64) { e.idx.Prefetch(tokens) }

func (e *memEngine) get(token uint64, key []byte) (record.Record, bool, error) {
	sc := readScratches.Get().(*readScratch)
	v, found := e.idx.Get(token, key, sc.b[:0])
	if cap(v) <= 64<<10 {
		sc.b = v[:0] // Get may have grown it
	}
	if found {
		// The record's Value aliases this copy, the caller's to keep
		// (mem_values.go); the scratch goes back to the pool after it.
		v = keepable(v)
	}
	readScratches.Put(sc)
	if !found {
		return record.Record{}, false, nil
	}
	rec, err := record.Decode(v)
	if err != nil {
		return record.Record{}, false, fmt.Errorf("%w: record %q: %w", ErrCorrupt, key, err)
	}
	if rec.Tombstone {
		rec.Value = nil
	}
	return rec, true, nil
}

func (e *memEngine) read(token uint64, key []byte) (record.Record, bool, error) {
	return e.get(token, key)
}

func (e *memEngine) peek(token uint64, key []byte) (rec record.Record, found bool, err error) {
	found = e.idx.View(token, key, func(v []byte) {
		rec, err = record.Decode(v)
		if err == nil && rec.Counter != nil {
			// A counter is merged with, not just compared to (admit):
			// it is needed whole, and it is small.
			rec = rec.Clone()
			return
		}
		rec.Value = nil // it points into the index's slab
	})
	if err != nil {
		return record.Record{}, false, fmt.Errorf("%w: record %q: %w", ErrCorrupt, key, err)
	}
	return rec, found, nil
}

// writeScratch is the working memory of one write, pooled.
type writeScratch struct {
	buf     []byte
	offs    []int
	entries [][]byte
}

var writeScratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

func (sc *writeScratch) put() {
	if cap(sc.buf) > maxPooledScratch {
		return
	}
	clear(sc.entries)
	sc.buf, sc.offs, sc.entries = sc.buf[:0], sc.offs[:0], sc.entries[:0]
	writeScratchPool.Put(sc)
}

func (e *memEngine) write(cs []change, durable bool) error {
	sc := writeScratchPool.Get().(*writeScratch)
	defer sc.put()
	for i := range cs {
		c := &cs[i]
		sc.offs = append(sc.offs, len(sc.buf))
		if c.rec == nil {
			continue
		}
		if durable {
			sc.buf = append(sc.buf, entryRecord)
			sc.buf = binary.AppendUvarint(sc.buf, uint64(len(c.key)))
			sc.buf = append(sc.buf, c.key...)
		}
		sc.buf = c.rec.AppendEncode(sc.buf)
	}
	sc.offs = append(sc.offs, len(sc.buf))
	if durable {
		for i := range cs {
			sc.entries = append(sc.entries, sc.buf[sc.offs[i]:sc.offs[i+1]])
		}
		e.logMu.RLock()
		defer e.logMu.RUnlock()
		if err := e.wal.Append(sc.entries...); err != nil {
			e.writeErrors.Add(1)
			return fmt.Errorf("storage: log append: %w", err)
		}
	}
	for i := range cs {
		c := &cs[i]
		if c.rec == nil {
			e.idx.Delete(c.token, c.key)
			continue
		}
		enc := sc.buf[sc.offs[i]:sc.offs[i+1]]
		if durable {
			enc = enc[recordEntryHeaderLen(c.key):]
		}
		e.idx.Put(c.token, c.key, enc)
		if dl := deadlineOf(c.rec, e.graceMS); dl != 0 && (!c.found || deadlineOf(c.prev, e.graceMS) != dl) {
			e.dls.push(dl, c.token, c.key)
		}
	}
	return nil
}

func (e *memEngine) due(now int64, limit int) ([]dueEntry, error) {
	return e.dls.popDue(now, limit), nil
}

// dropDue has nothing to do: popDue already took the entry out.
func (e *memEngine) dropDue(dueEntry) error { return nil }

func (e *memEngine) scan(from, to uint64, hold sync.Locker, fn func(token uint64, key []byte, rec *record.Record) error) error {
	return e.idx.Range(from, to, hold, func(token uint64, key, val []byte) error {
		rec, err := record.Decode(val)
		if err != nil {
			return fmt.Errorf("%w: record %q: %w", ErrCorrupt, key, err)
		}
		return fn(token, key, &rec)
	})
}

func (e *memEngine) flush() error {
	if err := e.wal.Sync(); err != nil {
		e.writeErrors.Add(1)
		return fmt.Errorf("storage: sync log: %w", err)
	}
	return nil
}

func (e *memEngine) memoryUsed() int64 {
	return e.idx.MemoryBytes() + e.raw.size() + e.dls.bytes()
}

// logEntryOverhead approximates a record's bytes in the log beyond its key
// and encoded record: the frame header and the entry's type and key length.
const logEntryOverhead = 8 + 2

// liveLogBytes is what the log would hold right after a compaction.
func (e *memEngine) liveLogBytes() int64 {
	return e.idx.LiveBytes() + e.idx.Len()*logEntryOverhead + e.raw.size()
}

func (e *memEngine) metrics(m *Metrics) {
	m.MemoryBytes = e.memoryUsed()
	m.LogBytes = e.wal.Size()
	m.LogLiveBytes = e.liveLogBytes()
	m.LogCompactions = e.compactions.Load()
	m.LogCompactionBytes = e.compactBytes.Load()
	m.LogCompacting = e.compacting.Load()
	m.LogWriteErrors = e.writeErrors.Load()
	m.LogCompactionErrors = e.compactErrors.Load()
	st := e.wal.Stats()
	m.LogTornTailsTruncated = uint64(st.TornTails)
	m.LogSalvaged = uint64(len(e.wal.Salvaged()))
}

func (e *memEngine) rawSet(prefix byte, k, v []byte) error {
	entry := appendRawSetEntry(nil, prefix, k, v)
	e.logMu.RLock()
	defer e.logMu.RUnlock()
	if err := e.wal.Append(entry); err != nil {
		e.writeErrors.Add(1)
		return fmt.Errorf("storage: keyspace %q set: %w", prefix, err)
	}
	e.raw.set(prefix, k, v)
	return nil
}

func (e *memEngine) rawGet(prefix byte, k []byte) ([]byte, bool, error) {
	v, ok := e.raw.get(prefix, k)
	return v, ok, nil
}

func (e *memEngine) rawDelete(prefix byte, k []byte) error {
	entry := appendRawDeleteEntry(nil, prefix, k)
	e.logMu.RLock()
	defer e.logMu.RUnlock()
	if err := e.wal.Append(entry); err != nil {
		e.writeErrors.Add(1)
		return fmt.Errorf("storage: keyspace %q delete: %w", prefix, err)
	}
	e.raw.delete(prefix, k)
	return nil
}

func (e *memEngine) rawIterate(prefix byte, from []byte, fn func(k, v []byte) error) error {
	return e.raw.iterate(prefix, from, fn)
}

// close syncs and closes the log, then frees the index's memory.
func (e *memEngine) close() error {
	err := e.wal.Close()
	if err != nil {
		err = fmt.Errorf("storage: close log: %w", err)
	}
	e.idx.Close()
	e.lock.release()
	return err
}

// salvaged is what the log set aside at open.
func (e *memEngine) salvaged() []applog.SalvageReport { return e.wal.Salvaged() }

var errCompactionStopped = errors.New("storage: log compaction stopped")
