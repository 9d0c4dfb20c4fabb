package server

import (
	"encoding/json"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
)

// Status returns the node's view of the cluster. Hints are the backlog this
// node holds for each target.
func (s *Server) Status() apitypes.ClusterStatus {
	v := s.topo.cur.Load()
	own := v.ring.Ownership()
	backlog := s.hints.Backlog()
	st := apitypes.ClusterStatus{Self: s.cfg.NodeID, Replicas: s.cfg.Replicas, VNodes: s.cfg.VNodes, LastRepairPass: s.lastRepairPass(), Ready: s.readiness()}
	for _, m := range v.members {
		st.Nodes = append(st.Nodes, apitypes.NodeStatus{
			ID: m.ID, ClientAddr: m.ClientAddr, PeerAddr: m.PeerAddr, HTTPAddr: m.HTTPAddr,
			GossipAddr: m.GossipAddr, Zone: m.Zone, Up: m.Up || m.ID == s.cfg.NodeID,
			State: m.State.String(), Ownership: own[m.ID], Hints: int64(backlog[m.ID]),
		})
	}
	s.addStreamStatus(st.Nodes)
	st.Alarms = s.alarms()
	slices.SortFunc(st.Nodes, func(a, b apitypes.NodeStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return st
}

func (s *Server) handleCluster(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Status()); err != nil {
		s.log.Debug("writing cluster status", "err", err)
	}
}

var startTime = time.Now()

// info fills the RESP INFO command's sections.
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
		"redis_version":     "7.2.0",
		"ringkv_version":    "0.1.0",
		"ringkv_node_id":    s.cfg.NodeID,
		"redis_mode":        "standalone",
		"os":                runtime.GOOS + "/" + runtime.GOARCH,
		"tcp_port":          portOf(s.Addrs().Client),
		"uptime_in_seconds": strconv.FormatInt(int64(time.Since(startTime).Seconds()), 10),
		"cluster_nodes":     strconv.Itoa(len(st.Nodes)),
		"cluster_nodes_up":  strconv.Itoa(up),
		"replicas":          strconv.Itoa(s.cfg.Replicas),
		"stored_records":    strconv.FormatInt(m.Records, 10),
	}
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}
