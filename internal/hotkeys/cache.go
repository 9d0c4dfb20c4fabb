package hotkeys

import (
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// CacheConfig configures a Cache.
type CacheConfig struct {
	// TTL is the staleness bound; zero or negative turns the cache off.
	TTL time.Duration
	// MaxEntries bounds the number of cached keys.
	MaxEntries int
	// MaxBytes bounds the cached key and value bytes; a record larger than
	// its shard's share is never cached.
	MaxBytes int64

	Clock      clock.Clock
	Registerer prometheus.Registerer
}

// Cache defaults.
const (
	// DefaultCacheEntries: the cache is for the top keys, and the tracker
	// reports a hundred by default; room for forty times that absorbs churn.
	DefaultCacheEntries = 4096
	// DefaultCacheBytes: a few hot values of the 16 MiB maximum fit, and the
	// cache cannot grow past a small part of a node's memory.
	DefaultCacheBytes = 64 << 20
)

// cacheShards spreads the lock and the invalidation epochs: an invalidation
// discards in-flight fills of its shard only, so more shards waste fewer.
const cacheShards = 64

// Cache is the coordinator's cache of hot keys' records with a bounded
// staleness (see the package doc). A nil *Cache is a cache that is off: Get
// misses and the other methods do nothing, so callers need no checks. Safe
// for concurrent use.
type Cache struct {
	ttl    time.Duration
	clock  clock.Clock
	m      *cacheMetrics
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu         sync.Mutex
	epoch      uint64
	entries    map[string]*cacheEntry
	bytes      int64
	maxEntries int
	maxBytes   int64
}

type cacheEntry struct {
	rec   record.Record
	found bool
	born  time.Time // when the read that produced it began
}

// Ticket is taken before the read whose result is Put; it carries the read's
// start time and the shard's invalidation epoch.
type Ticket struct {
	shard uint8
	epoch uint64
	at    time.Time
	ok    bool
}

// NewCache returns a cache, or nil (off) when cfg.TTL is not positive.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.TTL <= 0 {
		return nil, nil
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultCacheEntries
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultCacheBytes
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	c := &Cache{ttl: cfg.TTL, clock: cfg.Clock}
	for i := range c.shards {
		c.shards[i] = cacheShard{
			entries:    make(map[string]*cacheEntry),
			maxEntries: max(1, cfg.MaxEntries/cacheShards),
			maxBytes:   max(1, cfg.MaxBytes/cacheShards),
		}
	}
	m, err := newCacheMetrics(cfg.Registerer, c)
	if err != nil {
		return nil, err
	}
	c.m = m
	return c, nil
}

// TTL returns the staleness bound, 0 for a cache that is off.
func (c *Cache) TTL() time.Duration {
	if c == nil {
		return 0
	}
	return c.ttl
}

func shardOf(key []byte) uint8 { return uint8(xxhash.Sum64(key) % cacheShards) }

// Get returns the cached result of a read of key (the record and whether it
// was found) if that read began less than TTL ago; hit reports whether it did.
// The record's Value is shared: the caller must not modify it.
func (c *Cache) Get(key []byte) (rec record.Record, found, hit bool) {
	if c == nil {
		return record.Record{}, false, false
	}
	s := &c.shards[shardOf(key)]
	now := c.clock.Now()
	s.mu.Lock()
	e, ok := s.entries[string(key)]
	if ok && now.Sub(e.born) >= c.ttl {
		s.removeLocked(string(key), e)
		ok = false
	}
	if ok {
		rec, found = e.rec, e.found
	}
	s.mu.Unlock()
	if !ok {
		c.m.misses.Inc()
		return record.Record{}, false, false
	}
	c.m.hits.Inc()
	return rec, found, true
}

// Ticket must be taken before the read whose result will be Put for key.
func (c *Cache) Ticket(key []byte) Ticket {
	if c == nil {
		return Ticket{}
	}
	i := shardOf(key)
	s := &c.shards[i]
	// Epoch and time are read under the lock together, so an invalidation is
	// either seen by the ticket or ordered after its time.
	s.mu.Lock()
	t := Ticket{shard: i, epoch: s.epoch, at: c.clock.Now(), ok: true}
	s.mu.Unlock()
	return t
}

// Put stores the result of a read of key that began when t was taken, unless
// a write through this node invalidated key's shard since then, or the read
// is already older than the TTL. The cache keeps rec (and its Value): the
// caller must not modify them afterwards.
func (c *Cache) Put(key []byte, t Ticket, rec record.Record, found bool) {
	if c == nil || !t.ok || t.shard != shardOf(key) {
		return
	}
	s := &c.shards[t.shard]
	size := int64(len(key) + len(rec.Value))
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.epoch != s.epoch {
		c.m.dropped.Inc()
		return
	}
	if size > s.maxBytes || c.clock.Now().Sub(t.at) >= c.ttl {
		return
	}
	if old, ok := s.entries[string(key)]; ok {
		if !old.born.Before(t.at) {
			return // A fill from a later read is already there.
		}
		s.removeLocked(string(key), old)
	}
	now := c.clock.Now()
	for len(s.entries) >= s.maxEntries || s.bytes+size > s.maxBytes {
		s.evictOneLocked(now, c.ttl)
		c.m.evictions.Inc()
	}
	s.entries[string(key)] = &cacheEntry{rec: rec, found: found, born: t.at}
	s.bytes += size
	c.m.fills.Inc()
}

// Invalidate drops key and discards fills of its shard that are in flight.
// A write through this node calls it after the write completes, whatever the
// outcome, and before answering the client.
func (c *Cache) Invalidate(key []byte) {
	if c == nil {
		return
	}
	s := &c.shards[shardOf(key)]
	s.mu.Lock()
	s.epoch++
	if e, ok := s.entries[string(key)]; ok {
		s.removeLocked(string(key), e)
	}
	s.mu.Unlock()
	c.m.invalidations.Inc()
}

// Len returns the number of cached entries and their key and value bytes,
// expired entries included until they are looked up or evicted.
func (c *Cache) Len() (entries int, bytes int64) {
	if c == nil {
		return 0, 0
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		entries += len(s.entries)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return entries, bytes
}

func (s *cacheShard) removeLocked(key string, e *cacheEntry) {
	delete(s.entries, key)
	s.bytes -= int64(len(key) + len(e.rec.Value))
}

// evictOneLocked drops an expired entry if the first few it looks at hold
// one, otherwise the oldest of those: Go's map order is random, so this is a
// sampled LRU-by-age that costs O(1).
func (s *cacheShard) evictOneLocked(now time.Time, ttl time.Duration) {
	const samples = 5
	var victim string
	var ve *cacheEntry
	n := 0
	for k, e := range s.entries {
		if now.Sub(e.born) >= ttl {
			victim, ve = k, e
			break
		}
		if ve == nil || e.born.Before(ve.born) {
			victim, ve = k, e
		}
		if n++; n == samples {
			break
		}
	}
	if ve != nil {
		s.removeLocked(victim, ve)
	}
}
