package server

import (
	"slices"
	"sync/atomic"

	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
)

// topology is the coordinator's view of the cluster: the ring built from the
// members, and who is up. It is swapped whole on every membership change, so
// the request path reads it without locks.
type topology struct {
	self   string
	rf     int
	vnodes int
	cur    atomic.Pointer[view]
}

type view struct {
	ring    *ring.Ring
	members map[string]membership.Member
	nodes   []replication.Replica
	// byNode maps a ring node id to its replica entry, so a request turns
	// ring placement into replicas with addresses and liveness.
	byNode map[string]replication.Replica
}

func newTopology(self string, rf, vnodes int) *topology {
	t := &topology{self: self, rf: rf, vnodes: vnodes}
	t.cur.Store(&view{ring: ring.New(nil, vnodes, rf), members: map[string]membership.Member{}, byNode: map[string]replication.Replica{}})
	return t
}

// update installs a view of members and reports whether a node became up.
func (t *topology) update(members []membership.Member) (cameUp bool) {
	old := t.cur.Load()
	v := &view{members: make(map[string]membership.Member, len(members)), byNode: make(map[string]replication.Replica, len(members))}
	var nodes []ring.Node
	for _, m := range members {
		if m.State == membership.Removed {
			continue
		}
		v.members[m.ID] = m
		up := m.Up || m.ID == t.self
		r := replication.Replica{ID: m.ID, Addr: m.PeerAddr, Up: up}
		v.byNode[m.ID] = r
		v.nodes = append(v.nodes, r)
		nodes = append(nodes, ring.Node{ID: m.ID, Zone: m.Zone})
		if prev, ok := old.byNode[m.ID]; up && (!ok || !prev.Up) {
			cameUp = true
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
	if sameNodes(old.ring.Nodes(), nodes) {
		v.ring = old.ring
	} else {
		v.ring = ring.New(nodes, t.vnodes, t.rf)
	}
	t.cur.Store(v)
	return cameUp
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
	nodes := v.ring.Replicas(key)
	out := make([]replication.Replica, len(nodes))
	for i, n := range nodes {
		out[i] = v.byNode[n.ID]
	}
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

// Pending implements replication.Topology. Nodes joining or leaving are not
// streamed yet, so no range is pending.
func (t *topology) Pending([]byte) []replication.Replica { return nil }
