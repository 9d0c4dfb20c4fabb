package ring

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Node is a physical member of the ring.
type Node struct {
	// ID names the node cluster-wide and seeds its tokens, so a node that
	// restarts with the same ID takes back exactly the ranges it had.
	ID string
	// Zone is the failure domain (rack, availability zone). Placement puts a
	// key's replicas in distinct zones before it puts two in the same one.
	// Nodes with an empty Zone form one zone of their own.
	Zone string
}

// Range is an arc of the ring: the tokens t with Start < t <= End, wrapping
// past the top of the token space when Start >= End. A ring with a single
// token has one range with Start == End, which covers every token.
type Range struct {
	Start, End uint64
	// Replicas is shared with the Ring that produced it: read-only.
	Replicas []Node
}

// Contains reports whether token t lies in the range.
func (g Range) Contains(t uint64) bool {
	if g.Start < g.End {
		return g.Start < t && t <= g.End
	}
	// Wrapping range (or the whole ring when Start == End).
	return t > g.Start || t <= g.End
}

// Size is the number of tokens in the range as a fraction of the ring.
func (g Range) Size() float64 {
	if g.Start == g.End {
		return 1
	}
	// Unsigned subtraction wraps exactly like the range does.
	return float64(g.End-g.Start) / (1 << 64)
}

// Ring is an immutable consistent-hash ring: build a new one with New on every
// membership change and swap it in atomically. All methods are safe for
// concurrent use.
//
// Replica sets are computed once per vnode range at construction, so a lookup
// is one binary search and the slices it returns are shared by every caller:
// they must not be modified.
type Ring struct {
	nodes  []Node   // sorted by ID
	rf     int      // requested replication factor
	vnodes int      // tokens per node
	tokens []uint64 // sorted, distinct
	// walk is every vnode's owner (an index into nodes) in token order, ties
	// included: two nodes can draw the same slot, and both keep their place
	// in the clockwise walk that picks replicas. first[i] is where the
	// vnodes of tokens[i] begin in walk.
	walk  []int32
	first []int32
	// sets[i] is the replica set of the range ending at tokens[i]; every set is
	// a capacity-limited window of one backing array so an append by a caller
	// cannot clobber its neighbour.
	sets [][]Node
}

// NodeTokens returns the vnodes tokens of the node with the given id. They
// depend on the id alone, so every node derives the same ring from the same
// member list without exchanging tokens. Each is the last token of a slot
// drawn by hashing, so every hash slot lies within one vnode range and the
// ring reads exactly as slot ranges (CLUSTER SLOTS). A node may draw a slot
// twice; its tokens then repeat.
func NodeTokens(id string, vnodes int) []uint64 {
	out := make([]uint64, vnodes)
	buf := make([]byte, 0, len(id)+1+20)
	buf = append(buf, id...)
	buf = append(buf, '#')
	for i := range out {
		out[i] = slotEnd(xxhash.Sum64(strconv.AppendInt(buf, int64(i), 10)) >> slotShift)
	}
	return out
}

// New builds the ring of nodes with vnodes tokens each and replication factor
// rf. The order of nodes does not matter. An rf above the number of nodes
// places every key on all of them.
//
// New panics on programmer error: vnodes or rf below 1, an empty or a
// duplicated node ID.
func New(nodes []Node, vnodes int, rf int) *Ring {
	if vnodes < 1 || rf < 1 {
		panic(fmt.Sprintf("ring: vnodes (%d) and rf (%d) must be at least 1", vnodes, rf))
	}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	for i, n := range sorted {
		if n.ID == "" {
			panic("ring: node with empty ID")
		}
		if i > 0 && sorted[i-1].ID == n.ID {
			panic(fmt.Sprintf("ring: duplicate node ID %q", n.ID))
		}
	}
	r := &Ring{nodes: sorted, rf: rf, vnodes: vnodes}
	if len(sorted) == 0 {
		return r
	}

	type vnode struct {
		token uint64
		owner int32
	}
	vs := make([]vnode, 0, len(sorted)*vnodes)
	for i, n := range sorted {
		for _, t := range NodeTokens(n.ID, vnodes) {
			vs = append(vs, vnode{t, int32(i)})
		}
	}
	// With 16384 slots, nodes share tokens now and then. Tied vnodes stay in
	// the walk in ID order, which every node agrees on because nodes are
	// sorted by ID: the range up to the token goes to the smallest ID, and
	// the others follow it in the replica walk. Dropping a tied vnode
	// instead would let a joining node reorder the old nodes' replicas.
	slices.SortFunc(vs, func(a, b vnode) int {
		return cmp.Or(cmp.Compare(a.token, b.token), cmp.Compare(a.owner, b.owner))
	})
	// A node that drew one slot twice keeps one vnode there.
	vs = slices.Compact(vs)
	r.walk = make([]int32, len(vs))
	for i, v := range vs {
		r.walk[i] = v.owner
		if i == 0 || vs[i-1].token != v.token {
			r.tokens = append(r.tokens, v.token)
			r.first = append(r.first, int32(i))
		}
	}
	r.buildSets()
	return r
}

// buildSets precomputes the replica set of every vnode range.
func (r *Ring) buildSets() {
	n := min(r.rf, len(r.nodes))
	zoneOf := make([]int, len(r.nodes)) // node index -> dense zone index
	zones := map[string]int{}
	for i, nd := range r.nodes {
		z, ok := zones[nd.Zone]
		if !ok {
			z = len(zones)
			zones[nd.Zone] = z
		}
		zoneOf[i] = z
	}
	numZones := len(zones)

	backing := make([]Node, len(r.tokens)*n)
	r.sets = make([][]Node, len(r.tokens))
	// Generation stamps stand in for per-walk sets, so the walk allocates
	// nothing.
	seen := make([]int, len(r.nodes))
	zoneSeen := make([]int, numZones)
	chosen := make([]int32, 0, n)
	deferred := make([]int32, 0, len(r.nodes))
	for i := range r.tokens {
		gen := i + 1
		chosen, deferred = chosen[:0], deferred[:0]
		zonesUsed := 0
		start := int(r.first[i])
		for step := 0; step < len(r.walk) && len(chosen) < n; step++ {
			o := r.walk[(start+step)%len(r.walk)]
			if seen[o] == gen {
				continue
			}
			seen[o] = gen
			if z := zoneOf[o]; zoneSeen[z] != gen {
				zoneSeen[z] = gen
				zonesUsed++
				chosen = append(chosen, o)
				continue
			}
			deferred = append(deferred, o)
			// Every zone is represented: the rest come in walk order, and
			// enough are lined up already.
			if zonesUsed == numZones && len(chosen)+len(deferred) >= n {
				break
			}
		}
		set := backing[i*n : i*n : (i+1)*n]
		for _, o := range chosen {
			set = append(set, r.nodes[o])
		}
		for _, o := range deferred {
			if len(set) == n {
				break
			}
			set = append(set, r.nodes[o])
		}
		r.sets[i] = set
	}
}

// Replicas returns the nodes that hold key: min(RF, Len) distinct nodes, the
// first of them the key's primary. With zones set, the first replicas are in
// distinct zones. The slice is shared: callers must not modify it. An empty
// ring returns nil.
func (r *Ring) Replicas(key []byte) []Node { return r.ReplicasForToken(Token(key)) }

// ReplicasForToken is Replicas for a token already computed.
func (r *Ring) ReplicasForToken(t uint64) []Node {
	_, nodes := r.Locate(t)
	return nodes
}

// Locate is ReplicasForToken that also returns the index of the vnode whose
// range holds t, in [0, NumRanges()), so that a caller can keep what it derives
// from a replica set in a slice instead of a map.
func (r *Ring) Locate(t uint64) (vnode int, replicas []Node) {
	if len(r.tokens) == 0 {
		return 0, nil
	}
	i := r.index(t)
	return i, r.sets[i]
}

// NumRanges returns the number of vnode ranges on the ring (every node's
// tokens together), the bound of Locate's index.
func (r *Ring) NumRanges() int { return len(r.tokens) }

// index returns the vnode whose range holds t: the first token >= t, wrapping
// to the lowest token past the top of the ring.
func (r *Ring) index(t uint64) int {
	i, _ := slices.BinarySearch(r.tokens, t)
	if i == len(r.tokens) {
		return 0
	}
	return i
}

// Ranges returns every vnode range in token order with its replica set. The
// ranges are disjoint and together cover the whole ring; an empty ring has
// none. Adjacent ranges are not merged even when their replicas agree, so the
// boundaries line up with node tokens and stay put when unrelated nodes come
// and go.
func (r *Ring) Ranges() []Range {
	out := make([]Range, len(r.tokens))
	for i, t := range r.tokens {
		prev := r.tokens[(i+len(r.tokens)-1)%len(r.tokens)]
		out[i] = Range{Start: prev, End: t, Replicas: r.sets[i]}
	}
	return out
}

// Ownership returns, for each node ID, the fraction of the ring it is the
// primary replica for. The fractions sum to 1.
func (r *Ring) Ownership() map[string]float64 {
	out := make(map[string]float64, len(r.nodes))
	for _, n := range r.nodes {
		out[n.ID] = 0
	}
	for _, g := range r.Ranges() {
		out[g.Replicas[0].ID] += g.Size()
	}
	return out
}

// ReplicaOwnership returns, for each node ID, the fraction of the ring it
// holds a replica of: its share of the data. The fractions sum to
// min(RF, Len).
func (r *Ring) ReplicaOwnership() map[string]float64 {
	out := make(map[string]float64, len(r.nodes))
	for _, n := range r.nodes {
		out[n.ID] = 0
	}
	for _, g := range r.Ranges() {
		for _, n := range g.Replicas {
			out[n.ID] += g.Size()
		}
	}
	return out
}

// Nodes returns the members sorted by ID. The slice is a copy.
func (r *Ring) Nodes() []Node { return slices.Clone(r.nodes) }

// Node returns the member with the given id.
func (r *Ring) Node(id string) (Node, bool) {
	i, ok := slices.BinarySearchFunc(r.nodes, id, func(n Node, id string) int { return cmp.Compare(n.ID, id) })
	if !ok {
		return Node{}, false
	}
	return r.nodes[i], true
}

// Len returns the number of nodes.
func (r *Ring) Len() int { return len(r.nodes) }

// RF returns the replication factor the ring was built with; replica sets hold
// min(RF, Len) nodes.
func (r *Ring) RF() int { return r.rf }

// VNodes returns the number of tokens per node.
func (r *Ring) VNodes() int { return r.vnodes }

// Equal reports whether two rings were built from the same nodes, vnodes and
// RF, and so place every key alike. It lets a caller skip work when a
// membership event did not change placement (a metadata-only update, say).
func (r *Ring) Equal(o *Ring) bool {
	if r.rf != o.rf || r.vnodes != o.vnodes || !slices.Equal(r.nodes, o.nodes) {
		return false
	}
	// Tokens and placement are derived from nodes, vnodes and rf alone.
	return true
}
