package hotkeys

import (
	"testing"
	"time"
)

// Report gives the top keys with the window's totals and the cache's bound,
// "0s" while the cache is off.
func TestReport(t *testing.T) {
	tr, clk := newTestTracker(t, Config{K: 5, MinRate: 10})
	for i, key := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		for range (7 - i) * 100 {
			tr.Observe([]byte(key))
		}
	}
	clk.Advance(time.Second)
	tr.Refresh()

	rep := tr.Report("n1", 0, nil)
	if rep.Node != "n1" || rep.Window != "10s" || rep.CacheTTL != "0s" || rep.MinRate != 10 || rep.Rate != 2800 {
		t.Errorf("report header: %+v", rep)
	}
	if len(rep.Keys) != 5 || rep.Keys[0].Key != "a" || rep.Keys[0].Rate != 700 || !rep.Keys[0].Hot || rep.Keys[4].Key != "e" {
		t.Fatalf("keys: %+v", rep.Keys)
	}
	if share := rep.Keys[0].Share; share != 700.0/2800 {
		t.Errorf("share of a = %v, want %v", share, 700.0/2800)
	}

	c, err := NewCache(CacheConfig{TTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep := tr.Report("n1", 2, c); len(rep.Keys) != 2 || rep.CacheTTL != "50ms" {
		t.Fatalf("n=2 with a cache: %d keys, cache_ttl %q", len(rep.Keys), rep.CacheTTL)
	}
}
