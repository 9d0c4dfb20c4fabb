package server

import (
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/topology"
)

// Readiness reasons: the fixed first word of a not-ready answer, and the
// label of ringkv_node_not_ready. The detail after it is for people.
const (
	reasonStarting = "starting"
	reasonForming  = "forming"
	reasonJoining  = "joining"
	reasonLeaving  = "leaving"
	reasonRemoved  = "removed"
	reasonQuorum   = "quorum"
	reasonClock    = "clock"
	reasonDisk     = "disk"
	reasonSalvage  = "salvage"
	reasonOther    = "other" // a check that returned a plain error
)

// notReady is a readiness check's answer. A check may return any error; this
// one gives the metric a reason label that stays a small, fixed set. err,
// when set, is an error that already says what is wrong in words (a full
// disk's): it is the text, and errors.Is and errors.As see it.
type notReady struct {
	reason, detail string
	err            error
}

func (e *notReady) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	if e.detail == "" {
		return e.reason
	}
	return e.reason + ": " + e.detail
}

func (e *notReady) Unwrap() error { return e.err }

func notReadyf(reason, format string, args ...any) error {
	return &notReady{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// readyReason returns the reason label of a readiness check's error.
func readyReason(err error) string {
	var nr *notReady
	if errors.As(err, &nr) {
		return nr.reason
	}
	return reasonOther
}

// membershipReady is nil when this node is a normal member: a joining node
// owns no ranges yet, a leaving one is handing them away, a removed one owns
// none and refuses clients.
func (s *Server) membershipReady() error {
	v := s.topo.Current()
	if v.SelfGone || s.member.LocalMeta().State == membership.Removed {
		return notReadyf(reasonRemoved, "this node was removed from the cluster; stop it, and wipe its data directory to add it again")
	}
	me, ok := v.Members[s.cfg.NodeID]
	if !ok {
		return &notReady{reason: reasonStarting, detail: "not yet in its own member list"}
	}
	switch me.State {
	case membership.Normal:
		return nil
	case membership.Joining:
		pct := 0.0
		if p := s.rebal.Progress(); p.Total > 0 {
			pct = 100 * float64(p.Done) / float64(p.Total)
		}
		if n := s.member.JoinFailures(); n > 0 {
			return notReadyf(reasonJoining, "%.0f%% owned; no seed answered after %d attempts (%v)", pct, n, s.member.Seeds())
		}
		if v.Ring.Len() == 0 {
			return notReadyf(reasonJoining, "%.0f%% owned; no normal member to stream from", pct)
		}
		return notReadyf(reasonJoining, "%.0f%% of its ranges streamed", pct)
	case membership.Leaving:
		return notReadyf(reasonLeaving, "decommission in progress: its ranges are moving to other nodes")
	}
	return notReadyf(reasonOther, "state %s", me.State)
}

// quorumReady is nil when every range this node replicates has a majority of
// its replicas up, so QUORUM reads and writes of its keys can succeed. While
// a topology change is in progress a write also needs every pending replica
// (the future owners that are not current ones: see replication.Topology),
// so a range whose pending replica is down counts as short too.
func (s *Server) quorumReady() error {
	v := s.topo.Current()
	self := s.cfg.NodeID
	short, total := 0, 0
	check := func(cur, fut []ring.Node) {
		if !topology.ContainsNode(cur, self) && !topology.ContainsNode(fut, self) {
			return
		}
		total++
		up := 0
		for _, n := range cur {
			if v.ByNode[n.ID].Up {
				up++
			}
		}
		ok := up >= replication.Quorum.Required(len(cur))
		for _, n := range fut {
			if !topology.ContainsNode(cur, n.ID) && !v.ByNode[n.ID].Up {
				ok = false
			}
		}
		if !ok {
			short++
		}
	}
	if v.Future == nil {
		for _, g := range v.Ring.Ranges() {
			check(g.Replicas, nil)
		}
	} else {
		// The two rings' boundaries interleave: between consecutive
		// boundaries of either ring both replica sets are constant, and a
		// range's end token lies in it.
		var ends []uint64
		for _, g := range v.Ring.Ranges() {
			ends = append(ends, g.End)
		}
		for _, g := range v.Future.Ranges() {
			ends = append(ends, g.End)
		}
		slices.Sort(ends)
		for _, t := range slices.Compact(ends) {
			check(v.Ring.ReplicasForToken(t), v.Future.ReplicasForToken(t))
		}
	}
	if short > 0 {
		return notReadyf(reasonQuorum, "quorum unavailable for %d of its %d ranges", short, total)
	}
	return nil
}

// readinessCollector exports readyCheck's answer at each scrape, so the
// metric never disagrees with /readyz.
type readinessCollector struct {
	s        *Server
	ready    *prometheus.Desc
	notReady *prometheus.Desc
}

func (s *Server) newReadinessCollector() prometheus.Collector {
	return readinessCollector{
		s: s,
		ready: prometheus.NewDesc("ringkv_node_ready",
			"1 when /readyz answers 200: the node is normal and can serve QUORUM for its ranges.", nil, nil),
		notReady: prometheus.NewDesc("ringkv_node_not_ready",
			"1 for the reason /readyz gives while the node is not ready (starting, forming, joining, leaving, removed, quorum, clock, disk, salvage, other); absent when ready.",
			[]string{"reason"}, nil),
	}
}

func (c readinessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ready
	ch <- c.notReady
}

func (c readinessCollector) Collect(ch chan<- prometheus.Metric) {
	err := c.s.readyCheck()
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, 0)
	ch <- prometheus.MustNewConstMetric(c.notReady, prometheus.GaugeValue, 1, readyReason(err))
}

// Ready is nil when the node serves: what /readyz answers (see readyCheck).
func (s *Server) Ready() error { return s.readyCheck() }

// readiness is readyCheck's answer as the status page shows it.
func (s *Server) readiness() string {
	if err := s.readyCheck(); err != nil {
		return err.Error()
	}
	return "ready"
}
