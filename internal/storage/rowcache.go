package storage

import (
	"sync"
	"sync/atomic"

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

// rowEntryOverhead approximates a cached entry's bookkeeping (map slot,
// strings, record header) so the budget tracks real memory, not just payload.
const rowEntryOverhead = 96

// rowCache maps a record's Pebble key to its decoded record. It is
// write-through: the store updates it under the key's lock after every commit
// that changes the record, and fills it on a read miss under the same lock, so
// an entry is never older than the record on disk. Cached Values are shared by
// every reader and must never be modified.
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
	hits      atomic.Uint64
	misses    atomic.Uint64
	evictions atomic.Uint64
}

type rowShard struct {
	mu    sync.RWMutex
	m     map[string]record.Record
	bytes int64
}

func newRowCache(size int64) *rowCache {
	if size <= 0 {
		return nil
	}
	c := &rowCache{maxShard: max(size/rowCacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]record.Record)
	}
	return c
}

func (c *rowCache) shard(token uint64) *rowShard {
	// The low bits pick the key lock stripe; the high bits pick the shard,
	// so one shard does not collect the keys of one stripe.
	return &c.shards[token>>56]
}

func entrySize(rk []byte, rec *record.Record) int64 {
	return int64(len(rk) + len(rec.Value) + len(rec.Version.Node) + rowEntryOverhead)
}

// get returns the cached record for rk; a nil cache never hits.
func (c *rowCache) get(token uint64, rk []byte) (record.Record, bool) {
	if c == nil {
		return record.Record{}, false
	}
	sh := c.shard(token)
	sh.mu.RLock()
	rec, ok := sh.m[string(rk)]
	sh.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return rec, ok
}

// put stores rec, which the cache now owns, evicting random entries of the
// shard while it is over budget. The caller holds rk's key lock.
func (c *rowCache) put(token uint64, rk []byte, rec record.Record) {
	if c == nil {
		return
	}
	size := entrySize(rk, &rec)
	if size > c.maxShard {
		c.complete.Store(false)
		c.del(token, rk)
		return
	}
	sh := c.shard(token)
	sh.mu.Lock()
	if old, ok := sh.m[string(rk)]; ok {
		sh.bytes -= entrySize(rk, &old)
	}
	sh.m[string(rk)] = rec
	sh.bytes += size
	if sh.bytes > c.maxShard {
		c.evict(sh, rk)
	}
	sh.mu.Unlock()
}

// evict drops random entries of sh, except keep, until it is within budget.
// The caller holds sh.mu. It is apart from put because starting a map
// iteration costs a few percent of a write even when nothing is evicted.
func (c *rowCache) evict(sh *rowShard, keep []byte) {
	// Before any entry leaves the map: a reader that misses it must then
	// see the cache incomplete and go to Pebble.
	c.complete.Store(false)
	// Go randomises map iteration, so this evicts random entries: cheap,
	// and no worse than LRU for the uniform and zipfian loads measured.
	for k, v := range sh.m {
		if sh.bytes <= c.maxShard {
			break
		}
		if k == string(keep) {
			continue
		}
		sh.bytes -= int64(len(k)+len(v.Value)+len(v.Version.Node)) + rowEntryOverhead
		delete(sh.m, k)
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
	if old, ok := sh.m[string(rk)]; ok {
		sh.bytes -= entrySize(rk, &old)
		delete(sh.m, string(rk))
	}
	sh.mu.Unlock()
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
	rec, found, err := s.readRecord(rk)
	if err == nil && found {
		s.rows.put(token, rk, rec)
	}
	return rec, found, err
}

// cacheWrite records in the row cache what a committed batch did to rk.
func (s *Store) cacheWrite(token uint64, rk []byte, rec *record.Record) {
	if rec == nil {
		s.rows.del(token, rk)
		return
	}
	s.rows.put(token, rk, rec.Clone())
}
