package storage

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// DefaultRowCacheSize bounds the row cache. Every write reads its key first
// (apply-if-newer) and Pebble's memtable lookup is a skiplist seek that misses
// the CPU cache at every level: the profile of a single node under
// redis-benchmark spent over half its time there. A hash map of recent
// records answers both reads and the read-before-write in O(1), as Cassandra's
// row cache does for hot partitions.
const DefaultRowCacheSize = 256 << 20

const rowCacheShards = 256

// rowEntryOverhead approximates a cached entry's bookkeeping (map slot and
// allocation header) so the budget tracks real memory, not just payload.
const rowEntryOverhead = 80

// maxInternedNodes bounds the table of version node ids. A cluster has a
// handful; a record whose node id would overflow the table is not cached.
const maxInternedNodes = 1 << 16

// rowCache maps a record's token to its record. It is write-through: the
// store updates it under the key's lock after every commit that changes the
// record, and fills it on a read miss under the same lock, so an entry is
// never older than the record on disk. Cached Values are shared by every
// reader and must never be modified.
//
// An entry is keyed by the key's 64-bit ring token, not by the key, and holds
// the Pebble key and the value in one allocation, with the version's node id
// interned: a map of a million string keys, each pointing at its key, value
// and node id, cost a GET three cache misses and the garbage collector three
// objects to mark per record, which together were a third of a cached GET's
// CPU. Two keys can share a token; the entry then holds one of them, and the
// cache stops being complete (below) before the other leaves it.
//
// While every stored record is in the cache, the cache is complete and a miss
// is a definite absence: neither a read of a missing key nor the
// read-before-write of a new key touches Pebble, whose memtable seek and
// per-level filter probes were 40% of a write's CPU. A store that opens empty,
// or whose records all fit while Open counts them, starts complete; the first
// eviction ends it for the life of the process.
type rowCache struct {
	shards    [rowCacheShards]rowShard
	maxShard  int64
	complete  atomic.Bool
	evictions atomic.Uint64
	nodes     nodeTable
}

type rowShard struct {
	mu     sync.RWMutex
	m      map[uint64]rowEntry
	bytes  int64
	hits   atomic.Uint64
	misses atomic.Uint64
	// Shards sit next to each other in an array; padding keeps two cores
	// working on neighbouring shards from sharing a cache line.
	_ [64]byte
}

// rowEntry is one cached record. buf holds the Pebble key (klen bytes) and
// then the value.
type rowEntry struct {
	buf       []byte
	ts        clock.Timestamp
	expireAt  int64
	klen      uint32
	node      uint32
	tombstone bool
}

func (e *rowEntry) size() int64 { return int64(len(e.buf)) + rowEntryOverhead }

func (e *rowEntry) is(rk []byte) bool { return bytes.Equal(e.buf[:e.klen], rk) }

func newRowCache(size int64) *rowCache {
	if size <= 0 {
		return nil
	}
	c := &rowCache{maxShard: max(size/rowCacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]rowEntry)
	}
	c.nodes.init()
	return c
}

func (c *rowCache) shard(token uint64) *rowShard {
	// The low bits pick the key lock stripe; the high bits pick the shard,
	// so one shard does not collect the keys of one stripe.
	return &c.shards[token>>56]
}

// get returns the cached record for rk; a nil cache never hits.
func (c *rowCache) get(token uint64, rk []byte) (record.Record, bool) {
	if c == nil {
		return record.Record{}, false
	}
	sh := c.shard(token)
	sh.mu.RLock()
	e, ok := sh.m[token]
	sh.mu.RUnlock()
	if !ok || !e.is(rk) {
		sh.misses.Add(1)
		return record.Record{}, false
	}
	sh.hits.Add(1)
	rec := record.Record{
		Version:   record.Version{TS: e.ts, Node: c.nodes.name(e.node)},
		ExpireAt:  e.expireAt,
		Tombstone: e.tombstone,
	}
	if len(e.buf) > int(e.klen) {
		rec.Value = e.buf[e.klen:len(e.buf):len(e.buf)]
	}
	return rec, true
}

// put caches a copy of rec for rk, evicting random entries of the shard while
// it is over budget. The caller holds rk's key lock.
func (c *rowCache) put(token uint64, rk []byte, rec *record.Record) {
	if c == nil {
		return
	}
	node, ok := c.nodes.intern(rec.Version.Node)
	size := int64(len(rk)+len(rec.Value)) + rowEntryOverhead
	if !ok || size > c.maxShard {
		c.complete.Store(false)
		c.del(token, rk)
		return
	}
	buf := make([]byte, len(rk)+len(rec.Value))
	copy(buf, rk)
	copy(buf[len(rk):], rec.Value)
	e := rowEntry{buf: buf, ts: rec.Version.TS, expireAt: rec.ExpireAt, klen: uint32(len(rk)), node: node, tombstone: rec.Tombstone}
	sh := c.shard(token)
	sh.mu.Lock()
	if old, ok := sh.m[token]; ok {
		if !old.is(rk) {
			// Another key with this token leaves the cache: from now on a
			// miss proves nothing.
			c.complete.Store(false)
			c.evictions.Add(1)
		}
		sh.bytes -= old.size()
	}
	sh.m[token] = e
	sh.bytes += e.size()
	if sh.bytes > c.maxShard {
		c.evict(sh, token)
	}
	sh.mu.Unlock()
}

// evict drops random entries of sh, except keep's, until it is within
// budget. The caller holds sh.mu. It is apart from put because starting a map
// iteration costs a few percent of a write even when nothing is evicted.
func (c *rowCache) evict(sh *rowShard, keep uint64) {
	// Before any entry leaves the map: a reader that misses it must then
	// see the cache incomplete and go to Pebble.
	c.complete.Store(false)
	// Go randomises map iteration, so this evicts random entries: cheap,
	// and no worse than LRU for the uniform and zipfian loads measured.
	for token, e := range sh.m {
		if sh.bytes <= c.maxShard {
			break
		}
		if token == keep {
			continue
		}
		sh.bytes -= e.size()
		delete(sh.m, token)
		c.evictions.Add(1)
	}
}

// absent reports whether a miss for a key proves it is not stored.
func (c *rowCache) absent() bool { return c != nil && c.complete.Load() }

// del drops rk, whose record is gone from the store or about to be read back
// from Pebble. The caller holds rk's key lock.
func (c *rowCache) del(token uint64, rk []byte) {
	if c == nil {
		return
	}
	sh := c.shard(token)
	sh.mu.Lock()
	if old, ok := sh.m[token]; ok && old.is(rk) {
		sh.bytes -= old.size()
		delete(sh.m, token)
	}
	sh.mu.Unlock()
}

// hitsMisses sums the shards' counters.
func (c *rowCache) hitsMisses() (hits, misses uint64) {
	for i := range c.shards {
		hits += c.shards[i].hits.Load()
		misses += c.shards[i].misses.Load()
	}
	return hits, misses
}

// nodeTable interns the node ids of versions, so a cached entry holds a
// small index instead of a string. Readers load an immutable slice; the
// rare new id copies it under mu.
type nodeTable struct {
	mu    sync.Mutex
	ids   map[string]uint32
	names atomic.Pointer[[]string]
}

func (t *nodeTable) init() {
	t.ids = make(map[string]uint32)
	t.names.Store(&[]string{})
}

func (t *nodeTable) name(i uint32) string { return (*t.names.Load())[i] }

// intern returns id's index, adding it if the table has room.
func (t *nodeTable) intern(id string) (uint32, bool) {
	// The common case, a known id, needs no lock: the slice only grows and
	// is replaced, never modified.
	names := *t.names.Load()
	for i, n := range names {
		if n == id {
			return uint32(i), true
		}
		if i >= 8 {
			break
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.ids[id]; ok {
		return i, true
	}
	names = *t.names.Load()
	if len(names) >= maxInternedNodes {
		return 0, false
	}
	i := uint32(len(names))
	grown := append(names[:len(names):len(names)], id)
	t.ids[id] = i
	t.names.Store(&grown)
	return i, true
}

// readCached returns the record at rk from the row cache, or reads it from
// Pebble and caches it. The caller holds rk's key lock, so no apply can slip
// between the read and the fill.
func (s *Store) readCached(token uint64, rk []byte) (record.Record, bool, error) {
	if rec, ok := s.rows.get(token, rk); ok {
		return rec, true, nil
	}
	if s.rows.absent() {
		return record.Record{}, false, nil
	}
	// A copy for Pebble, so that callers may pass a key on their stack.
	rec, found, err := s.readRecord(bytes.Clone(rk))
	if err == nil && found {
		s.rows.put(token, rk, &rec)
	}
	return rec, found, err
}

// cacheWrite records in the row cache what a committed batch did to rk.
func (s *Store) cacheWrite(token uint64, rk []byte, rec *record.Record) {
	if rec == nil {
		s.rows.del(token, rk)
		return
	}
	s.rows.put(token, rk, rec)
}
