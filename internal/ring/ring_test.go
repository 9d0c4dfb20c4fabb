package ring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"testing/quick"
)

func makeNodes(n int, zones int) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{ID: "node-" + strconv.Itoa(i)}
		if zones > 0 {
			out[i].Zone = "zone-" + strconv.Itoa(i%zones)
		}
	}
	return out
}

// TestOwnershipBalance bounds how unevenly 64 vnodes per node spread the ring.
// The ring is deterministic, so the bounds are checked against fixed figures;
// they are set so a regression in token derivation or range accounting shows.
func TestOwnershipBalance(t *testing.T) {
	// Bounds on a node's share relative to the fair share. With v vnodes a
	// primary share has a relative spread of about 1/sqrt(v), 12.5% at 64, and
	// the extremes over 100 nodes sit about three spreads out. A node's data
	// (its replica share) sums RF neighbouring arcs, which evens it out.
	const (
		primaryMax, primaryMin = 1.5, 0.6
		replicaMax, replicaMin = 1.25, 0.75
	)
	for _, tc := range []struct{ nodes int }{{3}, {10}, {30}, {100}} {
		t.Run(strconv.Itoa(tc.nodes), func(t *testing.T) {
			r := New(makeNodes(tc.nodes, 0), 64, 3)
			fair := 1 / float64(tc.nodes)
			check := func(what string, own map[string]float64, fair, maxRel, minRel float64) {
				t.Helper()
				lo, hi, sum := math.Inf(1), 0.0, 0.0
				for _, f := range own {
					lo, hi, sum = min(lo, f), max(hi, f), sum+f
				}
				t.Logf("%d nodes %s: min %.3f max %.3f of fair share, max/min %.2f",
					tc.nodes, what, lo/fair, hi/fair, hi/lo)
				if math.Abs(sum-fair*float64(tc.nodes)) > 1e-9 {
					t.Errorf("%s shares sum to %v, want %v", what, sum, fair*float64(tc.nodes))
				}
				if hi/fair > maxRel || lo/fair < minRel {
					t.Errorf("%s share out of [%.2f, %.2f] x fair: min %.3f max %.3f",
						what, minRel, maxRel, lo/fair, hi/fair)
				}
			}
			check("primary", r.Ownership(), fair, primaryMax, primaryMin)
			check("replica", r.ReplicaOwnership(), min(3*fair, 1), replicaMax, replicaMin)
		})
	}
}

// TestAddNodeMovesOnlyToNewNode checks the consistent-hashing promise: adding
// a node to n moves about 1/(n+1) of the keys, all onto the new node, and a
// key's replica set changes only by letting the new node in.
func TestAddNodeMovesOnlyToNewNode(t *testing.T) {
	const keys = 100_000
	const bound = 1.5 // moved share at most bound/(n+1)
	for n := 3; n <= 20; n++ {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			nodes := makeNodes(n+1, 0)
			before, after := New(nodes[:n], 64, 3), New(nodes, 64, 3)
			added := nodes[n].ID
			moved := 0
			for i := range keys {
				k := []byte("key-" + strconv.Itoa(i))
				a, z := before.Replicas(k), after.Replicas(k)
				if a[0] != z[0] {
					moved++
					if z[0].ID != added {
						t.Fatalf("key %s moved between old nodes: %s -> %s", k, a[0].ID, z[0].ID)
					}
				}
				// Old replicas keep their relative order; the new node
				// may push the last of them out.
				var kept []Node
				for _, nd := range z {
					if nd.ID != added {
						kept = append(kept, nd)
					}
				}
				if !slices.Equal(kept, a[:len(kept)]) {
					t.Fatalf("key %s: replicas %v -> %v: more than the new node changed", k, a, z)
				}
			}
			share := float64(moved) / keys
			t.Logf("%d -> %d nodes: %.4f of primaries moved (ideal %.4f)", n, n+1, share, 1/float64(n+1))
			if share > bound/float64(n+1) {
				t.Errorf("moved %.4f of primaries, want <= %.1f/(n+1) = %.4f", share, bound, bound/float64(n+1))
			}
			if moved == 0 {
				t.Errorf("no key moved to the new node")
			}
		})
	}
}

func TestMemberOrderIrrelevant(t *testing.T) {
	nodes := makeNodes(12, 3)
	want := New(nodes, 16, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := New(shuffled, 16, 3)
		if !reflect.DeepEqual(got.Ranges(), want.Ranges()) {
			t.Fatalf("ranges differ for member order %v", shuffled)
		}
		if !got.Equal(want) {
			t.Fatalf("Equal is false for member order %v", shuffled)
		}
	}
	if want.Equal(New(nodes[:11], 16, 3)) || want.Equal(New(nodes, 16, 2)) || want.Equal(New(nodes, 8, 3)) {
		t.Error("Equal is true for rings built differently")
	}
}

func TestZonesSpreadReplicas(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []Node
		rf    int
		zones int // distinct zones each key's replicas must span
	}{
		{"3 zones even", makeNodes(9, 3), 3, 3},
		{"3 zones uneven", append(makeNodes(8, 1), Node{ID: "b", Zone: "z2"}, Node{ID: "c", Zone: "z3"}), 3, 3},
		{"2 zones rf 3", makeNodes(6, 2), 3, 2},
		{"4 zones rf 3", makeNodes(12, 4), 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(tc.nodes, 64, tc.rf)
			for i := range 20_000 {
				reps := r.Replicas([]byte("k" + strconv.Itoa(i)))
				zones := map[string]bool{}
				for _, n := range reps {
					zones[n.Zone] = true
				}
				if len(reps) != tc.rf || len(zones) != tc.zones {
					t.Fatalf("key k%d: replicas %v span %d zones, want %d replicas in %d zones",
						i, reps, len(zones), tc.rf, tc.zones)
				}
			}
		})
	}
}

// naiveReplicas is the placement rule written for clarity: list every distinct
// node clockwise from t, take the first node of each zone (in that order), then
// fill up with the others in that order.
func naiveReplicas(nodes []Node, vnodes, rf int, t uint64) []Node {
	type vn struct {
		token uint64
		node  Node
	}
	var all []vn
	for _, n := range nodes {
		for _, tok := range NodeTokens(n.ID, vnodes) {
			all = append(all, vn{tok, n})
		}
	}
	slices.SortFunc(all, func(a, b vn) int {
		if a.token != b.token {
			if a.token < b.token {
				return -1
			}
			return 1
		}
		if a.node.ID < b.node.ID {
			return -1
		}
		if a.node.ID > b.node.ID {
			return 1
		}
		return 0
	})
	start := 0
	for start < len(all) && all[start].token < t {
		start++
	}
	var order []Node
	seen := map[string]bool{}
	for i := range all {
		v := all[(start+i)%len(all)]
		if !seen[v.node.ID] {
			seen[v.node.ID] = true
			order = append(order, v.node)
		}
	}
	var first, rest []Node
	zones := map[string]bool{}
	for _, n := range order {
		if !zones[n.Zone] {
			zones[n.Zone] = true
			first = append(first, n)
		} else {
			rest = append(rest, n)
		}
	}
	out := append(first, rest...)
	return out[:min(rf, len(out))]
}

func TestReplicasMatchNaive(t *testing.T) {
	type input struct {
		Nodes, VNodes, RF, Zones uint8
		Token                    uint64
	}
	f := func(in input) bool {
		n, v, rf, z := int(in.Nodes%12)+1, int(in.VNodes%16)+1, int(in.RF%5)+1, int(in.Zones%4)
		nodes := makeNodes(n, z)
		got := New(nodes, v, rf).ReplicasForToken(in.Token)
		want := naiveReplicas(nodes, v, rf, in.Token)
		if !slices.Equal(got, want) {
			t.Logf("n=%d v=%d rf=%d zones=%d token=%#x: got %v want %v", n, v, rf, z, in.Token, got, want)
			return false
		}
		ids := map[string]bool{}
		for _, nd := range got {
			ids[nd.ID] = true
		}
		return len(ids) == len(got) && len(got) == min(rf, n)
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Fatal(err)
	}
}

// TestRangesCoverRing checks that ranges tile the ring and agree with
// ReplicasForToken at and around their boundaries, including the wrap.
func TestRangesCoverRing(t *testing.T) {
	r := New(makeNodes(5, 2), 8, 3)
	ranges := r.Ranges()
	total := 0.0
	for i, g := range ranges {
		total += g.Size()
		if prev := ranges[(i+len(ranges)-1)%len(ranges)]; prev.End != g.Start {
			t.Fatalf("range %d starts at %#x, previous ends at %#x", i, g.Start, prev.End)
		}
		for _, tok := range []uint64{g.Start + 1, g.End} {
			if !g.Contains(tok) {
				t.Fatalf("range %d (%#x, %#x] does not contain %#x", i, g.Start, g.End, tok)
			}
			if got := r.ReplicasForToken(tok); !slices.Equal(got, g.Replicas) {
				t.Fatalf("token %#x: ReplicasForToken %v, range says %v", tok, got, g.Replicas)
			}
			// Locate names each range by its place in Ranges' order.
			if vn, got := r.Locate(tok); vn != i || !slices.Equal(got, g.Replicas) {
				t.Fatalf("token %#x: Locate (%d, %v), want range %d %v", tok, vn, got, i, g.Replicas)
			}
		}
		if g.Contains(g.Start) {
			t.Fatalf("range %d contains its exclusive start", i)
		}
	}
	if math.Abs(total-1) > 1e-9 {
		t.Fatalf("ranges cover %v of the ring, want 1", total)
	}
	// Tokens past the highest vnode wrap to the first range.
	if got := r.ReplicasForToken(math.MaxUint64); !slices.Equal(got, ranges[0].Replicas) {
		t.Fatalf("max token: got %v want first range %v", got, ranges[0].Replicas)
	}
	if r.NumRanges() != len(ranges) {
		t.Fatalf("NumRanges %d, Ranges has %d", r.NumRanges(), len(ranges))
	}
	if vn, _ := r.Locate(math.MaxUint64); vn != 0 {
		t.Fatalf("max token: Locate gives range %d, want 0", vn)
	}
	if !ranges[0].Contains(0) || !ranges[0].Contains(math.MaxUint64) {
		t.Fatal("first range does not wrap")
	}
}

func TestEdgeCases(t *testing.T) {
	empty := New(nil, 64, 3)
	if vn, got := empty.Locate(1); vn != 0 || got != nil || empty.NumRanges() != 0 {
		t.Fatalf("empty ring: Locate (%d, %v), NumRanges %d", vn, got, empty.NumRanges())
	}
	if empty.Replicas([]byte("k")) != nil || len(empty.Ranges()) != 0 || empty.Len() != 0 || len(empty.Ownership()) != 0 {
		t.Error("empty ring is not empty")
	}
	r := New(makeNodes(2, 0), 4, 3)
	if got := r.Replicas([]byte("k")); len(got) != 2 {
		t.Errorf("rf above node count: got %d replicas, want 2", len(got))
	}
	if n, ok := r.Node("node-1"); !ok || n.ID != "node-1" {
		t.Errorf("Node(node-1) = %v, %v", n, ok)
	}
	if _, ok := r.Node("nope"); ok {
		t.Error("Node(nope) found")
	}
	// A caller's append must not spill into the neighbouring replica set.
	set := r.ReplicasForToken(0)
	if cap(set) != len(set) {
		t.Errorf("replica set has spare capacity %d", cap(set)-len(set))
	}
	for _, tc := range []struct {
		name   string
		nodes  []Node
		vn, rf int
	}{
		{"zero vnodes", makeNodes(1, 0), 0, 1},
		{"zero rf", makeNodes(1, 0), 1, 0},
		{"empty id", []Node{{}}, 1, 1},
		{"duplicate id", []Node{{ID: "a"}, {ID: "a", Zone: "z"}}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			New(tc.nodes, tc.vn, tc.rf)
		})
	}
}

func TestReplicasDoNotAllocate(t *testing.T) {
	r := New(makeNodes(10, 3), 64, 3)
	key := []byte("some-key")
	if n := testing.AllocsPerRun(100, func() { _ = r.Replicas(key) }); n != 0 {
		t.Errorf("Replicas allocates %v times per call", n)
	}
}

func BenchmarkReplicas(b *testing.B) {
	for _, n := range []int{3, 30, 300} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			r := New(makeNodes(n, 3), 64, 3)
			keys := make([][]byte, 1024)
			for i := range keys {
				keys[i] = []byte("user:" + strconv.Itoa(i))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = r.Replicas(keys[i&1023])
				i++
			}
		})
	}
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			nodes := makeNodes(n, 3)
			for b.Loop() {
				New(nodes, 64, 3)
			}
		})
	}
}
