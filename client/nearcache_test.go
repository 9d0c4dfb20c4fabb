package client

import (
	"testing"
	"time"
)

func TestNearCacheExpiresAtTTLFromReadStart(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newNearCache(10, 100*time.Millisecond)
	c.now = func() time.Time { return now }
	f := c.begin()
	now = now.Add(30 * time.Millisecond) // the read took 30 ms
	c.put("k", []byte("v"), true, f)
	now = now.Add(69 * time.Millisecond)
	if v, found, ok := c.get("k"); !ok || !found || string(v) != "v" {
		t.Fatalf("99 ms after the read began: %q %v %v, want a hit", v, found, ok)
	}
	now = now.Add(time.Millisecond)
	if _, _, ok := c.get("k"); ok {
		t.Fatal("hit 100 ms after the read began: staler than the TTL")
	}
}

func TestNearCacheWriteDuringReadBlocksFill(t *testing.T) {
	c := newNearCache(10, time.Minute)
	f := c.begin()
	c.invalidate("k") // a write starts while the read is in flight
	c.put("k", []byte("old"), true, f)
	if _, _, ok := c.get("k"); ok {
		t.Fatal("a read that overlapped a write filled the cache")
	}
	// A read that begins after the write may fill it.
	f = c.begin()
	c.put("k", []byte("new"), true, f)
	if v, _, ok := c.get("k"); !ok || string(v) != "new" {
		t.Fatalf("got %q %v, want new", v, ok)
	}
	// Other keys are unaffected by k's write.
	f = c.begin()
	c.invalidate("k")
	c.put("other", []byte("x"), true, f)
	if _, _, ok := c.get("other"); !ok {
		t.Fatal("a write to k blocked caching other")
	}
}

func TestNearCacheEvictedMarkerStillBlocksFill(t *testing.T) {
	c := newNearCache(2, time.Minute)
	f := c.begin()
	c.invalidate("k")
	c.invalidate("a", "b") // pushes k's marker out of the 2-entry LRU
	if c.len() != 2 {
		t.Fatalf("len %d, want 2", c.len())
	}
	c.put("k", []byte("old"), true, f)
	if _, _, ok := c.get("k"); ok {
		t.Fatal("fill allowed after the write marker was evicted")
	}
}

func TestNearCacheBoundedLRU(t *testing.T) {
	c := newNearCache(3, time.Minute)
	for _, k := range []string{"a", "b", "c"} {
		c.put(k, []byte(k), true, c.begin())
	}
	c.get("a") // a is now most recent; b is the oldest
	c.put("d", []byte("d"), true, c.begin())
	if _, _, ok := c.get("b"); ok {
		t.Error("b survived; want it evicted as least recently used")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, _, ok := c.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	// Not-found answers are cached too.
	c.put("missing", nil, false, c.begin())
	if _, found, ok := c.get("missing"); !ok || found {
		t.Errorf("missing: found %v ok %v, want a cached absence", found, ok)
	}
}
