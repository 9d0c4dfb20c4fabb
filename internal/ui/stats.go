package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/transport"
)

// The dashboard shows every node's throughput and latency, but the browser
// only reaches the node that served the page: that node asks each peer for
// its figures over the peer port, which is already authenticated (mutual TLS
// when configured), instead of calling their HTTP ports with the browser's
// credentials.
const (
	// StatsEvery is how often a node samples its own request counters; the
	// dashboard's charts have one point per sample.
	StatsEvery = 2 * time.Second
	// statsKeep is how many samples a node keeps: 5 minutes of history.
	statsKeep = 150
	// statsPeerTimeout bounds each peer's answer to the overview: a slow or
	// dead peer must not hold the page's refresh back.
	statsPeerTimeout = time.Second
)

// StatPoint is one sample of a node's coordinated requests.
type StatPoint struct {
	// T is the sample's time, unix milliseconds.
	T int64 `json:"t"`
	// Ops is the coordinated requests per second since the previous sample.
	Ops float64 `json:"ops"`
	// P99MS is the 99th percentile of their latency, in milliseconds (the
	// upper bound of the histogram bucket it falls in); 0 with no requests.
	P99MS float64 `json:"p99_ms"`
}

// NodeStats is what one node reports about itself to the dashboard.
type NodeStats struct {
	ID            string      `json:"id"`
	UptimeS       int64       `json:"uptime_s"`
	OpsPerSec     float64     `json:"ops_per_sec"`
	P99MS         float64     `json:"p99_ms"`
	ClockOffsetMS int64       `json:"clock_offset_ms"`
	DiskBytes     int64       `json:"disk_bytes"`
	MemoryBytes   int64       `json:"memory_bytes"`
	Records       int64       `json:"records"`
	LastRepair    int64       `json:"last_repair_pass"`
	Ready         string      `json:"ready"`
	History       []StatPoint `json:"history"`
}

// PeerStats is one member's figures in the overview, or why there are none.
type PeerStats struct {
	// Reachable is false when the answering node could not reach the node
	// over the peer port; Error says why. A node whose process died is
	// unreachable at once, before the failure detector declares it down. A
	// node that answered with an error is reachable, with Error and no
	// Stats.
	Reachable bool       `json:"reachable"`
	Error     string     `json:"error,omitempty"`
	Stats     *NodeStats `json:"stats,omitempty"`
}

// RingArc is a run of adjacent ring ranges with the same primary replica,
// as fractions (0..1) of the token space.
type RingArc struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Node  string  `json:"node"`
}

// Overview is the body of GET /v1/ui/overview, the dashboard's one poll.
type Overview struct {
	Cluster apitypes.ClusterStatus `json:"cluster"`
	Stats   map[string]PeerStats   `json:"stats"`
	Ring    []RingArc              `json:"ring"`
	// EverySeconds is the sampling interval of the stats' history.
	EverySeconds float64 `json:"every_seconds"`
}

// Caller sends a request to a peer: the node's peer transport.
type Caller interface {
	Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error)
}

// StatsConfig is what Stats reads of its node.
type StatsConfig struct {
	Self string
	// Gatherer holds the coordinator's request latency histogram, which
	// Stats samples.
	Gatherer prometheus.Gatherer
	Peers    Caller
	// Cluster is the node's view of the cluster, Ranges its current ring.
	Cluster func() apitypes.ClusterStatus
	Ranges  func() []ring.Range
	// Node returns this node's figures; Stats adds the rate, the latency and
	// their history.
	Node func() NodeStats
}

// Stats keeps this node's recent request rate and latency, serves them to
// its peers and gathers the overview the dashboard polls.
type Stats struct {
	cfg     StatsConfig
	mu      sync.Mutex
	points  []StatPoint
	last    latencyTotals
	lastAt  time.Time
	stop    chan struct{}
	stopped chan struct{}
}

// NewStats returns the node's stats; Start begins the sampling.
func NewStats(cfg StatsConfig) *Stats {
	return &Stats{cfg: cfg}
}

// Start samples the request counters every StatsEvery until Stop.
func (s *Stats) Start() {
	s.stop, s.stopped = make(chan struct{}), make(chan struct{})
	s.last, s.lastAt = readLatency(s.cfg.Gatherer), time.Now()
	go func() {
		defer close(s.stopped)
		tick := time.NewTicker(StatsEvery)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-tick.C:
				s.sample(readLatency(s.cfg.Gatherer), now)
			}
		}
	}()
}

// sample appends the point since the last sample, keeping statsKeep.
func (s *Stats) sample(cur latencyTotals, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.points = append(s.points, point(s.last, cur, now.Sub(s.lastAt), now))
	if len(s.points) > statsKeep {
		s.points = append(s.points[:0], s.points[len(s.points)-statsKeep:]...)
	}
	s.last, s.lastAt = cur, now
}

// Stop ends the sampling; a nil or unstarted Stats has none to end.
func (s *Stats) Stop() {
	if s == nil || s.stop == nil {
		return
	}
	close(s.stop)
	<-s.stopped
}

// NodeStats returns this node's figures for the dashboard.
func (s *Stats) NodeStats() NodeStats {
	st := s.cfg.Node()
	s.mu.Lock()
	st.History = append([]StatPoint{}, s.points...)
	s.mu.Unlock()
	if n := len(st.History); n > 0 {
		st.OpsPerSec, st.P99MS = st.History[n-1].Ops, st.History[n-1].P99MS
	}
	return st
}

// ServePeer answers a peer's peermethod.NodeStats request.
func (s *Stats) ServePeer(method uint8) ([]byte, error) {
	if method != peermethod.NodeStats {
		return nil, fmt.Errorf("ui: unknown stats method %d", method)
	}
	return json.Marshal(s.NodeStats())
}

// Overview gathers the cluster status, every member's figures and the ring.
func (s *Stats) Overview(ctx context.Context) Overview {
	ov := Overview{Cluster: s.cfg.Cluster(), Stats: map[string]PeerStats{}, EverySeconds: StatsEvery.Seconds()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range ov.Cluster.Nodes {
		if n.ID == s.cfg.Self {
			me := s.NodeStats()
			ov.Stats[n.ID] = PeerStats{Reachable: true, Stats: &me}
			continue
		}
		wg.Go(func() {
			ps := s.peerStats(ctx, n.ID, n.PeerAddr)
			mu.Lock()
			ov.Stats[n.ID] = ps
			mu.Unlock()
		})
	}
	ov.Ring = ringArcs(s.cfg.Ranges())
	wg.Wait()
	return ov
}

func (s *Stats) peerStats(ctx context.Context, id, addr string) PeerStats {
	if addr == "" {
		return PeerStats{Error: "no peer address known"}
	}
	cctx, cancel := context.WithTimeout(ctx, statsPeerTimeout)
	defer cancel()
	b, err := s.cfg.Peers.Call(cctx, addr, peermethod.NodeStats, nil)
	var remote *transport.RemoteError
	if errors.As(err, &remote) {
		// It answered: up, but without figures (a node still starting, or
		// of a version before the dashboard).
		return PeerStats{Reachable: true, Error: remote.Message}
	}
	if err != nil {
		return PeerStats{Error: err.Error()}
	}
	var st NodeStats
	if err := json.Unmarshal(b, &st); err != nil {
		return PeerStats{Error: "bad answer: " + err.Error()}
	}
	if st.ID != id {
		return PeerStats{Error: fmt.Sprintf("%s answered as %q", addr, st.ID)}
	}
	return PeerStats{Reachable: true, Stats: &st}
}

// ringArcs merges adjacent ranges with the same primary replica into arcs.
func ringArcs(ranges []ring.Range) []RingArc {
	arcs := []RingArc{}
	for _, g := range ranges {
		if len(g.Replicas) == 0 {
			continue
		}
		start, end := float64(g.Start)/(1<<64), float64(g.End)/(1<<64)
		id := g.Replicas[0].ID
		if n := len(arcs); n > 0 && arcs[n-1].Node == id && arcs[n-1].End == start {
			arcs[n-1].End = end
			continue
		}
		arcs = append(arcs, RingArc{Start: start, End: end, Node: id})
	}
	return arcs
}
