package client

import (
	"container/list"
	"sync"
	"time"
)

// nearCache keeps Get answers for at most ttl, in LRU order up to size keys.
//
// Writes by this client must never leave an older answer behind. Every write
// bumps a sequence number and records it on the key (an invalidation marker
// that replaces any cached value); a Get notes the sequence before it asks
// the cluster and may fill the cache only if no write to the key has bumped
// it since. Markers take room in the LRU like values; when one is evicted,
// its sequence goes into evictedSeq, which then holds off fills of every key
// whose read began before it: conservative, and bounded in memory.
type nearCache struct {
	size int
	ttl  time.Duration
	now  func() time.Time // a seam for tests

	mu struct {
		sync.Mutex
		seq        uint64
		evictedSeq uint64
		lru        *list.List // of *cacheEntry, most recent at front
		byKey      map[string]*list.Element
	}
}

type cacheEntry struct {
	key string
	// invalidated is the sequence of the last write to key; nonzero on a
	// marker, which holds no value.
	invalidated uint64
	value       []byte
	found       bool
	expires     time.Time
}

func newNearCache(size int, ttl time.Duration) *nearCache {
	c := &nearCache{size: size, ttl: ttl, now: time.Now}
	c.mu.lru = list.New()
	c.mu.byKey = make(map[string]*list.Element, size)
	return c
}

// get returns the cached answer for key; ok is false on a miss. found is
// false for a key the cluster said does not exist.
func (c *nearCache) get(key string) (value []byte, found, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, hit := c.mu.byKey[key]
	if !hit {
		return nil, false, false
	}
	e := el.Value.(*cacheEntry)
	if e.invalidated != 0 {
		return nil, false, false
	}
	if !c.now().Before(e.expires) {
		c.removeLocked(el)
		return nil, false, false
	}
	c.mu.lru.MoveToFront(el)
	return e.value, e.found, true
}

// fill is a read in progress that may fill the cache: the write sequence and
// the time when it began.
type fill struct {
	seq uint64
	at  time.Time
}

// begin notes a read starting; pass the result to put.
func (c *nearCache) begin() fill {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fill{seq: c.mu.seq, at: c.now()}
}

// put caches a read's answer unless a write to key began after the read did.
// The entry's lifetime counts from when the read began, not when it ended, so
// the answer it holds is never older than ttl: the cluster's state at a
// moment within the read, which began at most ttl ago.
func (c *nearCache) put(key string, value []byte, found bool, f fill) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.seq < c.mu.evictedSeq {
		return
	}
	e := &cacheEntry{key: key, value: value, found: found, expires: f.at.Add(c.ttl)}
	if el, ok := c.mu.byKey[key]; ok {
		if el.Value.(*cacheEntry).invalidated > f.seq {
			return
		}
		el.Value = e
		c.mu.lru.MoveToFront(el)
		return
	}
	c.insertLocked(e)
}

// invalidate drops keys' cached answers and holds off fills by reads that
// began before now.
func (c *nearCache) invalidate(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.seq++
	for _, k := range keys {
		if el, ok := c.mu.byKey[k]; ok {
			el.Value = &cacheEntry{key: k, invalidated: c.mu.seq}
			c.mu.lru.MoveToFront(el)
			continue
		}
		c.insertLocked(&cacheEntry{key: k, invalidated: c.mu.seq})
	}
}

func (c *nearCache) insertLocked(e *cacheEntry) {
	c.mu.byKey[e.key] = c.mu.lru.PushFront(e)
	for c.mu.lru.Len() > c.size {
		c.removeLocked(c.mu.lru.Back())
	}
}

func (c *nearCache) removeLocked(el *list.Element) {
	e := c.mu.lru.Remove(el).(*cacheEntry)
	delete(c.mu.byKey, e.key)
	if e.invalidated > c.mu.evictedSeq {
		c.mu.evictedSeq = e.invalidated
	}
}

func (c *nearCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.lru.Len()
}
