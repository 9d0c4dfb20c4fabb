package server

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

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

// TestOverviewTellsDeadFromWithoutFigures: a peer that answers the figures
// request with an error (an older version, a node still starting) is shown
// reachable, without figures; one whose port refuses connections is not.
func TestOverviewTellsDeadFromWithoutFigures(t *testing.T) {
	s := newTestServer(t, nil)
	tr, err := transport.Listen(transport.TCPConfig{Addr: "127.0.0.1:0", NodeID: "old",
		Handler: func(context.Context, string, uint8, []byte) ([]byte, error) {
			return nil, errors.New("server: unknown peer method 64")
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	caller, err := transport.Listen(transport.TCPConfig{Addr: "127.0.0.1:0", NodeID: "n1",
		Handler: func(context.Context, string, uint8, []byte) ([]byte, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	s.peers = caller

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
}
