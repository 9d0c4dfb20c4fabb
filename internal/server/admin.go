package server

import (
	"time"

	"github.com/ringkv/ringkv/internal/admin"
	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/httpapi"
)

// mountAdmin mounts the operator endpoints (internal/admin) over this node
// and, with --debug-endpoints, the test controls and the profiler.
func (s *Server) mountAdmin(api *httpapi.API) {
	admin.Mount(api, s.adminNode())
	if !s.cfg.DebugEndpoints {
		return
	}
	d := admin.Debug{Logger: s.log, Clock: skewableClock{Offset: s.wall, guard: s.guard}}
	// Only a real monitor: a nil one in the interface would not read as none.
	if mon := s.disk.Monitor(); mon != nil {
		d.Disk = mon
	}
	admin.MountDebug(api, d)
}

// adminNode is what the operator endpoints read of this node.
func (s *Server) adminNode() admin.Node {
	return admin.Node{
		Logger:  s.log,
		Cluster: s.Status,
		Clock:   s.clock.Status,
		HotKeys: func(n int) apitypes.HotKeysReport {
			return s.hot.tracker.Report(s.cfg.NodeID, n, s.hot.cache)
		},
		Repairs:  aeRepairs{s},
		Overview: s.stats.Overview,
		Changes:  s.rebal,
	}
}

// skewableClock is the wall clock as the debug endpoint moves it: the clock
// guard's cached bound was taken on the old clock, so each change refreshes
// it.
type skewableClock struct {
	*clock.Offset
	guard *clock.Guard
}

func (c skewableClock) Set(d time.Duration) {
	c.Offset.Set(d)
	c.guard.Refresh()
}
