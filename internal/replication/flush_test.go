package replication

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ringkv/ringkv/internal/record"
)

// TestFlushAll: FLUSHALL needs every node; it empties every replica, also of
// what a hint then brings back; a write made afterwards through any node
// stays, and a counter starts again from nothing.
func TestFlushAll(t *testing.T) {
	c := newSimCluster(t, 3)
	for i := range 300 {
		if err := put(t, c.nodes[i%3].coord, fmt.Sprint("k", i), "v", Quorum); err != nil {
			t.Fatal(err)
		}
	}
	incr(t, c.nodes[1].coord, "ctr", 41)

	c.down(2)
	if err := c.nodes[0].coord.FlushAll(t.Context(), true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("FLUSHALL with a node down: %v, want UNAVAILABLE", err)
	}
	// Written while n3 is down: a hint for it, replayed after the flush.
	if err := put(t, c.nodes[0].coord, "hinted", "v", Quorum); err != nil {
		t.Fatal(err)
	}
	c.up(2)
	if err := c.nodes[1].coord.FlushAll(t.Context(), true); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	for _, n := range c.nodes {
		n.hints.ReplayNow(t.Context())
	}
	for _, n := range c.nodes {
		left := 0
		if err := n.store.Scan(0, func(_ uint64, key []byte, _ *record.Record) error {
			left++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("%s holds %d records after FLUSHALL SYNC", n.id, left)
		}
	}
	for _, key := range []string{"k1", "hinted", "ctr"} {
		if _, found, err := c.nodes[2].coord.Get(t.Context(), []byte(key), All); err != nil || found {
			t.Fatalf("%s after FLUSHALL: found %v, %v", key, found, err)
		}
	}
	// Writes after the flush, through every node, all stay.
	for i, n := range c.nodes {
		if err := put(t, n.coord, fmt.Sprint("after", i), "v", Quorum); err != nil {
			t.Fatal(err)
		}
		rec, found, err := c.nodes[(i+1)%3].coord.Get(t.Context(), []byte(fmt.Sprint("after", i)), All)
		if err != nil || !found || string(rec.Value) != "v" {
			t.Fatalf("a write through %s after FLUSHALL: %q %v %v", n.id, rec.Value, found, err)
		}
	}
	if v := incr(t, c.nodes[2].coord, "ctr", 1); v != 1 {
		t.Fatalf("INCR after FLUSHALL = %d, want 1", v)
	}
	keys, _, err := c.nodes[0].coord.Scan(t.Context(), 0, 1000, Quorum)
	if err != nil || len(keys) != 4 {
		t.Fatalf("SCAN after FLUSHALL: %d keys %q, %v; want the 4 written since", len(keys), keys, err)
	}
}
