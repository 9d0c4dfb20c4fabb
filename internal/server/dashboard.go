package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/transport"
	"github.com/ringkv/ringkv/internal/ui"
)

// The dashboard (/ui) shows every node's throughput and latency, but the
// browser only reaches the node that served the page: that node asks each
// peer for its figures over the peer port, which is already authenticated
// (mutual TLS when configured), instead of calling their HTTP ports with the
// browser's credentials.
const (
	// statsEvery is how often a node samples its own request counters; the
	// dashboard's charts have one point per sample.
	statsEvery = 2 * time.Second
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

// statsSampler keeps this node's recent request rate and latency.
type statsSampler struct {
	mu      sync.Mutex
	points  []StatPoint
	last    latencyTotals
	lastAt  time.Time
	stop    chan struct{}
	stopped chan struct{}
}

// latencyTotals are the coordinator's cumulative request latency counts, all
// operations together.
type latencyTotals struct {
	count uint64
	upper []float64 // bucket bounds, seconds
	cum   []uint64  // cumulative counts per bound
}

const latencyFamily = "ringkv_coordinator_request_duration_seconds"

// latencyTotals reads the coordinator's latency histogram from the registry
// (every label set summed).
func (s *Server) latencyTotals() latencyTotals {
	var t latencyTotals
	mfs, err := s.reg.Gather()
	if err != nil && mfs == nil {
		return t
	}
	for _, mf := range mfs {
		if mf.GetName() != latencyFamily {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			t.count += h.GetSampleCount()
			for i, b := range h.GetBucket() {
				if i >= len(t.upper) {
					t.upper = append(t.upper, b.GetUpperBound())
					t.cum = append(t.cum, 0)
				}
				t.cum[i] += b.GetCumulativeCount()
			}
		}
	}
	return t
}

// point turns the difference between two totals into a sample.
func point(prev, cur latencyTotals, dt time.Duration, at time.Time) StatPoint {
	p := StatPoint{T: at.UnixMilli()}
	if cur.count < prev.count || dt <= 0 {
		return p
	}
	n := cur.count - prev.count
	p.Ops = float64(n) / dt.Seconds()
	if n == 0 {
		return p
	}
	want := (n*99 + 99) / 100 // ceil(0.99 n)
	for i, u := range cur.upper {
		var before uint64
		if i < len(prev.cum) {
			before = prev.cum[i]
		}
		if cur.cum[i]-before >= want {
			p.P99MS = u * 1000
			return p
		}
	}
	// Past the last bound: report the last bound, the most that is known.
	if len(cur.upper) > 0 {
		p.P99MS = cur.upper[len(cur.upper)-1] * 1000
	}
	return p
}

func (s *Server) startStats() {
	ss := &statsSampler{stop: make(chan struct{}), stopped: make(chan struct{})}
	ss.last, ss.lastAt = s.latencyTotals(), time.Now()
	s.stats = ss
	go func() {
		defer close(ss.stopped)
		tick := time.NewTicker(statsEvery)
		defer tick.Stop()
		for {
			select {
			case <-ss.stop:
				return
			case now := <-tick.C:
				cur := s.latencyTotals()
				ss.mu.Lock()
				ss.points = append(ss.points, point(ss.last, cur, now.Sub(ss.lastAt), now))
				if len(ss.points) > statsKeep {
					ss.points = append(ss.points[:0], ss.points[len(ss.points)-statsKeep:]...)
				}
				ss.last, ss.lastAt = cur, now
				ss.mu.Unlock()
			}
		}
	}()
}

func (s *Server) stopStats() {
	if s.stats == nil {
		return
	}
	close(s.stats.stop)
	<-s.stats.stopped
}

// NodeStats returns this node's figures for the dashboard.
func (s *Server) NodeStats() NodeStats {
	m := s.store.Metrics()
	st := NodeStats{
		ID: s.cfg.NodeID, UptimeS: int64(time.Since(s.started).Seconds()),
		DiskBytes: int64(m.DiskUsageBytes), MemoryBytes: m.MemoryBytes, Records: m.Records,
		LastRepair: s.lastRepairPass(), Ready: s.readiness(), History: []StatPoint{},
	}
	if s.clock != nil {
		st.ClockOffsetMS = s.clock.State().Offset.Milliseconds()
	}
	if ss := s.stats; ss != nil {
		ss.mu.Lock()
		st.History = append(st.History, ss.points...)
		ss.mu.Unlock()
		if n := len(st.History); n > 0 {
			st.OpsPerSec, st.P99MS = st.History[n-1].Ops, st.History[n-1].P99MS
		}
	}
	return st
}

// serveStats answers a peer's peermethod.NodeStats request.
func (s *Server) serveStats(method uint8) ([]byte, error) {
	if method != peermethod.NodeStats {
		return nil, fmt.Errorf("server: unknown stats method %d", method)
	}
	return json.Marshal(s.NodeStats())
}

// Overview gathers the cluster status, every member's figures and the ring.
func (s *Server) Overview(ctx context.Context) Overview {
	ov := Overview{Cluster: s.Status(), Stats: map[string]PeerStats{}, EverySeconds: statsEvery.Seconds()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range ov.Cluster.Nodes {
		if n.ID == s.cfg.NodeID {
			me := s.NodeStats()
			ov.Stats[n.ID] = PeerStats{Reachable: true, Stats: &me}
			continue
		}
		wg.Add(1)
		go func(id, addr string) {
			defer wg.Done()
			ps := s.peerStats(ctx, id, addr)
			mu.Lock()
			ov.Stats[id] = ps
			mu.Unlock()
		}(n.ID, n.PeerAddr)
	}
	ov.Ring = ringArcs(s.topo.Current().Ring.Ranges())
	wg.Wait()
	return ov
}

func (s *Server) peerStats(ctx context.Context, id, addr string) PeerStats {
	if addr == "" {
		return PeerStats{Error: "no peer address known"}
	}
	cctx, cancel := context.WithTimeout(ctx, statsPeerTimeout)
	defer cancel()
	b, err := s.peers.Call(cctx, addr, peermethod.NodeStats, nil)
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

func (s *Server) mountUI(api *httpapi.API) {
	api.Handle("GET /v1/ui/overview", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := json.NewEncoder(w).Encode(s.Overview(r.Context())); err != nil {
			s.log.Debug("writing the dashboard overview", "err", err)
		}
	}))
	api.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	api.Handle("GET /ui/", http.StripPrefix("/ui", ui.Handler()))
}
