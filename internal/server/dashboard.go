package server

import (
	"time"

	"github.com/ringkv/ringkv/internal/ui"
)

// startStats starts the dashboard's figures (internal/ui) over this node.
// It runs before the node reports ready, so that a peer's request for them
// is answered from the node's first ready moment on.
func (s *Server) startStats() {
	s.stats = ui.NewStats(ui.StatsConfig{
		Self: s.cfg.NodeID, Gatherer: s.reg, Peers: s.peers,
		Cluster: s.Status, Ranges: s.ringRanges, Node: s.nodeFigures,
	})
	s.stats.Start()
}

// nodeFigures is this node's own line on the dashboard, less the request
// rate and latency, which ui.Stats samples.
func (s *Server) nodeFigures() ui.NodeStats {
	m := s.store.Metrics()
	st := ui.NodeStats{
		ID: s.cfg.NodeID, UptimeS: int64(time.Since(s.started).Seconds()),
		DiskBytes: int64(m.DiskUsageBytes), MemoryBytes: m.MemoryBytes, Records: m.Records,
		LastRepair: s.lastRepairPass(), Ready: s.readiness(),
	}
	if s.clock != nil {
		st.ClockOffsetMS = s.clock.State().Offset.Milliseconds()
	}
	return st
}
