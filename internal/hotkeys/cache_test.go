package hotkeys

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

func newTestCache(t *testing.T, cfg CacheConfig) (*Cache, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(epoch)
	cfg.Clock = clk
	c, err := NewCache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func rec(v string) record.Record { return record.Record{Value: []byte(v)} }

func TestCacheOff(t *testing.T) {
	c, err := NewCache(CacheConfig{TTL: 0})
	if err != nil || c != nil {
		t.Fatalf("NewCache(TTL 0) = %v, %v; want nil, nil", c, err)
	}
	// A nil cache is usable and never hits.
	k := []byte("k")
	c.Put(k, c.Ticket(k), rec("v"), true)
	c.Invalidate(k)
	if _, _, hit := c.Get(k); hit || c.TTL() != 0 {
		t.Fatal("a cache that is off hit")
	}
}

// TestCacheTTL: an entry is served while the read that filled it began less
// than TTL ago, and never after.
func TestCacheTTL(t *testing.T) {
	c, clk := newTestCache(t, CacheConfig{TTL: time.Second})
	k := []byte("k")
	tk := c.Ticket(k)
	clk.Advance(300 * time.Millisecond) // the read takes 300 ms
	c.Put(k, tk, rec("v1"), true)
	clk.Advance(699 * time.Millisecond)
	if r, found, hit := c.Get(k); !hit || !found || string(r.Value) != "v1" {
		t.Fatalf("Get at age 999ms = %q, %v, %v", r.Value, found, hit)
	}
	clk.Advance(time.Millisecond)
	if _, _, hit := c.Get(k); hit {
		t.Fatal("Get hit at age 1s = TTL")
	}
	// A read that took longer than the TTL is not cached at all.
	tk = c.Ticket(k)
	clk.Advance(time.Second)
	c.Put(k, tk, rec("v2"), true)
	if _, _, hit := c.Get(k); hit {
		t.Fatal("a fill older than the TTL was cached")
	}
	// Absence is cached too.
	tk = c.Ticket(k)
	c.Put(k, tk, record.Record{}, false)
	if _, found, hit := c.Get(k); !hit || found {
		t.Fatalf("cached miss: found %v hit %v", found, hit)
	}
}

func TestCacheInvalidate(t *testing.T) {
	c, clk := newTestCache(t, CacheConfig{TTL: time.Minute})
	k := []byte("k")
	c.Put(k, c.Ticket(k), rec("v1"), true)
	c.Invalidate(k)
	if _, _, hit := c.Get(k); hit {
		t.Fatal("hit after Invalidate")
	}
	// A read that began before a local write completed must not be cached
	// after it.
	tk := c.Ticket(k)
	clk.Advance(time.Millisecond)
	c.Invalidate(k)
	c.Put(k, tk, rec("old"), true)
	if r, _, hit := c.Get(k); hit {
		t.Fatalf("fill from before the invalidation served: %q", r.Value)
	}
	// A later read's fill is kept, and an earlier read's fill cannot replace it.
	early := c.Ticket(k)
	clk.Advance(time.Millisecond)
	late := c.Ticket(k)
	c.Put(k, late, rec("new"), true)
	c.Put(k, early, rec("older"), true)
	if r, _, hit := c.Get(k); !hit || string(r.Value) != "new" {
		t.Fatalf("Get = %q, %v; want new", r.Value, hit)
	}
}

func TestCacheBounded(t *testing.T) {
	c, clk := newTestCache(t, CacheConfig{TTL: time.Minute, MaxEntries: 256, MaxBytes: 64 << 10})
	for i := range 10_000 {
		k := fmt.Appendf(nil, "key-%d", i)
		c.Put(k, c.Ticket(k), rec("value"), true)
		clk.Advance(time.Microsecond)
	}
	if n, _ := c.Len(); n > 256 || n < 128 {
		t.Fatalf("%d entries, bound 256", n)
	}
	big := make([]byte, 600)
	for i := range 10_000 {
		k := fmt.Appendf(nil, "big-%d", i)
		c.Put(k, c.Ticket(k), record.Record{Value: big}, true)
	}
	if _, b := c.Len(); b > 64<<10 {
		t.Fatalf("%d bytes cached, bound %d", b, 64<<10)
	}
	// A value larger than a shard's share is never cached.
	k := []byte("huge")
	c.Put(k, c.Ticket(k), record.Record{Value: make([]byte, 64<<10)}, true)
	if _, _, hit := c.Get(k); hit {
		t.Fatal("value over the shard's byte bound cached")
	}
}

// TestCacheNeverStale runs random fills, reads, invalidations and clock moves
// against a model of what each read may return: the value of the newest write
// through this node at the time the filling read began, and a fill no older
// than the TTL.
func TestCacheNeverStale(t *testing.T) {
	const ttl = 100 * time.Millisecond
	c, clk := newTestCache(t, CacheConfig{TTL: ttl, MaxEntries: 64 * 4})
	rng := rand.New(rand.NewPCG(1, 0))
	keys := 20
	version := make([]int, keys) // the replicas' value, written only through this node
	type fill struct {
		tk  Ticket
		ver int
		at  time.Time
	}
	inflight := make([][]fill, keys)
	for range 200_000 {
		i := rng.IntN(keys)
		k := fmt.Appendf(nil, "k%d", i)
		switch rng.IntN(6) {
		case 0: // a local write completes
			version[i]++
			c.Invalidate(k)
		case 1: // a read begins
			inflight[i] = append(inflight[i], fill{tk: c.Ticket(k), ver: version[i], at: clk.Now()})
		case 2: // a read ends and fills
			if len(inflight[i]) > 0 {
				j := rng.IntN(len(inflight[i]))
				f := inflight[i][j]
				inflight[i] = append(inflight[i][:j], inflight[i][j+1:]...)
				c.Put(k, f.tk, rec(fmt.Sprintf("%d@%d", f.ver, f.at.UnixNano())), true)
			}
		case 3:
			clk.Advance(time.Duration(rng.IntN(20)) * time.Millisecond)
		default:
			r, _, hit := c.Get(k)
			if !hit {
				continue
			}
			var ver int
			var at int64
			if _, err := fmt.Sscanf(string(r.Value), "%d@%d", &ver, &at); err != nil {
				t.Fatal(err)
			}
			if age := clk.Now().Sub(time.Unix(0, at)); age >= ttl {
				t.Fatalf("served a fill %v old, TTL %v", age, ttl)
			}
			if ver != version[i] {
				t.Fatalf("served version %d after local write %d", ver, version[i])
			}
		}
	}
}

func TestCacheConcurrent(t *testing.T) {
	c, err := NewCache(CacheConfig{TTL: time.Second, MaxEntries: 128})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20_000 {
				k := fmt.Appendf(nil, "k%d", (i*7+w)%300)
				switch i % 4 {
				case 0:
					c.Invalidate(k)
				case 1:
					c.Put(k, c.Ticket(k), rec("v"), true)
				default:
					if r, found, hit := c.Get(k); hit && (!found || string(r.Value) != "v") {
						t.Errorf("Get = %q, %v", r.Value, found)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if n, _ := c.Len(); n > 128 {
		t.Fatalf("%d entries, bound 128", n)
	}
}

func BenchmarkCacheGet(b *testing.B) {
	c, err := NewCache(CacheConfig{TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	k := []byte("hot-key")
	c.Put(k, c.Ticket(k), rec("value"), true)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Get(k)
		}
	})
}
