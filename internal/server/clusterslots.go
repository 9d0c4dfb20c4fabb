package server

import (
	"github.com/ringkv/ringkv/internal/resp"
)

// clusterView describes the current ring to Redis Cluster clients: the ring
// that places reads and writes, as hash slot ranges with the members' RESP
// addresses. Joining nodes are left out until they own ranges, exactly as the
// coordinator leaves them out of placement.
func (s *Server) clusterView() resp.ClusterView {
	v := s.topo.Current()
	nodes := v.Ring.Nodes()
	out := resp.ClusterView{Self: s.cfg.NodeID, Nodes: make([]resp.ClusterNode, len(nodes))}
	index := make(map[string]int, len(nodes))
	for i, n := range nodes {
		index[n.ID] = i
		m := v.Members[n.ID]
		out.Nodes[i] = resp.ClusterNode{ID: n.ID, Addr: m.ClientAddr, Up: m.Up || n.ID == s.cfg.NodeID}
	}
	for _, g := range v.Ring.SlotRanges() {
		reps := make([]int, len(g.Replicas))
		for j, n := range g.Replicas {
			reps[j] = index[n.ID]
		}
		out.Slots = append(out.Slots, resp.ClusterSlots{First: g.First, Last: g.Last, Replicas: reps})
	}
	return out
}
