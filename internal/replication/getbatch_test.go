package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/ring"
)

func keysOf(prefix string, n int) [][]byte {
	var keys [][]byte
	for i := range n {
		keys = append(keys, []byte(fmt.Sprint(prefix, i)))
	}
	return keys
}

// Batched reads answer as Get would, missing keys included, at every level.
func TestGetBatchReadsLikeGet(t *testing.T) {
	c := newSimCluster(t, 3)
	for i := range 30 {
		if err := put(t, c.nodes[0].coord, fmt.Sprint("k", i), fmt.Sprint("v", i), All); err != nil {
			t.Fatal(err)
		}
	}
	keys := append(keysOf("k", 30), []byte("missing"))
	for _, lvl := range []Level{One, Quorum, All} {
		res := c.nodes[1].coord.GetBatch(t.Context(), keys, lvl)
		for i, r := range res {
			if i == 30 {
				if r.Err != nil || r.Found {
					t.Fatalf("%s: missing key: found %v err %v", lvl, r.Found, r.Err)
				}
				continue
			}
			if r.Err != nil || !r.Found || string(r.Rec.Value) != fmt.Sprint("v", i) {
				t.Fatalf("%s: k%d = %q %v %v", lvl, i, r.Rec.Value, r.Found, r.Err)
			}
		}
	}
}

// GetBatchInto answers in the caller's slice, over whatever the slice held
// before: a found key's record from the previous batch must not show through
// as the answer for a key that is missing now, nor an earlier error.
func TestGetBatchIntoReusesAndOverwrites(t *testing.T) {
	c := newSimCluster(t, 3)
	putAll(t, c.nodes[0].coord, keysOf("k", 8), "v", All)
	co := c.nodes[1].coord
	for _, lvl := range []Level{One, Quorum} {
		dst := co.GetBatchInto(t.Context(), nil, keysOf("k", 8), lvl)
		for i, r := range dst {
			if r.Err != nil || !r.Found || string(r.Rec.Value) != "v" {
				t.Fatalf("%s: k%d = %q %v %v", lvl, i, r.Rec.Value, r.Found, r.Err)
			}
		}
		for i := range dst {
			dst[i].Err = errors.New("left from an earlier batch")
		}
		res := co.GetBatchInto(t.Context(), dst, keysOf("missing", 8), lvl)
		if &res[0] != &dst[0] {
			t.Fatalf("%s: a slice with room was not reused", lvl)
		}
		for i, r := range res {
			if r.Err != nil || r.Found || r.Rec.Value != nil || !r.Rec.Version.IsZero() {
				t.Fatalf("%s: missing%d = %+v: the previous batch's answer shows through", lvl, i, r)
			}
		}
		// Fewer keys than the slice holds: only as many answers.
		if res := co.GetBatchInto(t.Context(), dst, keysOf("k", 3), lvl); len(res) != 3 || !res[2].Found {
			t.Fatalf("%s: 3 keys into a slice of 8: %d answers, %+v", lvl, len(res), res)
		}
	}
}

// A replica that missed writes is repaired by a batched ALL read, and the read
// returns the newest value.
func TestGetBatchRepairsStaleReplica(t *testing.T) {
	c := newSimCluster(t, 3)
	keys := keysOf("k", 10)
	putAll(t, c.nodes[0].coord, keys, "old", All)
	c.down(2)
	putAll(t, c.nodes[0].coord, keys, "new", Quorum)
	c.up(2) // its hints are not replayed: only the reads can fix it
	for i, r := range c.nodes[0].coord.GetBatch(t.Context(), keys, All) {
		if r.Err != nil || string(r.Rec.Value) != "new" {
			t.Fatalf("k%d = %q %v", i, r.Rec.Value, r.Err)
		}
	}
	for _, k := range keys {
		if v, ok := localValue(t, c.nodes[2], string(k)); !ok || v != "new" {
			t.Fatalf("n3 still holds %q for %s after the batched ALL read", v, k)
		}
	}
}

// A peer that cannot be reached (gossip has not noticed) fails only the
// batched request: its keys are read again through Get, which asks the
// others. Too few replicas up is UNAVAILABLE for each key.
func TestGetBatchFallsBackWhenPeerFails(t *testing.T) {
	c := newSimCluster(t, 3)
	keys := keysOf("k", 12)
	putAll(t, c.nodes[0].coord, keys, "v", All)
	c.net.Isolate("n2")
	for i, r := range c.nodes[0].coord.GetBatch(t.Context(), keys, Quorum) {
		if r.Err != nil || !r.Found || string(r.Rec.Value) != "v" {
			t.Fatalf("k%d with n2 cut off = %q %v %v", i, r.Rec.Value, r.Found, r.Err)
		}
	}
	c.down(1)
	c.down(2)
	for i, r := range c.nodes[0].coord.GetBatch(t.Context(), keys, Quorum) {
		if !errors.Is(r.Err, ErrUnavailable) {
			t.Fatalf("k%d with two down: err %v, want UNAVAILABLE", i, r.Err)
		}
	}
	// Malformed requests are errors, not panics.
	for _, p := range [][]byte{nil, {0xff}, {2, 1, 'a'}, {1, 1, 'a', 0}} {
		if _, err := c.nodes[0].coord.Serve(t.Context(), "n2", MethodGetBatch, p); err == nil {
			t.Fatalf("malformed batch %x accepted", p)
		}
	}
}

// countingCaller counts the requests a coordinator sends to each peer.
type countingCaller struct {
	next Caller
	mu   sync.Mutex
	per  map[string]int
}

func (c *countingCaller) Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	c.mu.Lock()
	c.per[addr]++
	c.mu.Unlock()
	return c.next.Call(ctx, addr, method, payload)
}

func (c *countingCaller) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	per := c.per
	c.per = map[string]int{}
	return per
}

// ringOrder lists a key's replicas in the order a ring walk from its token
// would: the same nodes for every key, starting at a different one.
type ringOrder struct{ *simTopo }

func (t ringOrder) Replicas(key []byte) []Replica {
	reps := t.simTopo.Replicas(key)
	k := int(ring.Token(key) % uint64(len(reps)))
	return append(reps[k:], reps[:k]...)
}

// With RF equal to the node count every key has the same replicas, so a
// QUORUM batch needs one peer besides this node: it must ask one peer for
// all its keys rather than each peer for a part, and turn to the other peer
// on later batches so that both share the load.
func TestGetBatchAsksFewestPeers(t *testing.T) {
	c := newSimCluster(t, 3)
	n1 := c.nodes[0]
	calls := &countingCaller{next: n1.tr, per: map[string]int{}}
	cfg := DefaultConfig()
	cfg.NodeID = n1.id
	cfg.ReadRepairChance = 0
	co := New(cfg, clock.NewHLC(clock.System{}, 500*time.Millisecond), n1.store, calls, ringOrder{c.topo}, nil)
	keys := make([][]byte, 16)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("fewest-%d", i))
	}
	putAll(t, co, keys, "v", All)
	calls.take()

	seen := map[string]int{}
	for range 6 {
		for i, r := range co.GetBatch(context.Background(), keys, Quorum) {
			if r.Err != nil || !r.Found || string(r.Rec.Value) != "v" {
				t.Fatalf("key %d: found %t, %q, %v", i, r.Found, r.Rec.Value, r.Err)
			}
		}
		per := calls.take()
		if len(per) != 1 {
			t.Fatalf("one QUORUM batch sent requests to %v, want one peer once", per)
		}
		for addr, n := range per {
			if n != 1 {
				t.Fatalf("one QUORUM batch sent %d requests to %s, want 1", n, addr)
			}
			seen[addr]++
		}
	}
	if len(seen) != 2 {
		t.Fatalf("six batches went to %v, want both peers used", seen)
	}
}

// Every key of a batched read is one request in the coordinator's metrics,
// with one latency sample, and one replica read where a replica served it:
// at ONE this node reads all of them itself (the inline path), at QUORUM it
// reads them and one peer reads them too.
func TestGetBatchCountsEachKey(t *testing.T) {
	c := newSimCluster(t, 3)
	co := c.nodes[0].coord
	keys := keysOf("k", 12)
	putAll(t, co, keys, "v", All)
	replicaReads := func() (n uint64) {
		for _, nd := range c.nodes {
			n += nd.coord.metrics.replicaReads.Value()
		}
		return n
	}
	for _, tc := range []struct {
		lvl   Level
		reads uint64 // replica reads per key
	}{{One, 1}, {Quorum, 2}} {
		l := int(tc.lvl) - 1
		ok := co.metrics.requestsBy[0][l][0]
		reqs, samples, served := ok.Value(), co.metrics.latencyBy[0][l].Count(), replicaReads()
		for i, r := range co.GetBatch(t.Context(), keys, tc.lvl) {
			if r.Err != nil || !r.Found || string(r.Rec.Value) != "v" {
				t.Fatalf("%s: k%d = %q %v %v", tc.lvl, i, r.Rec.Value, r.Found, r.Err)
			}
		}
		n := uint64(len(keys))
		if got := ok.Value() - reqs; got != n {
			t.Errorf("%s: %d requests counted ok, want %d", tc.lvl, got, n)
		}
		if got := co.metrics.latencyBy[0][l].Count() - samples; got != n {
			t.Errorf("%s: %d latency samples, want %d", tc.lvl, got, n)
		}
		if got := replicaReads() - served; got != tc.reads*n {
			t.Errorf("%s: %d replica reads, want %d", tc.lvl, got, tc.reads*n)
		}
	}
}
