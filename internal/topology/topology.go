// Package topology is a node's view of the cluster for routing: the rings
// built from the gossiped members, who is up, and, during a topology change,
// the future and previous rings whose extra replicas writes must reach. The
// server feeds it membership; the coordinator, anti-entropy and the
// rebalancer read it.
package topology

import (
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
)

// Topology is the coordinator's view of the cluster: the rings built from the
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
type Topology struct {
	self   string
	rf     int
	vnodes int
	settle time.Duration
	now    func() time.Time
	cur    atomic.Pointer[View]
	// updating serialises update: the membership watcher, the rebalancer
	// and mark requests all install views, and each builds on the last one
	// (prev, future, cameUp). Two at once could store the older members
	// last, which no later signal would correct.
	updating sync.Mutex
}

// View is one immutable snapshot of the topology; readers load it once and
// use it whole.
type View struct {
	Ring    *ring.Ring // current owners: reads and writes
	Future  *ring.Ring // nil unless a change is in progress
	Prev    *ring.Ring // the ring before the last switch, until prevUntil
	PrevEnd time.Time
	Members map[string]membership.Member
	Nodes   []replication.Replica
	// byNode maps a node id to its replica entry, so a request turns ring
	// placement into replicas with addresses and liveness. It also holds the
	// nodes of prev that have left, so they stay reachable while it lingers.
	ByNode map[string]replication.Replica
	// fingerprint identifies the member states: nodes with equal
	// fingerprints route every write alike.
	Fingerprint uint64
	// selfGone is set once this node is no longer among the members (it was
	// removed); clients are then refused (see clientGate).
	SelfGone bool
	// replicas caches Replicas' answer per vnode range of ring, so the
	// request path allocates nothing after a range's first lookup. It is a
	// slice indexed by ring.Locate's vnode, not a map: a sync.Map lookup was
	// 1.4% of a node's CPU under a pipelined GET load.
	replicas []atomic.Pointer[[]replication.Replica]
}

// New returns an empty topology for node self. settle is how long the
// previous ring lingers after a change; now is the clock it is measured on
// (nil: time.Now), which tests replace.
func New(self string, rf, vnodes int, settle time.Duration, now func() time.Time) *Topology {
	if now == nil {
		now = time.Now
	}
	t := &Topology{self: self, rf: rf, vnodes: vnodes, settle: settle, now: now}
	empty := ring.New(nil, vnodes, rf)
	t.cur.Store(&View{Ring: empty, Members: map[string]membership.Member{}, ByNode: map[string]replication.Replica{}})
	return t
}

// Update installs a view of the members that source returns and returns the
// other nodes that became up (all of them on the first call). It calls source
// under its lock, so the last view installed holds the latest members.
func (t *Topology) Update(source func() []membership.Member) (cameUp []replication.Replica) {
	t.updating.Lock()
	defer t.updating.Unlock()
	members := source()
	old := t.cur.Load()
	v := &View{Members: make(map[string]membership.Member, len(members)), ByNode: make(map[string]replication.Replica, len(members))}
	var curNodes, futNodes []ring.Node
	fp := fnv.New64a()
	// Members always lists this node once gossip started, unless removed.
	v.SelfGone = len(members) > 0 && !slices.ContainsFunc(members, func(m membership.Member) bool {
		return m.ID == t.self && m.State != membership.Removed
	})
	for _, m := range members {
		if m.State == membership.Removed {
			continue
		}
		v.Members[m.ID] = m
		up := m.Up || m.ID == t.self
		r := replication.Replica{ID: m.ID, Addr: m.PeerAddr, Up: up}
		v.ByNode[m.ID] = r
		v.Nodes = append(v.Nodes, r)
		n := ring.Node{ID: m.ID, Zone: m.Zone}
		if m.State != membership.Joining {
			curNodes = append(curNodes, n)
		}
		if m.State != membership.Leaving {
			futNodes = append(futNodes, n)
		}
		if prev, ok := old.ByNode[m.ID]; up && m.ID != t.self && (!ok || !prev.Up) {
			cameUp = append(cameUp, r)
		}
	}
	slices.SortFunc(v.Nodes, func(a, b replication.Replica) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range v.Nodes {
		fp.Write([]byte(r.ID))
		fp.Write([]byte{0, byte(v.Members[r.ID].State), 0})
	}
	v.Fingerprint = fp.Sum64()

	if sameNodes(old.Ring.Nodes(), curNodes) {
		v.Ring, v.Prev, v.PrevEnd = old.Ring, old.Prev, old.PrevEnd
	} else {
		v.Ring = ring.New(curNodes, t.vnodes, t.rf)
		if old.Ring.Len() > 0 {
			v.Prev, v.PrevEnd = old.Ring, t.now().Add(t.settle)
		}
	}
	v.replicas = make([]atomic.Pointer[[]replication.Replica], v.Ring.NumRanges())
	if !sameNodes(curNodes, futNodes) {
		if old.Future != nil && sameNodes(old.Future.Nodes(), futNodes) {
			v.Future = old.Future
		} else {
			v.Future = ring.New(futNodes, t.vnodes, t.rf)
		}
	}
	if v.Prev != nil {
		for _, n := range v.Prev.Nodes() {
			if _, ok := v.ByNode[n.ID]; !ok {
				v.ByNode[n.ID] = old.ByNode[n.ID]
			}
		}
	}
	t.cur.Store(v)
	return cameUp
}

// ForgetPrevious drops the lingering previous ring. Formation calls it once
// every named member is up: the partial rings the node built while members
// appeared placed no client write (every forming node refuses clients), so
// keeping one would only make writes wait for acks from nodes that are
// replicas in it and not in the full ring.
func (t *Topology) ForgetPrevious() {
	t.updating.Lock()
	defer t.updating.Unlock()
	old := t.cur.Load()
	if old.Prev == nil {
		return
	}
	v := *old
	v.Prev, v.PrevEnd = nil, time.Time{}
	v.ByNode = make(map[string]replication.Replica, len(v.Members))
	for id := range v.Members {
		v.ByNode[id] = old.ByNode[id]
	}
	v.replicas = make([]atomic.Pointer[[]replication.Replica], v.Ring.NumRanges())
	t.cur.Store(&v)
}

// sameNodes reports whether a and b hold the same nodes in any order.
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

// Current returns the view in force.
func (t *Topology) Current() *View { return t.cur.Load() }

// Replicas returns key's replica set in ring order, down replicas included.
func (t *Topology) Replicas(key []byte) []replication.Replica {
	return t.ReplicasAt(ring.Token(key))
}

// ReplicasAt implements replication.Topology.
func (t *Topology) ReplicasAt(token uint64) []replication.Replica {
	v := t.cur.Load()
	vn, nodes := v.Ring.Locate(token)
	if len(nodes) == 0 {
		return nil
	}
	if out := v.replicas[vn].Load(); out != nil {
		return *out
	}
	out := make([]replication.Replica, len(nodes))
	for i, n := range nodes {
		out[i] = v.ByNode[n.ID]
	}
	v.replicas[vn].Store(&out)
	return out
}

// Nodes implements replication.Topology.
func (t *Topology) Nodes() []replication.Replica { return t.cur.Load().Nodes }

// IsUp reports whether the failure detector holds node id up.
func (t *Topology) IsUp(id string) bool {
	r, ok := t.cur.Load().ByNode[id]
	return ok && r.Up
}

// PeerAddr returns node id's peer address, up or down.
func (t *Topology) PeerAddr(id string) (string, bool) {
	r, ok := t.cur.Load().ByNode[id]
	return r.Addr, ok && r.Addr != ""
}

// Peer implements rebalance.Peers.
func (t *Topology) Peer(id string) (string, bool) {
	r, ok := t.cur.Load().ByNode[id]
	return r.Addr, ok && r.Up && r.Addr != "" && id != t.self
}

// Pending returns the key's pending replicas, as PendingAt.
func (t *Topology) Pending(key []byte) []replication.Replica {
	return t.PendingAt(ring.Token(key))
}

// PendingAt implements replication.Topology: the future replicas of the key
// whose token is tok that are not current ones, and, while the previous ring
// lingers, its live replicas that are no longer current. Outside a change it
// costs one atomic load.
func (t *Topology) PendingAt(tok uint64) []replication.Replica {
	v := t.cur.Load()
	lingering := v.Prev != nil && t.now().Before(v.PrevEnd)
	if v.Future == nil && !lingering {
		return nil
	}
	cur := v.Ring.ReplicasForToken(tok)
	var out []replication.Replica
	add := func(set []ring.Node, liveOnly bool) {
		for _, n := range set {
			if ContainsNode(cur, n.ID) || slices.ContainsFunc(out, func(r replication.Replica) bool { return r.ID == n.ID }) {
				continue
			}
			r, ok := v.ByNode[n.ID]
			if !ok || (liveOnly && !r.Up) {
				continue
			}
			out = append(out, r)
		}
	}
	if v.Future != nil {
		add(v.Future.ReplicasForToken(tok), false)
	}
	if lingering {
		// A node that left the set and is down cannot be written; the nodes
		// still reading from the previous ring then get their majority from
		// the replicas both rings share.
		add(v.Prev.ReplicasForToken(tok), true)
	}
	return out
}

// ContainsNode reports whether set holds node id.
func ContainsNode(set []ring.Node, id string) bool {
	for _, n := range set {
		if n.ID == id {
			return true
		}
	}
	return false
}
