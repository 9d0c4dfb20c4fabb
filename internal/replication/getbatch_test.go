package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/transport"
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

// A replica that missed writes is repaired by a batched read, and the read
// returns the newest value: a peer, whose digest is older than n1's record,
// by an ALL read; n1 itself, whose peers' digests are newer, by a QUORUM
// read, which then reads the keys whole.
func TestGetBatchRepairsStaleReplica(t *testing.T) {
	for _, tc := range []struct {
		stale int
		lvl   Level
	}{{2, All}, {0, Quorum}} {
		c := newSimCluster(t, 3)
		keys := keysOf("k", 10)
		putAll(t, c.nodes[1].coord, keys, "old", All)
		c.down(tc.stale)
		putAll(t, c.nodes[1].coord, keys, "new", Quorum)
		c.up(tc.stale) // its hints are not replayed: only the reads can fix it
		for i, r := range c.nodes[0].coord.GetBatch(t.Context(), keys, tc.lvl) {
			if r.Err != nil || !r.Found || string(r.Rec.Value) != "new" {
				t.Fatalf("n%d stale, %s: k%d = %q %v %v", tc.stale+1, tc.lvl, i, r.Rec.Value, r.Found, r.Err)
			}
		}
		for _, k := range keys {
			if v, ok := localValue(t, c.nodes[tc.stale], string(k)); !ok || v != "new" {
				t.Fatalf("n%d still holds %q for %s after n1's batched %s read", tc.stale+1, v, k, tc.lvl)
			}
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
	for _, m := range []uint8{MethodGetBatch, MethodReadBatch} {
		for _, p := range [][]byte{nil, {0xff}, {2, 1, 'a'}, {1, 1, 'a', 0}} {
			if _, err := c.nodes[0].coord.Serve(t.Context(), "n2", m, p); err == nil {
				t.Fatalf("method %d: malformed batch %x accepted", m, p)
			}
		}
	}
}

// countingCaller counts the requests a coordinator sends to each peer and
// of each method. With refuse set it answers that method as a node of an
// earlier version would, with an unknown-method error.
type countingCaller struct {
	next     Caller
	refuse   uint8
	mu       sync.Mutex
	per      map[string]int
	byMethod map[uint8]int
}

func (c *countingCaller) Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	c.mu.Lock()
	c.per[addr]++
	if c.byMethod != nil {
		c.byMethod[method]++
	}
	c.mu.Unlock()
	if method == c.refuse {
		return nil, &transport.RemoteError{Peer: addr, Message: fmt.Sprintf("replication: unknown method %d", method)}
	}
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

func (t ringOrder) ReplicasAt(tok uint64) []Replica {
	reps := t.simTopo.ReplicasAt(tok)
	k := int(tok % uint64(len(reps)))
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

// resolveDigests takes the local record only when no digest is newer or
// different; anything else is left to a whole read.
func TestResolveDigests(t *testing.T) {
	n1, n2, n3 := &Replica{ID: "n1"}, &Replica{ID: "n2"}, &Replica{ID: "n3"}
	rec := func(ts uint64, v string) record.Record {
		return record.Record{Value: []byte(v), Version: record.Version{TS: clock.Timestamp(ts), Node: "n1"}}
	}
	whole := func(r *Replica, rc record.Record, found bool) readResult {
		return readResult{rep: r, rec: rc, found: found}
	}
	digest := func(r *Replica, rc record.Record, found bool) readResult {
		p := appendDigestResp(nil, &rc, found)
		d, ok, err := decodeGetResp(p)
		if err != nil || ok != found {
			t.Fatalf("digest of %v: found %v err %v", rc, ok, err)
		}
		if found && len(d.Value) != 8 {
			t.Fatalf("digest value is %d bytes, want 8", len(d.Value))
		}
		return readResult{rep: r, rec: d, found: found, digest: true}
	}
	for _, tc := range []struct {
		name    string
		answers []readResult
		ok      bool
		found   bool
		stale   []*Replica
	}{
		{"all agree", []readResult{whole(n1, rec(5, "v"), true), digest(n2, rec(5, "v"), true), digest(n3, rec(5, "v"), true)}, true, true, nil},
		{"peer older", []readResult{digest(n2, rec(4, "old"), true), whole(n1, rec(5, "v"), true)}, true, true, []*Replica{n2}},
		{"peer missing", []readResult{whole(n1, rec(5, "v"), true), digest(n2, rec(0, ""), false), digest(n3, rec(5, "v"), true)}, true, true, []*Replica{n2}},
		{"none found", []readResult{whole(n1, rec(0, ""), false), digest(n2, rec(0, ""), false)}, true, false, nil},
		{"peer newer", []readResult{whole(n1, rec(5, "v"), true), digest(n2, rec(6, "w"), true)}, false, false, nil},
		{"only peer has it", []readResult{whole(n1, rec(0, ""), false), digest(n2, rec(6, "w"), true)}, false, false, nil},
		{"same version, other value", []readResult{whole(n1, rec(5, "v"), true), digest(n2, rec(5, "w"), true)}, false, false, nil},
		{"no local answer", []readResult{digest(n2, rec(5, "v"), true), digest(n3, rec(5, "v"), true)}, false, false, nil},
	} {
		got, found, stale, ok := resolveDigests(tc.answers)
		if ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.name, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if found != tc.found || found && string(got.Value) != "v" {
			t.Errorf("%s: got %q found %v, want the local record found %v", tc.name, got.Value, found, tc.found)
		}
		if fmt.Sprint(stale) != fmt.Sprint(tc.stale) {
			t.Errorf("%s: stale %v, want %v", tc.name, stale, tc.stale)
		}
	}
}

// Two replicas holding one version with different values (corruption, or a
// bug) must resolve as a whole read would, by the values' bytes, not by
// whichever one the coordinator holds.
func TestGetBatchSameVersionOtherValue(t *testing.T) {
	c := newSimCluster(t, 3)
	v := record.Version{TS: clock.Timestamp(1) << 40, Node: "n2"}
	for i, val := range []string{"aaa", "zzz", "aaa"} {
		if _, err := c.nodes[i].store.Apply([]byte("k"), record.Record{Value: []byte(val), Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	r := c.nodes[0].coord.GetBatch(t.Context(), [][]byte{[]byte("k"), []byte("k2")}, All)[0]
	if r.Err != nil || !r.Found || string(r.Rec.Value) != "zzz" {
		t.Fatalf("ALL batch read = %q %v %v, want zzz (record.Compare's pick)", r.Rec.Value, r.Found, r.Err)
	}
}

// A digest answer leaves the value out, and a peer that does not know the
// method costs speed, not answers: the keys go through the single-key path.
func TestReadBatchDigestsAndOldPeers(t *testing.T) {
	c := newSimCluster(t, 3)
	big := string(make([]byte, 1000))
	putAll(t, c.nodes[0].coord, [][]byte{[]byte("big")}, big, All)
	req := append([]byte{2, 4, readDigest}, "big"...)
	req = append(append(req, 4, readWhole), "big"...)
	resp, err := c.nodes[1].coord.Serve(t.Context(), "n1", MethodReadBatch, req)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	if _, err := decodeBatch(resp, 2, "n2", func(_ int, body []byte) error {
		sizes = append(sizes, len(body))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if sizes[0] > 64 || sizes[1] < 1000 {
		t.Fatalf("answers of %v bytes for a digest and a whole read of a 1000-byte value", sizes)
	}
	for _, p := range [][]byte{{1, 0}, {1, 2, 9, 'k'}} {
		resp, err := c.nodes[1].coord.Serve(t.Context(), "n1", MethodReadBatch, p)
		if err != nil {
			t.Fatalf("item %x failed the whole batch: %v", p, err)
		}
		errs, err := decodeBatch(resp, 1, "n2", func(int, []byte) error { return nil })
		if err != nil || errs[0] == nil {
			t.Fatalf("malformed item %x: answer error %v, batch error %v", p, errs, err)
		}
	}

	n1 := c.nodes[0]
	old := &countingCaller{next: n1.tr, refuse: MethodReadBatch, per: map[string]int{}, byMethod: map[uint8]int{}}
	cfg := DefaultConfig()
	cfg.NodeID = n1.id
	cfg.ReadRepairChance = 0
	co := New(cfg, clock.NewHLC(clock.System{}, 500*time.Millisecond), n1.store, old, c.topo, nil)
	keys := keysOf("k", 8)
	putAll(t, co, keys, "v", All)
	for i, r := range co.GetBatch(t.Context(), append(keys, []byte("missing")), Quorum) {
		if i == len(keys) {
			if r.Err != nil || r.Found {
				t.Fatalf("missing key: found %v err %v", r.Found, r.Err)
			}
			continue
		}
		if r.Err != nil || !r.Found || string(r.Rec.Value) != "v" {
			t.Fatalf("k%d through an old peer = %q %v %v", i, r.Rec.Value, r.Found, r.Err)
		}
	}
	if old.byMethod[MethodReadBatch] == 0 || old.byMethod[MethodGet] == 0 {
		t.Fatalf("calls by method %v: want a refused MethodReadBatch, then single-key reads", old.byMethod)
	}
}
