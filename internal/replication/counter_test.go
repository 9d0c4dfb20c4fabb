package replication

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
)

func incr(t *testing.T, co *Coordinator, key string, delta int64) int64 {
	t.Helper()
	v, err := co.Incr(t.Context(), []byte(key), delta, Quorum)
	if err != nil {
		t.Fatalf("Incr(%s, %d) via %s: %v", key, delta, co.cfg.NodeID, err)
	}
	return v
}

// TestConcurrentIncrThroughEveryNode: increments made at once through
// three coordinators all count, and every replica ends up with the same
// state once read at ALL (which repairs the stale ones).
func TestConcurrentIncrThroughEveryNode(t *testing.T) {
	c := newSimCluster(t, 3)
	const per = 60
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		for g := range 2 {
			wg.Go(func() {
				for k := range per {
					delta := int64(1 + (i+g+k)%3)
					if k%5 == 4 {
						delta = -1
					}
					// At ONE: Incr reads and writes at QUORUM anyway.
					if _, err := n.coord.Incr(t.Context(), []byte("ctr"), delta, One); err != nil {
						t.Errorf("Incr via %s: %v", n.id, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	var want int64
	for i := range c.nodes {
		for g := range 2 {
			for k := range per {
				d := int64(1 + (i+g+k)%3)
				if k%5 == 4 {
					d = -1
				}
				want += d
			}
		}
	}
	for _, n := range c.nodes {
		rec, found, err := n.coord.Get(t.Context(), []byte("ctr"), All)
		if err != nil || !found || string(rec.Value) != fmt.Sprint(want) {
			t.Fatalf("ALL read via %s: %q %v %v, want %d", n.id, rec.Value, found, err, want)
		}
	}
	for _, n := range c.nodes {
		if v, _ := localValue(t, n, "ctr"); v != fmt.Sprint(want) {
			t.Fatalf("replica %s holds %q after the ALL reads, want %d", n.id, v, want)
		}
	}
}

// TestIncrAcrossNodeDown: increments through the two nodes left while the
// third is down count once it is back, through its hints and a read.
func TestIncrAcrossNodeDown(t *testing.T) {
	c := newSimCluster(t, 3)
	incr(t, c.nodes[2].coord, "k", 5)
	c.down(2)
	for range 10 {
		incr(t, c.nodes[0].coord, "k", 1)
		incr(t, c.nodes[1].coord, "k", 2)
	}
	c.up(2)
	for _, n := range c.nodes {
		n.hints.ReplayNow(t.Context())
	}
	if v, _ := localValue(t, c.nodes[2], "k"); v != "35" {
		t.Fatalf("n3 after its hints: %q, want 35", v)
	}
	if v := incr(t, c.nodes[2].coord, "k", 1); v != 36 {
		t.Fatalf("INCR via n3 after it came back = %d, want 36", v)
	}
}

func TestIncrSemantics(t *testing.T) {
	c := newSimCluster(t, 3)
	co := c.nodes[0].coord
	if v := incr(t, co, "fresh", 1); v != 1 {
		t.Fatalf("INCR of a missing key = %d", v)
	}
	if err := put(t, co, "s", "10", Quorum); err != nil {
		t.Fatal(err)
	}
	if v := incr(t, c.nodes[1].coord, "s", -3); v != 7 {
		t.Fatalf("DECRBY 3 of \"10\" = %d", v)
	}
	if v := incr(t, c.nodes[2].coord, "s", 1); v != 8 {
		t.Fatalf("INCR via another node = %d", v)
	}
	// A SET replaces the counter; the next INCR counts from it.
	if err := put(t, c.nodes[2].coord, "s", "100", Quorum); err != nil {
		t.Fatal(err)
	}
	if v := incr(t, co, "s", 1); v != 101 {
		t.Fatalf("INCR after SET 100 = %d", v)
	}
	// A DEL too.
	if _, _, err := co.Put(t.Context(), []byte("s"), Mutation{Tombstone: true}, Quorum); err != nil {
		t.Fatal(err)
	}
	if v := incr(t, c.nodes[1].coord, "s", 1); v != 1 {
		t.Fatalf("INCR after DEL = %d", v)
	}
	if err := put(t, co, "str", "abc", Quorum); err != nil {
		t.Fatal(err)
	}
	if _, err := co.Incr(t.Context(), []byte("str"), 1, Quorum); !errors.Is(err, ErrNotInteger) {
		t.Fatalf("INCR of \"abc\": %v", err)
	}
	if err := put(t, co, "max", fmt.Sprint(int64(math.MaxInt64)), Quorum); err != nil {
		t.Fatal(err)
	}
	if _, err := co.Incr(t.Context(), []byte("max"), 1, Quorum); !errors.Is(err, ErrOverflow) {
		t.Fatalf("INCR past MaxInt64: %v", err)
	}
	rec, _, err := co.Get(t.Context(), []byte("max"), Quorum)
	if err != nil || string(rec.Value) != fmt.Sprint(int64(math.MaxInt64)) {
		t.Fatalf("a refused INCR changed the key: %q %v", rec.Value, err)
	}
}
