package server

import (
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/version"
)

// Status returns the node's view of the cluster. Hints are the backlog this
// node holds for each target.
func (s *Server) Status() apitypes.ClusterStatus {
	v := s.topo.Current()
	own := v.Ring.Ownership()
	backlog := s.hints.Backlog()
	b := version.Get()
	st := apitypes.ClusterStatus{Self: s.cfg.NodeID, Replicas: s.cfg.Replicas, VNodes: s.cfg.VNodes, LastRepairPass: s.lastRepairPass(), Ready: s.readiness(),
		Version: b.Version, Commit: b.Commit, BuildDate: b.Date}
	for _, m := range v.Members {
		st.Nodes = append(st.Nodes, apitypes.NodeStatus{
			ID: m.ID, ClientAddr: m.ClientAddr, PeerAddr: m.PeerAddr, HTTPAddr: m.HTTPAddr,
			GossipAddr: m.GossipAddr, Zone: m.Zone, Up: m.Up || m.ID == s.cfg.NodeID,
			State: m.State.String(), Ownership: own[m.ID], Hints: int64(backlog[m.ID]),
		})
	}
	s.addStreamStatus(st.Nodes)
	st.Alarms = s.alarms()
	slices.SortFunc(st.Nodes, func(a, b apitypes.NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return st
}

// addStreamStatus fills the streaming fields of the status page.
func (s *Server) addStreamStatus(nodes []apitypes.NodeStatus) {
	if s.rebal == nil {
		return
	}
	left, own := s.rebal.StreamStatus()
	for i := range nodes {
		n := &nodes[i]
		n.StreamRangesLeft = left[n.ID]
		if n.ID == s.cfg.NodeID {
			n.StreamedBytes = own.Bytes
			if own.Total > 0 {
				n.StreamProgress = float64(own.Done) / float64(own.Total)
			}
		}
	}
}

// alarms lists what `ringkv status` shows as wrong with this node.
func (s *Server) alarms() []string {
	var out []string
	if err := s.diskReady(); err != nil {
		out = append(out, err.Error())
	}
	if err := s.salvageReady(); err != nil {
		out = append(out, err.Error())
	}
	return out
}

// ringRanges is the current ring's ranges.
func (s *Server) ringRanges() []ring.Range { return s.topo.Current().Ring.Ranges() }

// info fills the RESP INFO command's "# Ringkv" section: what is ringkv's
// own. The Server section (versions, uptime, port) comes from the RESP server,
// once, so that no field appears twice with two values.
func (s *Server) info() map[string]string {
	st := s.Status()
	up := 0
	for _, n := range st.Nodes {
		if n.Up {
			up++
		}
	}
	m := s.store.Metrics()
	return map[string]string{
		"ringkv_node_id":   s.cfg.NodeID,
		"os":               runtime.GOOS + "/" + runtime.GOARCH,
		"cluster_nodes":    strconv.Itoa(len(st.Nodes)),
		"cluster_nodes_up": strconv.Itoa(up),
		"replicas":         strconv.Itoa(s.cfg.Replicas),
		"stored_records":   strconv.FormatInt(m.Records, 10),
	}
}
