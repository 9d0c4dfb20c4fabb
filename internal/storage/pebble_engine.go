package storage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringkv/ringkv/internal/record"
)

// pebbleEngine keeps records, the deadline index and the raw keyspaces in
// one Pebble instance (see the package comment for the key layout), with
// the row cache in front of the records.
type pebbleEngine struct {
	log      *slog.Logger
	db       *pebble.DB
	cache    *pebble.Cache
	wo       *pebble.WriteOptions
	rows     *rowCache // nil when disabled
	graceMS  int64     // Options.GCGrace, for deadlineOf
	counters *counters
	n        int64 // records counted at open
	x        int64 // of which values with an expiry
	lock     *dirLock
}

var _ engine = (*pebbleEngine)(nil)

func openPebbleEngine(opts *Options, ctrs *counters) (*pebbleEngine, error) {
	fs, dir := opts.fs(), opts.dir()
	lock, err := lockDir(opts)
	if err != nil {
		return nil, err
	}
	if err := checkNoLog(fs, dir); err != nil {
		lock.release()
		return nil, err
	}
	// Pebble replays a WAL overwritten with garbage as empty and then
	// deletes it (issue 29 case 4): refuse to start instead.
	if err := checkPebbleWAL(fs, dir); err != nil {
		lock.release()
		return nil, err
	}
	e := &pebbleEngine{
		log: opts.Logger,
		// Pebble charges every memtable, mutable or waiting to flush,
		// against the block cache (Cache.Reserve). Two full memtables are
		// the steady state under writes; without room for them a 128 MiB
		// cache beside 64 MiB memtables held no blocks at all, and every
		// read of a flushed key went to disk.
		cache:    pebble.NewCache(opts.CacheSize + 2*int64(opts.MemTableSize)),
		rows:     newRowCache(opts.RowCacheSize),
		graceMS:  opts.GCGrace.Milliseconds(),
		counters: ctrs,
		lock:     lock,
	}
	if opts.Sync == SyncAlways {
		e.wo = pebble.Sync
	} else {
		e.wo = pebble.NoSync
	}
	var lower func()
	if opts.LowPriorityBackground {
		lower = e.lowerBackgroundJob
	}
	po := &pebble.Options{
		FS:    preallocCapFS{fs},
		Cache: e.cache,
		// Writes that arrive while a memtable flushes fill the next one; up
		// to three queued behind the mutable one absorb a burst on a slow
		// disk before Pebble stalls writers. NoSync commits (SyncPeriodic,
		// expiry) leave the WAL unsynced; syncLoop bounds the window.
		MemTableSize:                opts.MemTableSize,
		MemTableStopWritesThreshold: 4,
		// New stores get the newest on-disk format; existing ones are
		// ratcheted up on open.
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log: e.log.With("pebble", true)},
		EventListener:      eventListener(e.log, lower),
	}
	// Every write reads the key first (apply-if-newer), and most SETs of
	// new keys find nothing: a Bloom filter per table lets those reads skip
	// the tables that cannot hold the key, as RocksDB-based stores do.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if !opts.InMemory && opts.FS == nil {
		// Disk health checks turn a hung disk into DiskSlow events.
		po.WithFSDefaults()
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		e.cache.Unref()
		lock.release()
		return nil, fmt.Errorf("storage: open pebble at %q: %w", dir, err)
	}
	e.db = db
	n, x, err := e.countRecords()
	if err != nil {
		_ = e.close()
		return nil, err
	}
	e.n, e.x = n, x
	return e, nil
}

// checkNoLog refuses to open Pebble on a directory that holds the memory
// engine's log: Pebble would start empty beside it, and the node would
// serve an empty store while its data sits unread.
func checkNoLog(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return nil // no directory yet: Pebble creates it
	}
	for _, n := range names {
		if isLogFile(n) {
			return fmt.Errorf("storage: %s holds the memory engine's log (%s); start with --engine memory", dir, n)
		}
	}
	return nil
}

func (e *pebbleEngine) count() int64 { return e.n }

func (e *pebbleEngine) expiring() int64 { return e.x }

// countRecords scans the record keyspace once; Open uses it to seed the
// counters that ApproxCount and Expiring read in O(1) afterwards. The same scan fills the
// row cache while every record fits in it, so that a store that fits starts
// with a complete cache (see rowCache) after a restart as well.
func (e *pebbleEngine) countRecords() (n, expiring int64, err error) {
	it, err := e.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixRecord},
		UpperBound: prefixEnd(prefixRecord),
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: count records: %w", err)
	}
	if e.rows != nil {
		e.rows.complete.Store(true)
	}
	for valid := it.First(); valid; valid = it.Next() {
		n++
		if v, err := it.ValueAndErr(); err == nil && record.Expiring(v) {
			expiring++
		}
		if e.rows.absent() && !e.preload(it) {
			e.rows.complete.Store(false)
		}
	}
	if err := it.Close(); err != nil {
		return 0, 0, fmt.Errorf("storage: count records: %w", err)
	}
	return n, expiring, nil
}

// preload puts the iterator's record in the row cache, as readRecord would
// have returned it. A record that does not parse is left to fail the reads
// that reach it, which then need Pebble: preload reports false.
func (e *pebbleEngine) preload(it *pebble.Iterator) bool {
	token, _, err := parseRecordKey(it.Key())
	if err != nil {
		return false
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return false
	}
	rec, err := record.Decode(v)
	if err != nil {
		return false
	}
	if rec.Tombstone {
		rec.Value = nil
	}
	e.rows.put(token, it.Key(), &rec)
	return true
}

func (e *pebbleEngine) prefetch(tokens []uint64) { e.rows.prefetch(tokens) }

// cached answers a read from the row cache alone when it can: a hit, or a
// definite absence while the cache is complete. done is false when Pebble
// must be read (get, under the key lock).
func (e *pebbleEngine) cached(token uint64, key []byte) (rec record.Record, found, done bool) {
	// On the stack: a read the row cache answers allocates nothing.
	var kb [64]byte
	rk := appendRecordKey(kb[:0], token, key)
	if rec, ok := e.rows.get(token, rk); ok {
		return rec, true, true
	}
	return record.Record{}, false, e.rows.absent()
}

// get reads key's record; with a row cache, the caller holds the key lock,
// so that a fill cannot race an apply and cache a superseded record.
func (e *pebbleEngine) get(token uint64, key []byte) (record.Record, bool, error) {
	var kb [64]byte
	rk := appendRecordKey(kb[:0], token, key)
	if e.rows == nil {
		// A copy for Pebble, since a key handed to it escapes.
		return e.readRecord(bytes.Clone(rk))
	}
	return e.readCached(token, rk)
}

func (e *pebbleEngine) read(token uint64, key []byte) (record.Record, bool, error) {
	var kb [64]byte
	return e.readCached(token, appendRecordKey(kb[:0], token, key))
}

// peek is read: the row cache holds whole records, so leaving the value
// out would save nothing.
func (e *pebbleEngine) peek(token uint64, key []byte) (record.Record, bool, error) {
	return e.read(token, key)
}

// readRecord reads and copies the record at Pebble key rk.
func (e *pebbleEngine) readRecord(rk []byte) (record.Record, bool, error) {
	buf, closer, err := e.db.Get(rk)
	if errors.Is(err, pebble.ErrNotFound) {
		return record.Record{}, false, nil
	}
	if err != nil {
		return record.Record{}, false, fmt.Errorf("storage: get: %w", err)
	}
	defer closer.Close()
	rec, err := record.Decode(buf)
	if err != nil {
		return record.Record{}, false, fmt.Errorf("%w: record %q: %w", ErrCorrupt, rk, err)
	}
	rec = rec.Clone()
	if rec.Tombstone {
		rec.Value = nil
	}
	return rec, true, nil
}

// readCached returns the record at rk from the row cache, or reads it from
// Pebble and caches it. The caller holds rk's key lock, so no apply can slip
// between the read and the fill.
func (e *pebbleEngine) readCached(token uint64, rk []byte) (record.Record, bool, error) {
	if rec, ok := e.rows.get(token, rk); ok {
		return rec, true, nil
	}
	if e.rows.absent() {
		return record.Record{}, false, nil
	}
	// A copy for Pebble, so that callers may pass a key on their stack.
	rec, found, err := e.readRecord(bytes.Clone(rk))
	if err == nil && found {
		e.rows.put(token, rk, &rec)
	}
	return rec, found, err
}

// write commits cs in one Pebble batch, with their deadline index changes,
// then updates the row cache. Expiry changes (durable false) skip the WAL
// fsync even with SyncAlways: each follows from the index and the clock
// alone, so one lost in a crash is redone by the next pass after restart.
func (e *pebbleEngine) write(cs []change, durable bool) error {
	b := e.db.NewBatch()
	defer b.Close()
	var kb [64]byte
	for i := range cs {
		c := &cs[i]
		rk := appendRecordKey(kb[:0], c.token, c.key)
		if err := e.stage(b, rk, c); err != nil {
			return err
		}
	}
	wo := e.wo
	if !durable {
		wo = pebble.NoSync
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("storage: apply: %w", err)
	}
	for i := range cs {
		c := &cs[i]
		rk := appendRecordKey(kb[:0], c.token, c.key)
		if c.rec == nil {
			e.rows.del(c.token, rk)
		} else {
			e.rows.put(c.token, rk, c.rec)
		}
	}
	return nil
}

// stage adds c's record write (or purge) and its deadline index changes to b.
func (e *pebbleEngine) stage(b *pebble.Batch, rk []byte, c *change) error {
	var newDeadline int64
	if c.rec == nil {
		_ = b.Delete(rk, nil)
	} else {
		newDeadline = deadlineOf(c.rec, e.graceMS)
		// Encoded in place in the batch: no key or value to allocate and copy.
		op := b.SetDeferred(len(rk), c.rec.EncodedLen())
		copy(op.Key, rk)
		if enc := c.rec.AppendEncode(op.Value[:0]); len(enc) != len(op.Value) {
			// EncodedLen and AppendEncode disagree: the batch would hold a
			// torn record.
			return fmt.Errorf("storage: apply: record encodes to %d bytes, %d reserved", len(enc), len(op.Value))
		}
		_ = op.Finish()
	}
	if c.found {
		if old := deadlineOf(c.prev, e.graceMS); old != 0 && old != newDeadline {
			_ = b.Delete(deadlineKey(old, c.token, c.key), nil)
		}
	}
	if newDeadline != 0 && (!c.found || deadlineOf(c.prev, e.graceMS) != newDeadline) {
		_ = b.Set(deadlineKey(newDeadline, c.token, c.key), nil, nil)
	}
	return nil
}

// due copies out up to limit index keys with a deadline at or before now.
// They are copied so the iterator closes before any write: a long-lived
// iterator pins memtables and sstables. The entries stay in the index
// until write or dropDue deletes them.
func (e *pebbleEngine) due(now int64, limit int) ([]dueEntry, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixDeadline},
		UpperBound: deadlineBound(now + 1),
	})
	if err != nil {
		return nil, fmt.Errorf("storage: expiry: %w", err)
	}
	var due []dueEntry
	for valid := it.First(); valid && len(due) < limit; valid = it.Next() {
		ik := bytes.Clone(it.Key())
		dl, token, key, err := parseDeadlineKey(ik)
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		due = append(due, dueEntry{deadline: dl, token: token, key: key, ik: ik})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("storage: expiry: %w", err)
	}
	return due, nil
}

func (e *pebbleEngine) dropDue(d dueEntry) error {
	if err := e.db.Delete(d.ik, pebble.NoSync); err != nil {
		return fmt.Errorf("storage: expiry: %w", err)
	}
	return nil
}

func (e *pebbleEngine) scan(from, to uint64, hold sync.Locker, fn func(token uint64, key []byte, rec *record.Record) error) error {
	upper := prefixEnd(prefixRecord)
	if to != 0 {
		upper = recordBound(to)
	}
	hold.Lock()
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: recordBound(from), UpperBound: upper})
	hold.Unlock()
	if err != nil {
		return fmt.Errorf("storage: scan: %w", err)
	}
	err = func() error {
		for valid := it.First(); valid; valid = it.Next() {
			token, key, err := parseRecordKey(it.Key())
			if err != nil {
				return err
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("storage: scan: %w", err)
			}
			rec, err := record.Decode(v)
			if err != nil {
				return fmt.Errorf("%w: record %q: %w", ErrCorrupt, it.Key(), err)
			}
			if err := fn(token, key, &rec); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("storage: scan: %w", cerr)
	}
	return err
}

// flush fsyncs the WAL. An empty LogData record is the cheapest write
// that makes Pebble sync everything before it, and it joins concurrent
// commits' syncs.
func (e *pebbleEngine) flush() error {
	if err := e.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("storage: sync: %w", err)
	}
	return nil
}

// memoryUsed counts what Pebble holds in memory: memtables and caches. The
// data itself lives on disk, so MaxMemory rarely matters for this engine.
func (e *pebbleEngine) memoryUsed() int64 {
	pm := e.db.Metrics()
	return int64(pm.MemTable.Size) + pm.BlockCache.Size
}

func (e *pebbleEngine) metrics(m *Metrics) {
	if e.rows != nil {
		m.RowCacheComplete = e.rows.complete.Load()
		m.RowCacheHits, m.RowCacheMisses = e.rows.hitsMisses()
		m.RowCacheEvictions = e.rows.evictions.Load()
	}
	pm := e.db.Metrics()
	m.MemTableBytes = pm.MemTable.Size
	m.BlockCacheBytes = pm.BlockCache.Size
	m.BlockCacheHits = pm.BlockCache.Hits
	m.BlockCacheMisses = pm.BlockCache.Misses
	m.Flushes = pm.Flush.Count
	m.Compactions = pm.Compact.Count
	m.CompactionDebt = pm.Compact.EstimatedDebt
	m.ReadAmp = pm.ReadAmp()
	m.MemoryBytes = int64(pm.MemTable.Size) + pm.BlockCache.Size
}

func rawKey(prefix byte, k []byte) []byte {
	buf := make([]byte, 0, 1+len(k))
	return append(append(buf, prefix), k...)
}

func (e *pebbleEngine) rawSet(prefix byte, k, v []byte) error {
	if err := e.db.Set(rawKey(prefix, k), v, e.wo); err != nil {
		return fmt.Errorf("storage: keyspace %q set: %w", prefix, err)
	}
	return nil
}

func (e *pebbleEngine) rawGet(prefix byte, k []byte) ([]byte, bool, error) {
	v, closer, err := e.db.Get(rawKey(prefix, k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: keyspace %q get: %w", prefix, err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

func (e *pebbleEngine) rawDelete(prefix byte, k []byte) error {
	if err := e.db.Delete(rawKey(prefix, k), e.wo); err != nil {
		return fmt.Errorf("storage: keyspace %q delete: %w", prefix, err)
	}
	return nil
}

func (e *pebbleEngine) rawIterate(prefix byte, from []byte, fn func(k, v []byte) error) error {
	it, err := e.db.NewIter(&pebble.IterOptions{
		LowerBound: rawKey(prefix, from),
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return fmt.Errorf("storage: keyspace %q iterate: %w", prefix, err)
	}
	err = func() error {
		for valid := it.First(); valid; valid = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("storage: keyspace %q iterate: %w", prefix, err)
			}
			if err := fn(it.Key()[1:], v); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("storage: keyspace %q iterate: %w", prefix, cerr)
	}
	return err
}

// close fsyncs the WAL and closes Pebble.
func (e *pebbleEngine) close() error {
	err := e.flush()
	if cerr := e.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("storage: close pebble: %w", cerr))
	}
	e.cache.Unref()
	e.lock.release()
	return err
}
