package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage/applog"
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
	// ErrOutOfMemory refuses a write of new data while the store holds
	// more than Options.MaxMemory. Its text is Redis' own, which the RESP
	// layer replies as is (with the OOM prefix) so clients that know
	// Redis' maxmemory error recognise it.
	ErrOutOfMemory = errors.New("command not allowed when used memory > 'maxmemory'.") //nolint:revive,staticcheck // Redis' own text, period included
)

// Defaults for Options fields left zero.
const (
	// DefaultGCGrace is design §2's gc-grace, and the --gc-grace default
	// (package config takes it from here): long enough that every hint and
	// anti-entropy round that could carry an older copy has run, so the
	// default 3 h hint window plus an hour.
	DefaultGCGrace = 4 * time.Hour
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
	// DefaultLogCompactMinBytes keeps a small store from rewriting its log
	// over and over: below it the log's garbage costs less than the work.
	DefaultLogCompactMinBytes = 64 << 20
	// DefaultLogCompactBytesPerSec throttles a compaction's snapshot so
	// that its writes leave the disk to the log's appends and fsyncs.
	DefaultLogCompactBytesPerSec = 64 << 20
)

// Options configures a Store.
type Options struct {
	// Engine is EngineMemory (the default when empty) or EnginePebble.
	Engine string
	// Dir is the data directory. With InMemory it only names the store.
	Dir string
	// InMemory keeps everything in an in-memory filesystem (demo, tests):
	// nothing survives the process.
	InMemory bool
	// FS overrides the filesystem, for crash and fault tests; it wins over
	// InMemory.
	FS vfs.FS
	// MaxMemory, when positive, bounds the memory the data may hold (the
	// memory engine's index and records; Pebble's memtables and caches):
	// past it, writes of live data fail with ErrOutOfMemory while deletes
	// and reads keep working, as Redis' maxmemory with noeviction.
	MaxMemory int64
	// Salvage lets the memory engine open a log with a corrupt file: the
	// valid entries before the corruption are kept and the file is renamed
	// aside (see Salvaged). Without it a corrupt log fails Open with an
	// error that errors.As finds an *applog.CorruptError in.
	Salvage bool
	// LogCompactMinBytes is the log size below which the memory engine
	// never compacts its log; default DefaultLogCompactMinBytes.
	LogCompactMinBytes int64
	// LogCompactBytesPerSec throttles the writing of a compaction
	// snapshot; default DefaultLogCompactBytesPerSec, negative unlimited.
	LogCompactBytesPerSec int64
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
	// record has a zero Version). old's Value may be nil: ApplyBatch reads
	// only what a write needs of the record it replaces. The records come by value: pointers handed
	// to a hook escape, and cost every Apply two allocations. Calls for one key are
	// ordered, since they run under its key lock; calls for different keys
	// run concurrently. key, old and new are only valid during the call, and
	// OnApply must not call back into the Store's write path for the same key,
	// nor scan it (a scan waits for every OnApply call in progress).
	OnApply func(token uint64, key []byte, old, new record.Record)
	// OnPrefetch, when set, is called by ApplyBatch with its writes' tokens
	// before it applies them, so that what OnApply will touch for them can be
	// brought into cache while the batch's own lookups run. It must only read.
	OnPrefetch func(tokens []uint64)
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

	// inMemoryFS is set by Open when it made FS for InMemory.
	inMemoryFS bool
}

// Guarded is what Options.Guard is told about a write.
type Guarded struct {
	// TS is the write's version timestamp.
	TS clock.Timestamp
	// Tombstone is true for a delete.
	Tombstone bool
	// Bytes is the key's and the value's length together.
	Bytes int
	// KeyBytes is the key's length alone, so a guard can hold a write from
	// a peer to the key and value limits a client write meets.
	KeyBytes int
}

// fs returns the filesystem the store lives on once Open has resolved it.
func (o *Options) fs() vfs.FS {
	if o.FS == nil {
		return vfs.Default
	}
	return o.FS
}

func (o *Options) dir() string { return o.Dir }

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
	opts Options
	log  *slog.Logger
	eng  engine

	// gate admits every call that touches the engine; Close shuts it first.
	gate *gate

	keyLocks [keyLockStripes]sync.Mutex
	// snapshotMu is read-held from a change's commit to its OnApply call,
	// and held while ScanRange takes its snapshot (see there).
	snapshotMu sync.RWMutex
	// expiryMu serialises expiry passes (background and ExpireNow) so two
	// passes never race over the same index entries.
	expiryMu sync.Mutex

	count atomic.Int64
	// expiring counts the stored values with an expiry (Expiring).
	expiring atomic.Int64
	counters counters
	// barrier is the flush barrier (barrier.go), a clock.Timestamp;
	// barrierMu orders its raises.
	barrier   atomic.Uint64
	barrierMu sync.Mutex
	// memUsed is the engine's memoryUsed as memoryLoop last read it: the
	// engines sum it over shards, too dear for every write to ask.
	memUsed   atomic.Int64
	collector *collector
	disk      diskUsage

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (creating if needed) the store described by opts, rebuilds the
// record count, and starts the expiry cycle and, with SyncPeriodic, the
// syncer.
func Open(opts Options) (*Store, error) {
	if opts.Engine == "" {
		opts.Engine = EngineMemory
	}
	if opts.GCGrace == 0 {
		opts.GCGrace = DefaultGCGrace
	}
	if opts.GCGrace < 0 {
		return nil, fmt.Errorf("storage: negative GCGrace %v", opts.GCGrace)
	}
	if opts.MaxMemory < 0 {
		return nil, fmt.Errorf("storage: negative MaxMemory %d", opts.MaxMemory)
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
	if opts.Dir == "" && !opts.InMemory && opts.FS == nil {
		return nil, errors.New("storage: Options.Dir is required")
	}
	if opts.FS == nil && opts.InMemory {
		// Resolved once, so that every engine and helper sees the same
		// filesystem.
		opts.FS = vfs.NewMem()
		opts.inMemoryFS = true
	}
	if opts.Dir == "" {
		opts.Dir = "ringkv"
	}
	if opts.inMemoryFS {
		// MemFS does not clean paths: "./d" and "d" would be two names.
		opts.Dir = filepath.Clean(opts.Dir)
		// An in-memory filesystem starts empty: without the directory,
		// opening its files fails (issue 29: "open ringkv-data/LOCK").
		if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("storage: create %s in memory: %w", opts.Dir, err)
		}
	}

	log := opts.Logger
	s := &Store{
		opts: opts,
		log:  log,
		stop: make(chan struct{}),
		gate: newGate(),
	}
	eng, err := newEngine(&s.opts, &s.counters)
	if err != nil {
		return nil, err
	}
	s.eng = eng
	if s.opts.FS == nil {
		// On the real disk: the data directory's footprint is measurable.
		s.disk.dir = s.opts.Dir
	}
	n := eng.count()
	s.count.Store(n)
	s.expiring.Store(eng.expiring())
	if err := s.loadBarrier(); err != nil {
		_ = eng.close()
		return nil, err
	}

	if opts.Registerer != nil {
		s.collector = newCollector(s)
		if err := opts.Registerer.Register(s.collector); err != nil {
			_ = eng.close()
			return nil, fmt.Errorf("storage: register metrics: %w", err)
		}
	}

	if opts.ExpiryInterval > 0 {
		s.wg.Go(s.expiryLoop)
	}
	if opts.Sync == SyncPeriodic {
		s.wg.Go(s.syncLoop)
	}
	if opts.MaxMemory > 0 {
		s.memUsed.Store(eng.memoryUsed())
		s.wg.Go(s.memoryLoop)
	}
	if me, ok := eng.(*memEngine); ok {
		s.wg.Go(func() { me.compactLoop(s.stop) })
	}
	if s.barrier.Load() != 0 {
		// A purge cut short by a crash or a stop is finished now.
		s.wg.Go(func() {
			if _, err := s.PurgeBelowBarrier(); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("purge below the flush barrier failed", "err", err)
			}
		})
	}
	log.Info("storage opened", "engine", opts.Engine, "dir", opts.Dir, "in_memory", opts.InMemory,
		"sync", opts.Sync.String(), "records", n)
	return s, nil
}

// Engine returns the name of the engine the store runs on.
func (s *Store) Engine() string { return s.opts.Engine }

// acquire admits a call that touches the engine; it must be paired with
// release when it returns nil.
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

// PrefetchTokens warms the CPU cache for reads or applies of keys that are
// about to follow, as the GETs or SETs of one pipeline do: it overlaps the
// cache misses of their lookups, which one Get or Apply after another take
// in turn. It takes the keys' tokens (ring.Token), which a coordinator holds
// already and which must be taken apart from the lookups anyway: with a hash
// between them the lookups overlapped far less (224-237 ns a lookup in the
// row cache, against 150 ns). It changes nothing and may be skipped; it is
// worth calling for a handful of keys or more.
func (s *Store) PrefetchTokens(tokens []uint64) {
	if len(tokens) > 1 && !s.gate.closing() {
		s.eng.prefetch(tokens)
	}
}

// Get returns key's stored record, tombstones and expired records included:
// callers resolve them with rec.Live(now), so that read resolution and repair
// still see the version that makes a key dead. The Value may be kept but never
// modified: it can be shared with a cache and other readers.
func (s *Store) Get(key []byte) (rec record.Record, found bool, err error) {
	return s.GetAt(ring.Token(key), key)
}

// GetAt is Get for a caller that holds key's token, ring.Token(key).
func (s *Store) GetAt(token uint64, key []byte) (rec record.Record, found bool, err error) {
	if pe, ok := s.eng.(*pebbleEngine); ok {
		return s.getPebble(pe, token, key)
	}
	if err := s.acquire(); err != nil {
		return record.Record{}, false, err
	}
	defer s.release()
	return s.flushed(s.eng.get(token, key))
}

// flushed hides a record below the flush barrier from a read, which sees
// the key as absent.
func (s *Store) flushed(rec record.Record, found bool, err error) (record.Record, bool, error) {
	if found && s.belowBarrier(&rec) {
		return record.Record{}, false, err
	}
	return rec, found, err
}

// getPebble is Get on the Pebble engine. A read that the row cache answers,
// hit or definite absence, touches no Pebble state, so it does not enter
// the gate: entering and leaving it are two atomic writes to one cache line
// that every core's calls share, 3.6% of a single node's CPU under a
// pipelined GET load. (The memory engine's index is unmapped at Close, so
// its reads always enter.)
func (s *Store) getPebble(pe *pebbleEngine, token uint64, key []byte) (record.Record, bool, error) {
	if s.gate.closing() {
		return record.Record{}, false, ErrClosed
	}
	if rec, found, done := pe.cached(token, key); done {
		return s.flushed(rec, found, nil)
	}
	if err := s.acquire(); err != nil {
		return record.Record{}, false, err
	}
	defer s.release()
	if pe.rows != nil {
		mu := s.keyLock(token)
		mu.Lock()
		defer mu.Unlock()
	}
	return s.flushed(pe.get(token, key))
}

// deadline returns when rec must next change by itself (0 for never): a live
// record with an expiry at ExpireAt, a tombstone at its death time plus
// GCGrace. See the package comment for why the death time is the later of the
// write and the expiry.
func (s *Store) deadline(rec *record.Record) int64 {
	return deadlineOf(rec, s.opts.GCGrace.Milliseconds())
}

// deadlineOf is Store.deadline with the grace in ms. The engines call it
// directly: a pointer handed to a function value escapes, and cost each
// write an allocation.
func deadlineOf(rec *record.Record, graceMS int64) int64 {
	if !rec.Tombstone {
		return rec.ExpireAt
	}
	death := max(rec.Version.TS.Physical(), rec.ExpireAt)
	return death + graceMS
}

// Apply stores rec for key if it wins over the stored record under
// record.Compare (or nothing is stored). It is atomic per key. With SyncAlways
// it returns after the write is fsynced, and no reader sees it before.
//
// A dead record (tombstone, or a value already past ExpireAt) is stored as a
// tombstone with the same version, so that it keeps beating older copies of the
// key until GC; if it is already past its GC deadline and nothing is stored,
// it is dropped instead (see ApplyResult.Applied).
func (s *Store) Apply(key []byte, rec record.Record) (ApplyResult, error) {
	now := s.opts.Clock.Now().UnixMilli()
	if err := s.check(key, &rec, now); err != nil {
		return ApplyResult{}, err
	}
	if err := s.acquire(); err != nil {
		return ApplyResult{}, err
	}
	defer s.release()

	token := ring.Token(key)
	mu := s.keyLock(token)
	mu.Lock()
	defer mu.Unlock()

	prev, found, err := s.eng.read(token, key)
	if err != nil {
		return ApplyResult{}, err
	}
	res := ApplyResult{Prev: prev, PrevFound: found}
	if !s.admit(&rec, &prev, found, now) {
		return res, nil
	}
	cs := [1]change{{token: token, key: key, rec: &rec, prev: &prev, found: found}}
	s.beginNotify()
	defer s.endNotify()
	if err := s.write(cs[:], true); err != nil {
		return ApplyResult{}, err
	}
	s.applied(token, key, &rec, &prev, found)
	res.Applied = true
	return res, nil
}

// check refuses a write that is invalid, that Options.Guard turns away, or
// that adds data past Options.MaxMemory.
func (s *Store) check(key []byte, rec *record.Record, now int64) error {
	if err := validWrite(key, rec); err != nil {
		return err
	}
	if g := s.opts.Guard; g != nil {
		if err := g(Guarded{TS: rec.Version.TS, Tombstone: rec.Tombstone, Bytes: len(key) + len(rec.Value), KeyBytes: len(key)}); err != nil {
			return err
		}
	}
	if s.opts.MaxMemory > 0 && rec.Live(now) && s.memUsed.Load() > s.opts.MaxMemory {
		// Deletes (and writes already dead, stored as tombstones) still
		// pass: they are how an operator makes room.
		s.counters.oomRefused.Add(1)
		return ErrOutOfMemory
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
// its tombstone first, as it is to be stored; a counter of the stored
// counter's incarnation is rewritten as the merge of the two.
func (s *Store) admit(rec, prev *record.Record, found bool, now int64) bool {
	if s.belowBarrier(rec) {
		// Dead by FLUSHALL, whichever path brought it: it is as if
		// applied and purged at once.
		s.counters.flushDropped.Add(1)
		return false
	}
	if found && s.belowBarrier(prev) {
		// What FLUSHALL killed and the purge has not yet removed is
		// nothing to merge with or lose to.
		found = false
	}
	if !rec.Live(now) {
		rec.Tombstone = true
		rec.Value = nil
		rec.Counter = nil
	}
	if found && record.Mergeable(rec, prev) {
		// Two states of one counter: the join is stored, whichever
		// version is newer, so no replica's increments are lost. A join
		// that adds nothing to prev is a stale write.
		m := record.Merge(rec, prev)
		if record.Equal(&m, prev) {
			s.counters.staleApplies.Add(1)
			return false
		}
		*rec = m
		return true
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

// applied does what follows the write of an admitted change: the counters
// and the OnApply hook, inside beginNotify.
func (s *Store) applied(token uint64, key []byte, rec, prev *record.Record, found bool) {
	s.counters.applies.Add(1)
	if !found {
		s.count.Add(1)
	}
	if d := expiringDelta(rec, prev, found); d != 0 {
		// Most writes leave the count alone: skip the shared cache line.
		s.expiring.Add(d)
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

	// The snapshot (each of the engine's consistent views) is taken while
	// no change is between its commit and its OnApply call, so it holds
	// exactly the changes OnApply has reported: what the anti-entropy
	// tree's rebuild needs to merge a scan with the updates that race it.
	err := s.eng.scan(from, to, &s.snapshotMu, fn)
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// ApproxCount estimates the number of stored records, tombstones included, in
// O(1). It is exact while the process runs; it is an estimate only because
// callers read it without any lock while writes land.
func (s *Store) ApproxCount() int64 { return s.count.Load() }

// Expiring counts the stored values that have an expiry, as INFO's keyspace
// "expires" reports them: exact for this store, it moves with every write,
// expiry and purge.
func (s *Store) Expiring() int64 { return s.expiring.Load() }

// expiringDelta is how a write of rec over prev (if found) changes Expiring.
func expiringDelta(rec, prev *record.Record, found bool) int64 {
	var d int64
	if !rec.Tombstone && rec.ExpireAt != 0 {
		d++
	}
	if found && !prev.Tombstone && prev.ExpireAt != 0 {
		d--
	}
	return d
}

// Flush fsyncs the log now, making every write applied so far durable.
func (s *Store) Flush() error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	return s.eng.flush()
}

// memoryCheckInterval bounds how long writes may go on past MaxMemory
// before they are refused: at 1M writes/s of 100 bytes, 10 ms is about a
// megabyte.
const memoryCheckInterval = 10 * time.Millisecond

// memoryLoop refreshes memUsed for MaxMemory's check.
func (s *Store) memoryLoop() {
	t := time.NewTicker(memoryCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.acquire() != nil {
			return
		}
		s.memUsed.Store(s.eng.memoryUsed())
		s.release()
	}
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

// Metrics returns a snapshot of the store's counters and the engine's
// state. After Close the engine's figures are zero.
func (s *Store) Metrics() Metrics {
	m := Metrics{
		Engine:            s.opts.Engine,
		Records:           s.count.Load(),
		Applies:           s.counters.applies.Load(),
		StaleApplies:      s.counters.staleApplies.Load(),
		DeadDropped:       s.counters.deadDropped.Load(),
		Expired:           s.counters.expired.Load(),
		GCPurged:          s.counters.gcPurged.Load(),
		StaleIndexEntries: s.counters.staleIndex.Load(),
		SyncErrors:        s.counters.syncErrors.Load(),
		FlushPurged:       s.counters.flushPurged.Load(),
		FlushDropped:      s.counters.flushDropped.Load(),
		OOMRefused:        s.counters.oomRefused.Load(),
		MaxMemoryBytes:    s.opts.MaxMemory,

		BackgroundJobsLowered: s.counters.bgLowered.Load(),
		BackgroundLowerErrors: s.counters.bgLowerErrors.Load(),
	}
	if err := s.acquire(); err != nil {
		return m
	}
	defer s.release()
	s.eng.metrics(&m)
	m.DiskUsageBytes = uint64(s.disk.bytes())
	return m
}

// Close waits for calls in flight, stops the background goroutines, makes
// every write durable and closes the engine. Calls made afterwards, and a
// second Close, return ErrClosed. It must not be called from an OnApply hook
// or an iteration callback.
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
	// No call is in flight and none can start: the engine is ours alone.
	err := s.eng.close()
	s.log.Info("storage closed")
	return err
}

// Salvaged reports what the memory engine's log set aside at Open with
// Options.Salvage: the corrupt files renamed, and where their valid
// entries ended. It is empty for a clean log and for the Pebble engine.
func (s *Store) Salvaged() []applog.SalvageReport {
	if me, ok := s.eng.(*memEngine); ok {
		return me.salvaged()
	}
	return nil
}
