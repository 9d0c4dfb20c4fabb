package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/transport"
)

func TestStatPointRateAndP99(t *testing.T) {
	upper := []float64{0.001, 0.002, 0.004}
	prev := latencyTotals{count: 100, upper: upper, cum: []uint64{50, 90, 100}}
	// 200 more requests: 150 under 1 ms, 48 under 2 ms, 2 under 4 ms.
	cur := latencyTotals{count: 300, upper: upper, cum: []uint64{200, 288, 300}}
	p := point(prev, cur, 2*time.Second, time.UnixMilli(5000))
	if p.Ops != 100 {
		t.Fatalf("ops %v, want 100/s", p.Ops)
	}
	// 99% of 200 is 198: reached in the 2 ms bucket (150+48).
	if p.P99MS != 2 {
		t.Fatalf("p99 %v ms, want 2", p.P99MS)
	}
	if p.T != 5000 {
		t.Fatalf("t %d", p.T)
	}
	// No requests: no latency to report.
	if p := point(cur, cur, 2*time.Second, time.Now()); p.Ops != 0 || p.P99MS != 0 {
		t.Fatalf("idle: %+v", p)
	}
	// A counter that went backwards (a restart of the source) gives no rate.
	if p := point(cur, prev, 2*time.Second, time.Now()); p.Ops != 0 {
		t.Fatalf("reset: %+v", p)
	}
}

func TestRingArcsCoverTheRingByPrimary(t *testing.T) {
	r := ring.New([]ring.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, 16, 3)
	arcs := ringArcs(r.Ranges())
	own := r.Ownership()
	got := map[string]float64{}
	for i, a := range arcs {
		size := a.End - a.Start
		if size <= 0 {
			size++ // the arc that wraps past the top
		}
		got[a.Node] += size
		if i > 0 && arcs[i-1].Node == a.Node {
			t.Fatalf("arcs %d and %d both belong to %s: not merged", i-1, i, a.Node)
		}
	}
	for id, want := range own {
		if d := got[id] - want; d > 1e-9 || d < -1e-9 {
			t.Fatalf("%s: arcs cover %v of the ring, ownership says %v", id, got[id], want)
		}
	}
}

// figures is a node's own figures as the server gives them.
func figures(id string) func() NodeStats {
	return func() NodeStats { return NodeStats{ID: id, UptimeS: 7, Records: 3, Ready: "ready"} }
}

// peerOver serves another node's stats on the peer port of a real transport.
func peerOver(t *testing.T, peer *Stats, id string) string {
	t.Helper()
	tr, err := transport.Listen(transport.TCPConfig{Addr: "127.0.0.1:0", NodeID: id,
		Handler: func(_ context.Context, _ string, method uint8, _ []byte) ([]byte, error) {
			return peer.ServePeer(method)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr.Addr()
}

func caller(t *testing.T) *transport.TCP {
	t.Helper()
	c, err := transport.Listen(transport.TCPConfig{Addr: "127.0.0.1:0", NodeID: "n1",
		Handler: func(context.Context, string, uint8, []byte) ([]byte, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The overview holds this node's figures with its history, a peer's figures
// fetched over the peer port, and the ring by primary replica.
func TestOverview(t *testing.T) {
	n2 := NewStats(StatsConfig{Self: "n2", Node: figures("n2")})
	n2addr := peerOver(t, n2, "n2")
	r := ring.New([]ring.Node{{ID: "n1"}, {ID: "n2"}}, 8, 2)
	s := NewStats(StatsConfig{
		Self: "n1", Peers: caller(t), Node: figures("n1"), Ranges: r.Ranges,
		Cluster: func() apitypes.ClusterStatus {
			return apitypes.ClusterStatus{Self: "n1", Nodes: []apitypes.NodeStatus{{ID: "n1"}, {ID: "n2", PeerAddr: n2addr}, {ID: "n3"}}}
		},
	})
	at := time.UnixMilli(10_000)
	s.lastAt = at
	s.sample(latencyTotals{count: 40, upper: []float64{0.001}, cum: []uint64{40}}, at.Add(2*time.Second))

	ov := s.Overview(t.Context())
	me := ov.Stats["n1"]
	if !me.Reachable || me.Stats == nil || me.Stats.Records != 3 || len(me.Stats.History) != 1 || me.Stats.OpsPerSec != 20 || me.Stats.P99MS != 1 {
		t.Fatalf("own figures: %+v %+v", me, me.Stats)
	}
	if p := ov.Stats["n2"]; !p.Reachable || p.Stats == nil || p.Stats.ID != "n2" || p.Stats.History == nil {
		t.Fatalf("peer's figures: %+v", p)
	}
	if p := ov.Stats["n3"]; p.Reachable || p.Error != "no peer address known" {
		t.Fatalf("a member without an address: %+v", p)
	}
	if len(ov.Ring) == 0 || ov.EverySeconds != 2 || ov.Cluster.Self != "n1" {
		t.Fatalf("overview: %+v", ov)
	}
	// The page reads these names.
	b, err := json.Marshal(ov)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"cluster":`, `"stats":`, `"ring":`, `"every_seconds":2`, `"history":[{"t":12000,"ops":20,"p99_ms":1}]`, `"reachable":true`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("overview JSON lacks %s: %s", field, b)
		}
	}
	if _, err := s.ServePeer(peermethod.NodeStats + 1); err == nil {
		t.Error("ServePeer answered another method")
	}
}

// TestOverviewTellsDeadFromWithoutFigures: a peer that answers the figures
// request with an error (an older version, a node still starting) is shown
// reachable, without figures; one whose port refuses connections is not.
func TestOverviewTellsDeadFromWithoutFigures(t *testing.T) {
	tr, err := transport.Listen(transport.TCPConfig{Addr: "127.0.0.1:0", NodeID: "old",
		Handler: func(context.Context, string, uint8, []byte) ([]byte, error) {
			return nil, errors.New("server: unknown peer method 64")
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	s := NewStats(StatsConfig{Self: "n1", Peers: caller(t)})

	ps := s.peerStats(context.Background(), "old", tr.Addr())
	if !ps.Reachable || ps.Stats != nil || !strings.Contains(ps.Error, "unknown peer method") {
		t.Fatalf("a peer that answers with an error: %+v, want reachable without figures", ps)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	if ps := s.peerStats(context.Background(), "gone", dead); ps.Reachable || ps.Error == "" {
		t.Fatalf("a peer whose port refuses: %+v, want unreachable with the reason", ps)
	}
	// A peer that answers as another node (an address reused) is not it.
	n9 := NewStats(StatsConfig{Self: "n9", Node: figures("n9")})
	if ps := s.peerStats(context.Background(), "n2", peerOver(t, n9, "n9")); ps.Reachable || !strings.Contains(ps.Error, `answered as "n9"`) {
		t.Fatalf("a peer that answers as another node: %+v", ps)
	}
}
