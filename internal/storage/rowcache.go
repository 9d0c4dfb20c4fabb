package storage

import (
	"bytes"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"unsafe"

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

// rowEntryOverhead approximates a cached entry's bookkeeping (its header, its
// share of the table's slots, allocation rounding) so the budget tracks real
// memory, not just payload.
const rowEntryOverhead = 96

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

// A shard is an open-addressing table of pointers to entries. Readers take
// no lock: they load the table and probe it with atomic loads. Writers hold
// mu. A Go map behind a read lock cost a lookup three dependent cache misses
// (the map's control word, its 56-byte slot, the entry's key) and was 42% of a
// single node's CPU under a pipelined GET load; here a lookup touches one slot
// and one allocation that holds the entry's header, key and value. A
// throwaway benchmark of 1M random lookups: 456-482 ns for the map, 288-297 ns
// for this layout (docs/performance.md).
//
// Each slot carries its entry's token beside the pointer, so a probe that
// passes other entries compares tokens in the slots' cache lines and follows
// a pointer only to the entry it wants. With the token only in the entry, a
// table up to three quarters full cost a hit one entry miss per slot it
// passed (about 1.5 on average) and a miss, the read-before-write of every
// new key, several.
//
// An entry never moves within a table, and a table is never written after a
// resize has replaced it. So a reader that finds no entry for a token saw a
// moment when there was none, and a reader still on a replaced table overlaps
// the writes that follow the replacement: either way what it returns was the
// cache's content at some instant during its call.
type rowShard struct {
	mu    sync.Mutex
	tab   atomic.Pointer[rowTable]
	live  int // entries in tab; under mu
	dead  int // deleted-entry markers in tab; under mu
	bytes int64
	// Readers bump one of these per lookup. Padding keeps two cores working
	// on neighbouring shards from sharing a cache line.
	hits   atomic.Uint64
	misses atomic.Uint64
	_      [64]byte
}

type rowTable struct {
	slots []rowSlot
	mask  uint64
}

// rowSlot is one slot of a table. tag is the token of the entry e points to;
// it is meaningful only while e is an entry, not nil or deletedEntry. A writer
// stores tag before e, so a reader that loads an entry from e then loads a
// tag at least as new, and one that finds tag equal to its token still
// checks the entry's own token: a slot reused while it was being read gives
// a miss, never the wrong entry.
type rowSlot struct {
	tag atomic.Uint64
	e   atomic.Pointer[rowEntry]
}

// set publishes e, whose token is tag, in the slot.
func (s *rowSlot) set(tag uint64, e *rowEntry) {
	s.tag.Store(tag)
	s.e.Store(e)
}

// deletedEntry marks a slot whose entry was removed: probes go on past it, so
// the entries after it in a probe sequence stay reachable.
var deletedEntry = new(rowEntry)

const minRowTable = 16

// rowEntry is the header of one cached record, at the start of a single
// allocation that continues with the Pebble key (klen bytes) and the value
// (vlen bytes), then a counter's state (clen bytes); newRowEntry builds one. The allocation holds no pointers, so
// the garbage collector does not scan it. Immutable once published.
type rowEntry struct {
	token     uint64
	ts        clock.Timestamp
	expireAt  int64
	klen      uint32
	vlen      uint32
	node      uint32
	clen      uint16 // in the header's padding: a bigger state is not cached
	tombstone bool
}

const rowEntryHeader = int(unsafe.Sizeof(rowEntry{}))

func newRowEntry(token uint64, rk []byte, rec *record.Record, node uint32) *rowEntry {
	// At least 16 bytes, so the allocator aligns it for the header's words.
	buf := make([]byte, rowEntryHeader+len(rk)+len(rec.Value)+len(rec.Counter))
	e := (*rowEntry)(unsafe.Pointer(unsafe.SliceData(buf)))
	*e = rowEntry{token: token, ts: rec.Version.TS, expireAt: rec.ExpireAt, klen: uint32(len(rk)), vlen: uint32(len(rec.Value)),
		node: node, clen: uint16(len(rec.Counter)), tombstone: rec.Tombstone}
	copy(buf[rowEntryHeader:], rk)
	copy(buf[rowEntryHeader+len(rk):], rec.Value)
	copy(buf[rowEntryHeader+len(rk)+len(rec.Value):], rec.Counter)
	return e
}

// data returns the entry's key, value and counter bytes.
func (e *rowEntry) data() []byte {
	n := rowEntryHeader + int(e.klen) + int(e.vlen) + int(e.clen)
	return unsafe.Slice((*byte)(unsafe.Pointer(e)), n)[rowEntryHeader:n:n]
}

func (e *rowEntry) size() int64 { return int64(e.klen+e.vlen+uint32(e.clen)) + rowEntryOverhead }

func (e *rowEntry) is(token uint64, rk []byte) bool {
	return e.token == token && bytes.Equal(e.data()[:e.klen], rk)
}

func newRowCache(size int64) *rowCache {
	if size <= 0 {
		return nil
	}
	c := &rowCache{maxShard: max(size/rowCacheShards, 1)}
	for i := range c.shards {
		c.shards[i].tab.Store(newRowTable(minRowTable))
	}
	c.nodes.init()
	return c
}

func newRowTable(n int) *rowTable {
	return &rowTable{slots: make([]rowSlot, n), mask: uint64(n - 1)}
}

func (c *rowCache) shard(token uint64) *rowShard {
	// The low bits pick the key lock stripe and the slot; the high bits pick
	// the shard, so one shard does not collect the keys of one stripe.
	return &c.shards[token>>56]
}

// lookup returns token's entry in t, or nil.
func (t *rowTable) lookup(token uint64) *rowEntry {
	for i := token & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		e := s.e.Load()
		if e == nil {
			return nil
		}
		if s.tag.Load() == token && e != deletedEntry && e.token == token {
			return e
		}
	}
}

// get returns the cached record for rk; a nil cache never hits.
func (c *rowCache) get(token uint64, rk []byte) (record.Record, bool) {
	if c == nil {
		return record.Record{}, false
	}
	sh := c.shard(token)
	e := sh.tab.Load().lookup(token)
	if e == nil || !e.is(token, rk) {
		sh.misses.Add(1)
		return record.Record{}, false
	}
	sh.hits.Add(1)
	rec := record.Record{
		Version:   record.Version{TS: e.ts, Node: c.nodes.name(e.node)},
		ExpireAt:  e.expireAt,
		Tombstone: e.tombstone,
	}
	if e.vlen > 0 || e.clen > 0 {
		d := e.data()
		rec.Value = d[e.klen : e.klen+e.vlen : e.klen+e.vlen]
		if e.clen > 0 {
			rec.Counter = d[e.klen+e.vlen:]
		}
	}
	return rec, true
}

// find returns the slot of token's entry in tab (or -1) and the first free
// slot of its probe sequence, a deleted marker or the empty slot that ends
// it. The caller holds sh.mu.
func (sh *rowShard) find(t *rowTable, token uint64) (at, free int) {
	free = -1
	for i := token & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		e := s.e.Load()
		switch {
		case e == nil:
			if free < 0 {
				free = int(i)
			}
			return -1, free
		case e == deletedEntry:
			if free < 0 {
				free = int(i)
			}
		case s.tag.Load() == token:
			return int(i), free
		}
	}
}

// remove drops the entry at slot i of the current table. The caller holds
// sh.mu.
func (sh *rowShard) remove(t *rowTable, i int, e *rowEntry) {
	t.slots[i].e.Store(deletedEntry)
	sh.live--
	sh.dead++
	sh.bytes -= e.size()
}

// grow makes room for one more entry: a table at most three quarters full,
// counting deleted markers, which a rebuild drops. The caller holds sh.mu.
func (sh *rowShard) grow() *rowTable {
	t := sh.tab.Load()
	n := len(t.slots)
	if (sh.live+sh.dead+1)*4 <= n*3 {
		return t
	}
	if (sh.live+1)*2 > n {
		n *= 2
	}
	nt := newRowTable(n)
	for i := range t.slots {
		s := &t.slots[i]
		e := s.e.Load()
		if e == nil || e == deletedEntry {
			continue
		}
		tag := s.tag.Load()
		for j := tag & nt.mask; ; j = (j + 1) & nt.mask {
			if nt.slots[j].e.Load() == nil {
				nt.slots[j].set(tag, e)
				break
			}
		}
	}
	// Published whole: readers see the old table or the complete new one.
	sh.tab.Store(nt)
	sh.dead = 0
	return nt
}

// put caches a copy of rec for rk, evicting random entries of the shard while
// it is over budget. The caller holds rk's key lock.
func (c *rowCache) put(token uint64, rk []byte, rec *record.Record) {
	if c == nil {
		return
	}
	node, ok := c.nodes.intern(rec.Version.Node)
	size := int64(len(rk)+len(rec.Value)+len(rec.Counter)) + rowEntryOverhead
	if !ok || size > c.maxShard || len(rec.Counter) > math.MaxUint16 {
		c.complete.Store(false)
		c.del(token, rk)
		return
	}
	e := newRowEntry(token, rk, rec, node)
	sh := c.shard(token)
	sh.mu.Lock()
	t := sh.grow()
	at, free := sh.find(t, token)
	if at >= 0 {
		old := t.slots[at].e.Load()
		if !old.is(token, rk) {
			// Another key with this token leaves the cache: from now on a
			// miss proves nothing.
			c.complete.Store(false)
			c.evictions.Add(1)
		}
		sh.bytes -= old.size()
		t.slots[at].e.Store(e) // the same token: the tag stands
	} else {
		if t.slots[free].e.Load() == deletedEntry {
			sh.dead--
		}
		t.slots[free].set(token, e)
		sh.live++
	}
	sh.bytes += e.size()
	if sh.bytes > c.maxShard {
		c.evict(sh, t, token)
	}
	sh.mu.Unlock()
}

// evict drops random entries of sh, except keep's, until it is within
// budget. The caller holds sh.mu.
func (c *rowCache) evict(sh *rowShard, t *rowTable, keep uint64) {
	// Before any entry leaves the table: a reader that misses it must then
	// see the cache incomplete and go to Pebble.
	c.complete.Store(false)
	// From a random slot on: cheap, and no worse than LRU for the uniform
	// and zipfian loads measured.
	n := len(t.slots)
	start := rand.IntN(n)
	for k := 0; k < n && sh.bytes > c.maxShard; k++ {
		i := (start + k) & (n - 1)
		e := t.slots[i].e.Load()
		if e == nil || e == deletedEntry || e.token == keep {
			continue
		}
		sh.remove(t, i, e)
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
	t := sh.tab.Load()
	if at, _ := sh.find(t, token); at >= 0 {
		if old := t.slots[at].e.Load(); old.is(token, rk) {
			sh.remove(t, at, old)
		}
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

// prefetch looks up the entry of each key without using it, so that the
// reads and writes that follow find its slot and entry in the CPU cache. A
// lookup is two dependent cache misses (slot, then entry), but the lookups
// of different keys are independent: in one loop the CPU overlaps their
// misses, where reads one after another wait out each in turn. 1M entries,
// batches of 16: 159-167 ns a lookup, prefetch included
// (BenchmarkRowCacheHit1MPrefetch16), against 281-292 ns without
// (BenchmarkRowCacheHit1M). It returns a value only so that the compiler
// keeps the loads.
//
//go:noinline
func (c *rowCache) prefetch(tokens []uint64) uint64 {
	if c == nil {
		return 0
	}
	var sum uint64
	for _, t := range tokens {
		if e := c.shard(t).tab.Load().lookup(t); e != nil {
			sum += uint64(e.klen)
		}
	}
	return sum
}
