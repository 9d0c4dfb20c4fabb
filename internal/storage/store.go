package storage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// Errors returned by the store.
var (
	// ErrStop, returned by an iteration callback, ends the iteration early
	// without an error.
	ErrStop = errors.New("storage: stop iteration")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("storage: store is closed")
	// ErrCorrupt means stored bytes do not parse; the node's data needs repair.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrInvalidRecord is returned by Apply for a record no write may carry.
	ErrInvalidRecord = errors.New("storage: invalid record")
)

// Defaults for Options fields left zero.
const (
	// DefaultGCGrace is design §2's gc-grace: long enough that every hint and
	// anti-entropy round that could carry an older copy has run.
	DefaultGCGrace = time.Hour
	// DefaultExpiryInterval bounds how long an expired record occupies disk
	// as a live value. Reads never see it: they check Live themselves.
	DefaultExpiryInterval = 100 * time.Millisecond
	// DefaultExpiryBatch bounds the work (and the key-lock holding) of one
	// expiry tick, so a mass expiry cannot starve foreground writes.
	DefaultExpiryBatch = 1000
	// DefaultCacheSize is the Pebble block cache. Values are read far more
	// than written in a typical KV workload and the OS page cache holds only
	// compressed blocks, so a generous cache pays for itself.
	DefaultCacheSize = 128 << 20
	// DefaultMemTableSize lets a memtable absorb write bursts and flush large,
	// well-formed L0 tables; Pebble grows memtables from 256 KiB up to it, so
	// small and in-memory stores do not pay for it up front.
	DefaultMemTableSize = 64 << 20
)

// Options configures a Store.
type Options struct {
	// Dir is the data directory. With InMemory it only names the store.
	Dir string
	// InMemory keeps everything in Pebble's in-memory filesystem (demo, tests).
	InMemory bool
	// FS overrides the filesystem, for crash and fault tests; it wins over
	// InMemory.
	FS vfs.FS
	// Sync says when writes reach stable storage; see SyncMode.
	Sync SyncMode
	// GCGrace is how long tombstones outlive their death; default DefaultGCGrace.
	GCGrace time.Duration
	// Clock drives expiry and GC; default clock.System{}.
	Clock clock.Clock
	// ExpiryInterval is the expiry cycle's period; default
	// DefaultExpiryInterval. A negative value disables the background cycle
	// (tests drive it with ExpireNow).
	ExpiryInterval time.Duration
	// ExpiryBatch bounds the deadline index entries one tick handles; a tick
	// that fills its batch is followed by another at once. Default
	// DefaultExpiryBatch.
	ExpiryBatch int
	// CacheSize is the Pebble block cache in bytes; default DefaultCacheSize.
	CacheSize int64
	// RowCacheSize bounds the row cache of decoded records (see
	// DefaultRowCacheSize); 0 means the default, negative disables it.
	RowCacheSize int64
	// MemTableSize is Pebble's memtable size; default DefaultMemTableSize.
	MemTableSize uint64
	// LowPriorityBackground runs Pebble's flushes and compactions on threads
	// at the lowest CPU priority (Linux; nice 19), so that when the CPUs are
	// short, requests run before them. A flush is a burst of CPU (a 64 MiB
	// memtable took 0.4 s of a core) that otherwise queues every request
	// behind it; the cost is that under a load that saturates the CPUs the
	// jobs fall behind until writes slow (docs/performance.md).
	LowPriorityBackground bool
	// OnApply, when set, is called after every change to a stored record:
	// Apply, expiry conversion and GC purge. old has a zero Version when
	// nothing was stored, new one when the record was removed (no stored
	// record has a zero Version). The records come by value: pointers handed
	// to a hook escape, and cost every Apply two allocations. Calls for one key are
	// ordered, since they run under its key lock; calls for different keys
	// run concurrently. key, old and new are only valid during the call, and
	// OnApply must not call back into the Store's write path for the same key,
	// nor scan it (a scan waits for every OnApply call in progress).
	OnApply func(token uint64, key []byte, old, new record.Record)
	// Guard, when set, is asked about every write that Apply and ApplyBatch
	// receive, before the stored record is read: a non-nil error fails that
	// write alone, with the error returned as is, and nothing is stored. It
	// is the one place where a node refuses what it must not store, whichever
	// path brought the record (a client write, read repair, a hint,
	// anti-entropy, a stream): a clock guard, a full disk, a memory limit.
	// It must be cheap and must not call back into the Store. It gets the
	// write's facts by value, not the record: a pointer handed to a function
	// value escapes, and would cost every write an allocation.
	Guard func(w Guarded) error
	// Logger receives the store's and Pebble's logs, already scoped by the
	// caller (component=storage); default slog.Default() so scoped.
	Logger *slog.Logger
	// Registerer, when set, receives the store's metrics; they are
	// unregistered on Close so the same registry can reopen a store.
	Registerer prometheus.Registerer
}

// Guarded is what Options.Guard is told about a write.
type Guarded struct {
	// TS is the write's version timestamp.
	TS clock.Timestamp
	// Tombstone is true for a delete.
	Tombstone bool
	// Bytes is the key's and the value's length together.
	Bytes int
}

// ApplyResult tells what Apply did.
type ApplyResult struct {
	// Applied is true when rec was stored. It is false when the stored record
	// wins (a stale write) and when rec was dead past its GC deadline with
	// nothing stored; both leave the store exactly as if rec had been applied
	// and then superseded or purged, so replicas acknowledge them as usual.
	Applied bool
	// Prev is the record stored before the call, valid when PrevFound. Its
	// Value is the caller's to keep.
	Prev      record.Record
	PrevFound bool
}

// keyLockStripes spreads key locks so that unrelated keys rarely share one;
// a power of two so the token's low bits pick the stripe.
const keyLockStripes = 1024

// Store is one node's record store. It is safe for concurrent use.
type Store struct {
	opts  Options
	log   *slog.Logger
	db    *pebble.DB
	cache *pebble.Cache
	wo    *pebble.WriteOptions

	// gate admits every call that touches db; Close shuts it first.
	gate *gate

	keyLocks [keyLockStripes]sync.Mutex
	// snapshotMu is read-held from a change's commit to its OnApply call,
	// and held while ScanRange takes its snapshot (see there).
	snapshotMu sync.RWMutex
	rows       *rowCache // nil when disabled
	// expiryMu serialises expiry passes (background and ExpireNow) so two
	// passes never race over the same index entries.
	expiryMu sync.Mutex

	count     atomic.Int64
	counters  counters
	collector *collector

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (creating if needed) the store described by opts, rebuilds the
// record count, and starts the expiry cycle and, with SyncPeriodic, the WAL
// syncer.
func Open(opts Options) (*Store, error) {
	if opts.GCGrace == 0 {
		opts.GCGrace = DefaultGCGrace
	}
	if opts.GCGrace < 0 {
		return nil, fmt.Errorf("storage: negative GCGrace %v", opts.GCGrace)
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.ExpiryInterval == 0 {
		opts.ExpiryInterval = DefaultExpiryInterval
	}
	if opts.ExpiryBatch <= 0 {
		opts.ExpiryBatch = DefaultExpiryBatch
	}
	if opts.RowCacheSize == 0 {
		opts.RowCacheSize = DefaultRowCacheSize
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default().With("component", "storage")
	}
	if opts.Sync != SyncAlways && opts.Sync != SyncPeriodic {
		return nil, fmt.Errorf("storage: unknown sync mode %v", opts.Sync)
	}
	fs := opts.FS
	if fs == nil && opts.InMemory {
		fs = vfs.NewMem()
	}
	dir := opts.Dir
	if dir == "" {
		if !opts.InMemory && opts.FS == nil {
			return nil, errors.New("storage: Options.Dir is required")
		}
		dir = "ringkv"
	}

	log := opts.Logger
	s := &Store{
		opts: opts,
		log:  log,
		// Pebble charges every memtable, mutable or waiting to flush,
		// against the block cache (Cache.Reserve). Two full memtables are
		// the steady state under writes; without room for them a 128 MiB
		// cache beside 64 MiB memtables held no blocks at all, and every
		// read of a flushed key went to disk.
		cache: pebble.NewCache(opts.CacheSize + 2*int64(opts.MemTableSize)),
		rows:  newRowCache(opts.RowCacheSize),
		stop:  make(chan struct{}),
		gate:  newGate(),
	}
	if opts.Sync == SyncAlways {
		s.wo = pebble.Sync
	} else {
		s.wo = pebble.NoSync
	}

	var lower func()
	if opts.LowPriorityBackground {
		lower = s.lowerBackgroundJob
	}
	po := &pebble.Options{
		FS:    fs,
		Cache: s.cache,
		// Writes that arrive while a memtable flushes fill the next one; up
		// to three queued behind the mutable one absorb a burst on a slow
		// disk before Pebble stalls writers. NoSync commits (SyncPeriodic,
		// expiry) leave the WAL unsynced; syncLoop bounds the window.
		MemTableSize:                opts.MemTableSize,
		MemTableStopWritesThreshold: 4,
		// New stores get the newest on-disk format; existing ones are
		// ratcheted up on open.
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log: log.With("pebble", true)},
		EventListener:      eventListener(log, lower),
	}
	// Every write reads the key first (apply-if-newer), and most SETs of
	// new keys find nothing: a Bloom filter per table lets those reads skip
	// the tables that cannot hold the key, as RocksDB-based stores do.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if !opts.InMemory {
		// Disk health checks turn a hung disk into DiskSlow events.
		po.WithFSDefaults()
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		s.cache.Unref()
		return nil, fmt.Errorf("storage: open pebble at %q: %w", dir, err)
	}
	s.db = db

	n, err := s.countRecords()
	if err != nil {
		_ = db.Close()
		s.cache.Unref()
		return nil, err
	}
	s.count.Store(n)

	if opts.Registerer != nil {
		s.collector = newCollector(s)
		if err := opts.Registerer.Register(s.collector); err != nil {
			_ = db.Close()
			s.cache.Unref()
			return nil, fmt.Errorf("storage: register metrics: %w", err)
		}
	}

	if opts.ExpiryInterval > 0 {
		s.wg.Go(s.expiryLoop)
	}
	if opts.Sync == SyncPeriodic {
		s.wg.Go(s.syncLoop)
	}
	log.Info("storage opened", "dir", dir, "in_memory", opts.InMemory, "sync", opts.Sync.String(), "records", n)
	return s, nil
}

// countRecords scans the record keyspace once; Open uses it to seed the
// counter that ApproxCount reads in O(1) afterwards. The same scan fills the
// row cache while every record fits in it, so that a store that fits starts
// with a complete cache (see rowCache) after a restart as well.
func (s *Store) countRecords() (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixRecord},
		UpperBound: prefixEnd(prefixRecord),
	})
	if err != nil {
		return 0, fmt.Errorf("storage: count records: %w", err)
	}
	if s.rows != nil {
		s.rows.complete.Store(true)
	}
	var n int64
	for valid := it.First(); valid; valid = it.Next() {
		n++
		if s.rows.absent() && !s.preload(it) {
			s.rows.complete.Store(false)
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("storage: count records: %w", err)
	}
	return n, nil
}

// preload puts the iterator's record in the row cache, as readRecord would
// have returned it. A record that does not parse is left to fail the reads
// that reach it, which then need Pebble: preload reports false.
func (s *Store) preload(it *pebble.Iterator) bool {
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
	s.rows.put(token, it.Key(), &rec)
	return true
}

// acquire admits a call that touches db; it must be paired with release when
// it returns nil.
func (s *Store) acquire() error {
	if !s.gate.enter() {
		return ErrClosed
	}
	return nil
}

func (s *Store) release() { s.gate.exit() }

func (s *Store) keyLock(token uint64) *sync.Mutex {
	return &s.keyLocks[token&(keyLockStripes-1)]
}

// Prefetch warms the CPU cache for reads or applies of keys that are about to
// follow, as the GETs or SETs of one pipeline do: it overlaps the cache
// misses of their row-cache lookups, which one Get or Apply after another
// take in turn. It changes nothing and may be skipped; it is worth calling
// for a handful of keys or more.
func (s *Store) Prefetch(keys [][]byte) {
	if len(keys) > 1 {
		s.rows.prefetch(keys)
	}
}

// Get returns key's stored record, tombstones and expired records included:
// callers resolve them with rec.Live(now), so that read resolution and repair
// still see the version that makes a key dead. The Value may be kept but never
// modified: it can be shared with the row cache and other readers.
func (s *Store) Get(key []byte) (rec record.Record, found bool, err error) {
	// A read that the row cache answers, hit or definite absence, touches no
	// Pebble state, so it does not enter the gate: entering and leaving it are
	// two atomic writes to one cache line that every core's calls share, 3.6%
	// of a single node's CPU under a pipelined GET load.
	if s.gate.closing() {
		return record.Record{}, false, ErrClosed
	}
	token := ring.Token(key)
	// On the stack: a read the row cache answers allocates nothing. Pebble
	// gets a copy (readCached), since a key handed to it escapes.
	var kb [64]byte
	rk := appendRecordKey(kb[:0], token, key)
	if rec, ok := s.rows.get(token, rk); ok {
		return rec, true, nil
	}
	if s.rows.absent() {
		return record.Record{}, false, nil
	}
	if err := s.acquire(); err != nil {
		return record.Record{}, false, err
	}
	defer s.release()
	if s.rows == nil {
		return s.readRecord(bytes.Clone(rk))
	}
	mu := s.keyLock(token)
	mu.Lock()
	defer mu.Unlock()
	return s.readCached(token, rk)
}

// readRecord reads and copies the record at Pebble key rk; the caller must hold
// an acquire.
func (s *Store) readRecord(rk []byte) (record.Record, bool, error) {
	buf, closer, err := s.db.Get(rk)
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

// deadline returns when rec must next change by itself (0 for never): a live
// record with an expiry at ExpireAt, a tombstone at its death time plus
// GCGrace. See the package comment for why the death time is the later of the
// write and the expiry.
func (s *Store) deadline(rec *record.Record) int64 {
	if !rec.Tombstone {
		return rec.ExpireAt
	}
	death := max(rec.Version.TS.Physical(), rec.ExpireAt)
	return death + s.opts.GCGrace.Milliseconds()
}

// Apply stores rec for key if it wins over the stored record under
// record.Compare (or nothing is stored). It is atomic per key. With SyncAlways
// it returns after the write is fsynced.
//
// A dead record (tombstone, or a value already past ExpireAt) is stored as a
// tombstone with the same version, so that it keeps beating older copies of the
// key until GC; if it is already past its GC deadline and nothing is stored,
// it is dropped instead (see ApplyResult.Applied).
func (s *Store) Apply(key []byte, rec record.Record) (ApplyResult, error) {
	if err := s.check(key, &rec); err != nil {
		return ApplyResult{}, err
	}
	if err := s.acquire(); err != nil {
		return ApplyResult{}, err
	}
	defer s.release()

	now := s.opts.Clock.Now().UnixMilli()
	token := ring.Token(key)
	var kb [64]byte // see Get
	rk := appendRecordKey(kb[:0], token, key)
	mu := s.keyLock(token)
	mu.Lock()
	defer mu.Unlock()

	prev, found, err := s.readCached(token, rk)
	if err != nil {
		return ApplyResult{}, err
	}
	res := ApplyResult{Prev: prev, PrevFound: found}
	if !s.admit(&rec, &prev, found, now) {
		return res, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.stage(b, token, rk, key, &rec, &prev, found); err != nil {
		return ApplyResult{}, err
	}
	s.beginNotify()
	defer s.endNotify()
	if err := b.Commit(s.wo); err != nil {
		return ApplyResult{}, fmt.Errorf("storage: apply: %w", err)
	}
	s.applied(token, rk, key, &rec, &prev, found)
	res.Applied = true
	return res, nil
}

// check refuses a write that is invalid or that Options.Guard turns away.
func (s *Store) check(key []byte, rec *record.Record) error {
	if err := validWrite(key, rec); err != nil {
		return err
	}
	if s.opts.Guard != nil {
		return s.opts.Guard(Guarded{TS: rec.Version.TS, Tombstone: rec.Tombstone, Bytes: len(key) + len(rec.Value)})
	}
	return nil
}

// validWrite refuses what no replica may store.
func validWrite(key []byte, rec *record.Record) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidRecord)
	}
	if rec.Version.IsZero() {
		return fmt.Errorf("%w: zero version", ErrInvalidRecord)
	}
	if rec.ExpireAt < 0 {
		return fmt.Errorf("%w: negative expiry %d", ErrInvalidRecord, rec.ExpireAt)
	}
	return nil
}

// admit reports whether rec is to be written over prev (the stored record, if
// found), counting the writes it turns away: a stale one, or a dead one with
// nothing stored that is past its GC deadline. A dead rec is rewritten as
// its tombstone first, as it is to be stored.
func (s *Store) admit(rec, prev *record.Record, found bool, now int64) bool {
	if !rec.Live(now) {
		rec.Tombstone = true
		rec.Value = nil
	}
	if found && !record.Newer(rec, prev) {
		s.counters.staleApplies.Add(1)
		return false
	}
	if !found && rec.Tombstone && s.deadline(rec) <= now {
		s.counters.deadDropped.Add(1)
		return false
	}
	return true
}

// stage adds to b the write of an admitted rec over prev and its
// deadline-index changes. The caller holds rk's key lock until the batch
// commits.
func (s *Store) stage(b *pebble.Batch, token uint64, rk, key []byte, rec, prev *record.Record, found bool) error {
	newDeadline := s.deadline(rec)
	// Encoded in place in the batch: no key or value to allocate and copy.
	op := b.SetDeferred(len(rk), rec.EncodedLen())
	copy(op.Key, rk)
	if enc := rec.AppendEncode(op.Value[:0]); len(enc) != len(op.Value) {
		// EncodedLen and AppendEncode disagree: the batch would hold a
		// torn record.
		return fmt.Errorf("storage: apply: record encodes to %d bytes, %d reserved", len(enc), len(op.Value))
	}
	_ = op.Finish()
	if found {
		if old := s.deadline(prev); old != 0 && old != newDeadline {
			_ = b.Delete(deadlineKey(old, token, key), nil)
		}
	}
	if newDeadline != 0 {
		_ = b.Set(deadlineKey(newDeadline, token, key), nil, nil)
	}
	return nil
}

// applied does what follows the commit of a write that stage added: the row
// cache, the counters and the OnApply hook, inside beginNotify.
func (s *Store) applied(token uint64, rk, key []byte, rec, prev *record.Record, found bool) {
	s.cacheWrite(token, rk, rec)
	s.counters.applies.Add(1)
	if !found {
		s.count.Add(1)
	}
	var old record.Record
	if found {
		old = *prev
	}
	s.notify(token, key, old, *rec)
}

// beginNotify and endNotify bracket a change's commit and its OnApply
// call; without an OnApply hook there is nothing to bracket.
func (s *Store) beginNotify() {
	if s.opts.OnApply != nil {
		s.snapshotMu.RLock()
	}
}

func (s *Store) endNotify() {
	if s.opts.OnApply != nil {
		s.snapshotMu.RUnlock()
	}
}

// Scan calls fn for every stored record (tombstones and expired ones
// included) in (token, key) order, starting at token from inclusive and
// running to the end of the ring. See ScanRange.
func (s *Store) Scan(from uint64, fn func(token uint64, key []byte, rec *record.Record) error) error {
	return s.ScanRange(from, 0, fn)
}

// ScanRange calls fn for every stored record with from <= token < to in
// (token, key) order; to == 0 means the end of the ring, so a range that wraps
// is scanned as two calls. The scan reads a consistent snapshot taken when it
// starts. key and rec (its Value included) alias iterator memory and are valid
// only during fn. fn returning ErrStop ends the scan with a nil error; any
// other error ends it and is returned.
func (s *Store) ScanRange(from, to uint64, fn func(token uint64, key []byte, rec *record.Record) error) error {
	if to != 0 && to <= from {
		return nil
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()

	upper := prefixEnd(prefixRecord)
	if to != 0 {
		upper = recordBound(to)
	}
	// The snapshot is taken while no change is between its commit and its
	// OnApply call, so it holds exactly the changes OnApply has reported:
	// what the anti-entropy tree's rebuild needs to merge a scan with the
	// updates that race it.
	s.snapshotMu.Lock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: recordBound(from), UpperBound: upper})
	s.snapshotMu.Unlock()
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
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// ApproxCount estimates the number of stored records, tombstones included, in
// O(1). It is exact while the process runs; it is an estimate only because
// callers read it without any lock while writes land.
func (s *Store) ApproxCount() int64 { return s.count.Load() }

// Flush fsyncs the WAL now, making every write applied so far durable.
func (s *Store) Flush() error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	return s.syncWAL()
}

// syncWAL fsyncs the WAL. An empty LogData record is the cheapest write
// that makes Pebble sync everything before it, and it joins concurrent
// commits' syncs.
func (s *Store) syncWAL() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("storage: sync: %w", err)
	}
	return nil
}

// syncLoop is SyncPeriodic's fsync ticker.
func (s *Store) syncLoop() {
	t := time.NewTicker(PeriodicSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.Flush(); err != nil && !errors.Is(err, ErrClosed) {
			s.counters.syncErrors.Add(1)
			s.log.Error("periodic WAL sync failed", "err", err)
		}
	}
}

// Metrics returns a snapshot of the store's counters and Pebble's state.
// After Close the Pebble figures are zero.
func (s *Store) Metrics() Metrics {
	m := Metrics{
		Records:           s.count.Load(),
		Applies:           s.counters.applies.Load(),
		StaleApplies:      s.counters.staleApplies.Load(),
		DeadDropped:       s.counters.deadDropped.Load(),
		Expired:           s.counters.expired.Load(),
		GCPurged:          s.counters.gcPurged.Load(),
		StaleIndexEntries: s.counters.staleIndex.Load(),
		SyncErrors:        s.counters.syncErrors.Load(),

		BackgroundJobsLowered: s.counters.bgLowered.Load(),
		BackgroundLowerErrors: s.counters.bgLowerErrors.Load(),
	}
	if s.rows != nil {
		m.RowCacheComplete = s.rows.complete.Load()
		m.RowCacheHits, m.RowCacheMisses = s.rows.hitsMisses()
		m.RowCacheEvictions = s.rows.evictions.Load()
	}
	if err := s.acquire(); err != nil {
		return m
	}
	defer s.release()
	pm := s.db.Metrics()
	m.DiskUsageBytes = pm.DiskSpaceUsage()
	m.MemTableBytes = pm.MemTable.Size
	m.BlockCacheBytes = pm.BlockCache.Size
	m.BlockCacheHits = pm.BlockCache.Hits
	m.BlockCacheMisses = pm.BlockCache.Misses
	m.Flushes = pm.Flush.Count
	m.Compactions = pm.Compact.Count
	m.CompactionDebt = pm.Compact.EstimatedDebt
	m.ReadAmp = pm.ReadAmp()
	return m
}

// Close waits for calls in flight, stops the background goroutines, fsyncs
// the WAL and closes Pebble. Calls made afterwards, and a second Close, return
// ErrClosed. It must not be called from an OnApply hook or an iteration
// callback.
func (s *Store) Close() error {
	if !s.gate.close() {
		return ErrClosed
	}
	// The loops get ErrClosed from here on, or see stop.
	close(s.stop)
	s.wg.Wait()
	if s.collector != nil {
		s.opts.Registerer.Unregister(s.collector)
	}

	// No call is in flight and none can start, so db is ours alone.
	err := s.syncWAL()
	if cerr := s.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("storage: close pebble: %w", cerr))
	}
	s.cache.Unref()
	s.log.Info("storage closed")
	return err
}
