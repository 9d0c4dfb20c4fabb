package replication

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/hotkeys"
)

// hotTracker returns a real tracker on a manual clock that already counts
// key as hot.
func hotTracker(t *testing.T, clk *clock.Manual, key string) *hotkeys.Tracker {
	t.Helper()
	cfg := hotkeys.DefaultConfig()
	cfg.Clock = clk
	cfg.MinRate = 10
	tr, err := hotkeys.NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		tr.Observe([]byte(key))
	}
	clk.Advance(time.Second)
	tr.Refresh()
	if !tr.IsHot([]byte(key)) {
		t.Fatalf("%s not hot after 1000 requests", key)
	}
	return tr
}

// With spreading, ONE reads of a hot key through one coordinator land on
// every replica, not just the coordinator's own.
func TestHotKeyReadsSpreadAcrossReplicas(t *testing.T) {
	c := newSimCluster(t, 3)
	clk := clock.NewManual(time.Now())
	co := c.nodes[0].coord
	if err := put(t, co, "hot", "v", All); err != nil {
		t.Fatal(err)
	}
	// Count the reads each peer serves.
	var served [3]atomic.Int64
	for i, n := range c.nodes {
		if i == 0 {
			continue
		}
		orig := n.coord
		n.tr.Close()
		n.tr = c.net.Listen(n.id, func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
			if method == MethodGet {
				served[i].Add(1)
			}
			return orig.Serve(ctx, from, method, payload)
		})
	}
	reads := func() (local int64) {
		for range 300 {
			rec, found, err := co.Get(t.Context(), []byte("hot"), One)
			if err != nil || !found || string(rec.Value) != "v" {
				t.Fatalf("read: %q %v %v", rec.Value, found, err)
			}
		}
		return 300 - served[1].Load() - served[2].Load()
	}
	if local := reads(); local != 300 {
		t.Fatalf("without hot-key tracking %d of 300 ONE reads stayed local", local)
	}
	served[1].Store(0)
	served[2].Store(0)
	co.cfg.HotKeys = hotTracker(t, clk, "hot")
	local := reads()
	t.Logf("ONE reads of a hot key: local %d, n2 %d, n3 %d", local, served[1].Load(), served[2].Load())
	for i, n := range []int64{local, served[1].Load(), served[2].Load()} {
		// 300 reads over 3 replicas: each gets about 100; 50 is far out in
		// the binomial tail (p < 1e-8).
		if n < 50 {
			t.Fatalf("replica %d served %d of 300 hot reads: not spread", i+1, n)
		}
	}
}

// The hot-key cache never serves a read older than its TTL, and this node's
// own writes invalidate it at once.
func TestHotKeyCacheStalenessBound(t *testing.T) {
	c := newSimCluster(t, 3)
	clk := clock.NewManual(time.Now())
	ttl := 500 * time.Millisecond
	cache, err := hotkeys.NewCache(hotkeys.CacheConfig{TTL: ttl, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	n1 := c.nodes[0].coord
	n1.cfg.HotKeys = hotTracker(t, clk, "k")
	n1.cfg.HotCache = cache
	get := func() string {
		t.Helper()
		rec, _, err := n1.Get(t.Context(), []byte("k"), Quorum)
		if err != nil {
			t.Fatal(err)
		}
		return string(rec.Value)
	}
	if err := put(t, n1, "k", "v1", All); err != nil {
		t.Fatal(err)
	}
	if v := get(); v != "v1" {
		t.Fatalf("first read %q", v)
	}
	// A write through another node is not seen while the entry is young...
	if err := put(t, c.nodes[1].coord, "k", "v2", All); err != nil {
		t.Fatal(err)
	}
	clk.Advance(ttl / 2)
	if v := get(); v != "v1" {
		t.Fatalf("within the TTL the cache should answer v1, got %q (is the cache wired?)", v)
	}
	// ...and is seen once the TTL has passed since the cached read began.
	clk.Advance(ttl/2 + time.Millisecond)
	if v := get(); v != "v2" {
		t.Fatalf("after the TTL got %q, want v2", v)
	}
	// A write through this node invalidates at once.
	if err := put(t, n1, "k", "v3", Quorum); err != nil {
		t.Fatal(err)
	}
	if v := get(); v != "v3" {
		t.Fatalf("after a local write got %q, want v3", v)
	}
	// ALL reads never use the cache.
	if err := put(t, c.nodes[2].coord, "k", "v4", All); err != nil {
		t.Fatal(err)
	}
	rec, _, err := n1.Get(t.Context(), []byte("k"), All)
	if err != nil || string(rec.Value) != "v4" {
		t.Fatalf("ALL read %q %v, want v4", rec.Value, err)
	}
}

// countingHotKeys counts the requests observed per key and calls one key hot.
type countingHotKeys struct {
	hot  string
	mu   sync.Mutex
	seen map[string]int
}

func (h *countingHotKeys) ObserveHashed(_ uint64, key []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[string(key)]++
	return string(key) == h.hot
}

// A batched read counts each of its keys once for hot-key tracking, whichever
// way the key is answered: batched, through the single-key path (a hot key),
// or inline (a ONE read this node answers).
func TestGetBatchObservesEachKeyOnce(t *testing.T) {
	c := newSimCluster(t, 3)
	co := c.nodes[0].coord
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("hot"), []byte("c")}
	for _, k := range keys {
		if err := put(t, co, string(k), "v", All); err != nil {
			t.Fatal(err)
		}
	}
	for _, lvl := range []Level{One, Quorum, All} {
		h := &countingHotKeys{hot: "hot", seen: map[string]int{}}
		co.cfg.HotKeys = h
		for i, r := range co.GetBatch(t.Context(), keys, lvl) {
			if r.Err != nil || !r.Found || string(r.Rec.Value) != "v" {
				t.Fatalf("%s: key %s: %q %v %v", lvl, keys[i], r.Rec.Value, r.Found, r.Err)
			}
		}
		for _, k := range keys {
			if n := h.seen[string(k)]; n != 1 {
				t.Errorf("%s: key %s observed %d times, want 1", lvl, k, n)
			}
		}
	}
	co.cfg.HotKeys = nil
}
