package antientropy

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

// Two replicas of the whole ring that differ in a known set of keys: one sync
// moves exactly those keys, each in the right direction, and leaves the two
// stores and their roots identical.
func TestSyncMovesExactlyTheDifferingKeys(t *testing.T) {
	net := transport.NewMemNetwork(1)
	topo := staticTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}}, 1, 2)}
	a := newNode(t, net, "a", topo, nil)
	b := newNode(t, net, "b", topo, nil)
	a.start(t)
	b.start(t)

	for i := range 3000 {
		k := fmt.Sprintf("k%d", i)
		mustApply(t, a.store, k, value(int64(i), "same"))
		mustApply(t, b.store, k, value(int64(i), "same"))
	}
	wantPull, wantPush := 0, 0
	// b is newer: a pulls.
	for i := 0; i < 3000; i += 97 {
		mustApply(t, b.store, fmt.Sprintf("k%d", i), value(10000+int64(i), "b-newer"))
		wantPull++
	}
	// Deleted on a only: a pushes the tombstones.
	for i := 5; i < 3000; i += 101 {
		if i%97 == 0 {
			continue // b's newer write above
		}
		mustApply(t, a.store, fmt.Sprintf("k%d", i), tomb(20000+int64(i)))
		wantPush++
	}
	// Only on one side.
	for i := range 40 {
		mustApply(t, a.store, fmt.Sprintf("only-a%d", i), value(1, "a"))
		mustApply(t, b.store, fmt.Sprintf("only-b%d", i), value(1, "b"))
		wantPush++
		wantPull++
	}

	var pulled, pushed int
	for _, rg := range topo.Ranges() {
		res, err := a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End)
		if err != nil {
			t.Fatal(err)
		}
		pulled += res.Pulled
		pushed += res.Pushed
	}
	if pulled != wantPull || pushed != wantPush {
		t.Fatalf("pulled %d pushed %d, want %d and %d", pulled, pushed, wantPull, wantPush)
	}
	ca, cb := contents(t, a.store, 0, 0), contents(t, b.store, 0, 0)
	if !maps.Equal(ca, cb) {
		t.Fatalf("stores differ after sync: %d vs %d records", len(ca), len(cb))
	}
	checkTree(t, a.svc.Tree(), naiveBuckets(t, a.store))
	checkTree(t, b.svc.Tree(), naiveBuckets(t, b.store))
	// A second sync finds the roots equal and moves nothing.
	for _, rg := range topo.Ranges() {
		res, err := a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End)
		if err != nil || res.Mismatch || res.Pulled+res.Pushed != 0 {
			t.Fatalf("second sync: %+v %v", res, err)
		}
	}
}

// Three nodes on a ring with many ranges, each holding a different, partly
// stale copy; passes over a lossy, slow network converge them: every range's
// replicas end with the same records and the same roots. The call timeout and
// the waits are sized for a loaded race-detector run on 2 cores, where a
// healthy call can take longer than a dropped one takes to time out.
func TestPassesConvergeOverLossyNetwork(t *testing.T) {
	net := transport.NewMemNetwork(7)
	nodes := []ring.Node{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}, {ID: "n4"}}
	topo := staticTopo{r: ring.New(nodes, 8, 3)}
	var ns []*node
	for _, n := range nodes {
		ns = append(ns, newNode(t, net, n.ID, topo, func(c *Config) {
			c.Interval = 50 * time.Millisecond
			c.CallTimeout = 2 * time.Second
		}))
	}
	byID := map[string]*node{}
	for _, n := range ns {
		byID[n.id] = n
	}
	rng := rand.New(rand.NewPCG(3, 4))
	newest := map[string]record.Version{}
	for i := range 2000 {
		k := fmt.Sprintf("key%d", i)
		reps := topo.r.Replicas([]byte(k))
		for _, r := range reps {
			// Each replica missed some writes: some hold an old version,
			// some nothing, some a delete.
			var rec record.Record
			switch rng.IntN(6) {
			case 0:
				continue
			case 1:
				rec = value(int64(i), "old")
			case 2:
				rec = tomb(int64(100000 + i))
			default:
				rec = value(int64(50000+i), "new")
			}
			mustApply(t, byID[r.ID].store, k, rec)
			if rec.Version.Compare(newest[k]) > 0 {
				newest[k] = rec.Version
			}
		}
	}
	net.SetDropRate(0.05)
	net.SetDelay(0, 2*time.Millisecond)
	for _, n := range ns {
		n.start(t)
	}
	testutil.Eventually(t, 3*time.Minute, func() error {
		for _, rg := range topo.Ranges() {
			var first map[string]string
			var firstRoot uint64
			for i, rep := range rg.Replicas {
				st := byID[rep.ID].store
				var c map[string]string
				for _, iv := range intervals(rg.Start, rg.End) {
					m := contents(t, st, iv[0], iv[1]+1)
					if c == nil {
						c = m
					} else {
						maps.Copy(c, m)
					}
				}
				root, err := byID[rep.ID].svc.Tree().RangeRoot(st, rg.Start, rg.End)
				if err != nil {
					return err
				}
				if i == 0 {
					first, firstRoot = c, root
					continue
				}
				if !maps.Equal(first, c) || root != firstRoot {
					return fmt.Errorf("range (%d,%d]: %s and %s differ (%d vs %d records)", rg.Start, rg.End,
						rg.Replicas[0].ID, rep.ID, len(first), len(c))
				}
			}
		}
		return nil
	})
	net.SetDropRate(0)
	// Every key's replicas hold its newest write, never an older one.
	for k, v := range newest {
		for _, r := range topo.r.Replicas([]byte(k)) {
			rec, found, err := byID[r.ID].store.Get([]byte(k))
			if err != nil {
				t.Fatal(err)
			}
			if !found || rec.Version != v {
				t.Fatalf("%s on %s holds %s (found %v), want the newest write %s", k, r.ID, rec.Version, found, v)
			}
		}
	}
	for _, n := range ns {
		if n.svc.LastFullPass().IsZero() {
			testutil.Eventually(t, time.Minute, func() error {
				if n.svc.LastFullPass().IsZero() {
					return fmt.Errorf("%s: no full pass recorded", n.id)
				}
				return nil
			})
		}
	}
}

// A bucket hash that drifted (here: corrupted on purpose) while the records
// agree is recomputed by the exchange, after which the roots match.
func TestDriftedBucketHeals(t *testing.T) {
	net := transport.NewMemNetwork(2)
	topo := staticTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}}, 1, 2)}
	a := newNode(t, net, "a", topo, nil)
	b := newNode(t, net, "b", topo, nil)
	for i := range 500 {
		k := fmt.Sprintf("k%d", i)
		mustApply(t, a.store, k, value(int64(i), "v"))
		mustApply(t, b.store, k, value(int64(i), "v"))
	}
	a.start(t)
	b.start(t)
	bucket := BucketOf(tokenOf("k7"))
	xor(&b.svc.Tree().buckets[bucket].hash, 0xdeadbeef)
	rg := topo.Ranges()[0]
	res, err := a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End)
	if err != nil || !res.Mismatch || res.Pulled+res.Pushed != 0 {
		t.Fatalf("sync: %+v %v, want a mismatch and nothing moved", res, err)
	}
	checkTree(t, b.svc.Tree(), naiveBuckets(t, b.store))
	res, err = a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End)
	if err != nil || res.Mismatch {
		t.Fatalf("after healing: %+v %v", res, err)
	}
}

// On-demand repair reports its progress and finishes; a node whose peer is
// down does not count the pass as full.
func TestRepairProgress(t *testing.T) {
	net := transport.NewMemNetwork(3)
	topo := staticTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, 4, 3), down: map[string]bool{"c": true}}
	a := newNode(t, net, "a", topo, nil)
	b := newNode(t, net, "b", topo, nil)
	for i := range 1000 {
		mustApply(t, b.store, fmt.Sprintf("k%d", i), value(int64(i), "v"))
	}
	a.start(t)
	b.start(t)
	p := a.svc.Repair()
	if p.ID != 1 || p.Done {
		t.Fatalf("first repair: %+v", p)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		p, _ = a.svc.LastRepair()
		if !p.Done {
			return fmt.Errorf("repair not done: %+v", p)
		}
		return nil
	})
	if p.RangesTotal != 12 || p.RangesCompared != 12 || p.RangesSkipped != 12 || p.RecordsPulled != 1000 || p.Errors != 0 {
		t.Fatalf("progress %+v, want 12 ranges compared with b, 12 skipped (c down), 1000 pulled", p)
	}
	if !a.svc.LastFullPass().IsZero() {
		t.Fatal("a pass that skipped a down replica counted as full")
	}
	if p2 := a.svc.Repair(); p2.ID != 2 {
		t.Fatalf("second repair: %+v", p2)
	}
	roots, err := a.svc.Roots()
	if err != nil || len(roots) != 12 {
		t.Fatalf("roots: %d %v", len(roots), err)
	}
	if !slices.ContainsFunc(roots, func(r RangeRoot) bool { return r.Start == math.MaxUint64 || r.End < r.Start }) {
		t.Log("no wrapping range in this ring") // informational; the ring is fixed
	}
}

// A node that has not rebuilt its hashes refuses comparisons instead of
// answering with empty buckets that would look like missing data.
func TestNotReadyRefuses(t *testing.T) {
	net := transport.NewMemNetwork(4)
	topo := staticTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}}, 1, 2)}
	a := newNode(t, net, "a", topo, nil)
	b := newNode(t, net, "b", topo, nil)
	a.start(t)
	rg := topo.Ranges()[0]
	if _, err := a.svc.SyncRange(t.Context(), "b", rg.Start, rg.End); err == nil {
		t.Fatal("sync with a peer still rebuilding succeeded")
	}
	if _, err := b.svc.SyncRange(t.Context(), "a", rg.Start, rg.End); !errors.Is(err, ErrNotReady) {
		t.Fatalf("sync from a node still rebuilding: %v, want ErrNotReady", err)
	}
}
