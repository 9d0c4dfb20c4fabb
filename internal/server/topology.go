package server

import (
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
)

// topology is the coordinator's view of the cluster: the rings built from the
// members, and who is up. It is swapped whole on every membership change, so
// the request path reads it without locks.
//
// A topology change has three rings. The current ring (normal and leaving
// nodes) places reads and writes. The future ring (normal and joining nodes)
// is where the change is heading: its extra replicas are pending, so writes
// reach them too and each one's ack is required on top of the level's count.
// When the change completes, the previous ring lingers for settle: its live
// replicas that left a key's set stay pending for writes, because nodes that
// have not heard of the switch yet still read from them.
type topology struct {
	self   string
	rf     int
	vnodes int
	settle time.Duration
	cur    atomic.Pointer[view]
	// updating serialises update: the membership watcher, the rebalancer
	// and mark requests all install views, and each builds on the last one
	// (prev, future, cameUp). Two at once could store the older members
	// last, which no later signal would correct.
	updating sync.Mutex
}

type view struct {
	ring    *ring.Ring // current owners: reads and writes
	future  *ring.Ring // nil unless a change is in progress
	prev    *ring.Ring // the ring before the last switch, until prevUntil
	prevEnd time.Time
	members map[string]membership.Member
	nodes   []replication.Replica
	// byNode maps a node id to its replica entry, so a request turns ring
	// placement into replicas with addresses and liveness. It also holds the
	// nodes of prev that have left, so they stay reachable while it lingers.
	byNode map[string]replication.Replica
	// fingerprint identifies the member states: nodes with equal
	// fingerprints route every write alike.
	fingerprint uint64
	// selfGone is set once this node is no longer among the members (it was
	// removed); clients are then refused (see clientGate).
	selfGone bool
	// replicas caches Replicas' answer per vnode range of ring, so the
	// request path allocates nothing after a range's first lookup. It is a
	// slice indexed by ring.Locate's vnode, not a map: a sync.Map lookup was
	// 1.4% of a node's CPU under a pipelined GET load.
	replicas []atomic.Pointer[[]replication.Replica]
}

func newTopology(self string, rf, vnodes int, settle time.Duration) *topology {
	t := &topology{self: self, rf: rf, vnodes: vnodes, settle: settle}
	empty := ring.New(nil, vnodes, rf)
	t.cur.Store(&view{ring: empty, members: map[string]membership.Member{}, byNode: map[string]replication.Replica{}})
	return t
}

// update installs a view of the members that source returns and returns the
// other nodes that became up (all of them on the first call). It calls source
// under its lock, so the last view installed holds the latest members.
func (t *topology) update(source func() []membership.Member) (cameUp []replication.Replica) {
	t.updating.Lock()
	defer t.updating.Unlock()
	members := source()
	old := t.cur.Load()
	v := &view{members: make(map[string]membership.Member, len(members)), byNode: make(map[string]replication.Replica, len(members))}
	var curNodes, futNodes []ring.Node
	fp := fnv.New64a()
	// Members always lists this node once gossip started, unless removed.
	v.selfGone = len(members) > 0 && !slices.ContainsFunc(members, func(m membership.Member) bool {
		return m.ID == t.self && m.State != membership.Removed
	})
	for _, m := range members {
		if m.State == membership.Removed {
			continue
		}
		v.members[m.ID] = m
		up := m.Up || m.ID == t.self
		r := replication.Replica{ID: m.ID, Addr: m.PeerAddr, Up: up}
		v.byNode[m.ID] = r
		v.nodes = append(v.nodes, r)
		n := ring.Node{ID: m.ID, Zone: m.Zone}
		if m.State != membership.Joining {
			curNodes = append(curNodes, n)
		}
		if m.State != membership.Leaving {
			futNodes = append(futNodes, n)
		}
		if prev, ok := old.byNode[m.ID]; up && m.ID != t.self && (!ok || !prev.Up) {
			cameUp = append(cameUp, r)
		}
	}
	slices.SortFunc(v.nodes, func(a, b replication.Replica) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for _, r := range v.nodes {
		fp.Write([]byte(r.ID))
		fp.Write([]byte{0, byte(v.members[r.ID].State), 0})
	}
	v.fingerprint = fp.Sum64()

	if sameNodes(old.ring.Nodes(), curNodes) {
		v.ring, v.prev, v.prevEnd = old.ring, old.prev, old.prevEnd
	} else {
		v.ring = ring.New(curNodes, t.vnodes, t.rf)
		if old.ring.Len() > 0 {
			v.prev, v.prevEnd = old.ring, time.Now().Add(t.settle)
		}
	}
	v.replicas = make([]atomic.Pointer[[]replication.Replica], v.ring.NumRanges())
	if !sameNodes(curNodes, futNodes) {
		if old.future != nil && sameNodes(old.future.Nodes(), futNodes) {
			v.future = old.future
		} else {
			v.future = ring.New(futNodes, t.vnodes, t.rf)
		}
	}
	if v.prev != nil {
		for _, n := range v.prev.Nodes() {
			if _, ok := v.byNode[n.ID]; !ok {
				v.byNode[n.ID] = old.byNode[n.ID]
			}
		}
	}
	t.cur.Store(v)
	return cameUp
}

// forgetPrevious drops the lingering previous ring. Formation calls it once
// every named member is up: the partial rings the node built while members
// appeared placed no client write (every forming node refuses clients), so
// keeping one would only make writes wait for acks from nodes that are
// replicas in it and not in the full ring.
func (t *topology) forgetPrevious() {
	t.updating.Lock()
	defer t.updating.Unlock()
	old := t.cur.Load()
	if old.prev == nil {
		return
	}
	v := *old
	v.prev, v.prevEnd = nil, time.Time{}
	v.byNode = make(map[string]replication.Replica, len(v.members))
	for id := range v.members {
		v.byNode[id] = old.byNode[id]
	}
	v.replicas = make([]atomic.Pointer[[]replication.Replica], v.ring.NumRanges())
	t.cur.Store(&v)
}

func sameNodes(a, b []ring.Node) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[ring.Node]bool, len(a))
	for _, n := range a {
		set[n] = true
	}
	for _, n := range b {
		if !set[n] {
			return false
		}
	}
	return true
}

// Replicas implements replication.Topology.
func (t *topology) Replicas(key []byte) []replication.Replica {
	v := t.cur.Load()
	vn, nodes := v.ring.Locate(ring.Token(key))
	if len(nodes) == 0 {
		return nil
	}
	if out := v.replicas[vn].Load(); out != nil {
		return *out
	}
	out := make([]replication.Replica, len(nodes))
	for i, n := range nodes {
		out[i] = v.byNode[n.ID]
	}
	v.replicas[vn].Store(&out)
	return out
}

// Nodes implements replication.Topology.
func (t *topology) Nodes() []replication.Replica { return t.cur.Load().nodes }

func (t *topology) isUp(id string) bool {
	r, ok := t.cur.Load().byNode[id]
	return ok && r.Up
}

func (t *topology) peerAddr(id string) (string, bool) {
	r, ok := t.cur.Load().byNode[id]
	return r.Addr, ok && r.Addr != ""
}

// Peer implements rebalance.Peers.
func (t *topology) Peer(id string) (string, bool) {
	r, ok := t.cur.Load().byNode[id]
	return r.Addr, ok && r.Up && r.Addr != "" && id != t.self
}

// Pending implements replication.Topology: the key's future replicas that are
// not current ones, and, while the previous ring lingers, its live replicas
// that are no longer current. Outside a change it costs one atomic load.
func (t *topology) Pending(key []byte) []replication.Replica {
	v := t.cur.Load()
	lingering := v.prev != nil && time.Now().Before(v.prevEnd)
	if v.future == nil && !lingering {
		return nil
	}
	tok := ring.Token(key)
	cur := v.ring.ReplicasForToken(tok)
	var out []replication.Replica
	add := func(set []ring.Node, liveOnly bool) {
		for _, n := range set {
			if containsNode(cur, n.ID) || slices.ContainsFunc(out, func(r replication.Replica) bool { return r.ID == n.ID }) {
				continue
			}
			r, ok := v.byNode[n.ID]
			if !ok || (liveOnly && !r.Up) {
				continue
			}
			out = append(out, r)
		}
	}
	if v.future != nil {
		add(v.future.ReplicasForToken(tok), false)
	}
	if lingering {
		// A node that left the set and is down cannot be written; the nodes
		// still reading from the previous ring then get their majority from
		// the replicas both rings share.
		add(v.prev.ReplicasForToken(tok), true)
	}
	return out
}

func containsNode(set []ring.Node, id string) bool {
	for _, n := range set {
		if n.ID == id {
			return true
		}
	}
	return false
}
