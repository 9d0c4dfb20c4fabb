package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testLogger sends logs to t.Log until the test's cleanups are done;
// memberlist goroutines may still log a line while shutting down.
func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	var done atomic.Bool
	tb.Cleanup(func() { done.Store(true) }) // registered first, runs last
	w := writerFunc(func(p []byte) (int, error) {
		if !done.Load() {
			tb.Log(strings.TrimSpace(string(p)))
		}
		return len(p), nil
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// checkFor polls cond until it returns nil or the wait runs out.
func checkFor(tb testing.TB, wait time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", wait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testMeta(id string) Meta {
	return Meta{ID: id, Zone: "zone-" + id, ClientAddr: id + ":6379", PeerAddr: id + ":7000", HTTPAddr: id + ":8080", State: Normal}
}

// startNode starts a node on a free local port (or bind, when set) and shuts
// it down at the end of the test.
func startNode(tb testing.TB, id, bind string, meta Meta, join ...string) *Membership {
	tb.Helper()
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	m, err := New(Config{NodeID: id, BindAddr: bind, Join: join, Meta: meta, Logger: testLogger(tb).With("node", id), Profile: ProfileLocal})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return m
}

// expect checks that m lists exactly the given members.
func expect(m *Membership, want ...Member) error {
	got := m.Members()
	if len(got) != len(want) {
		return fmt.Errorf("%s sees %d members %+v, want %d", m.LocalID(), len(got), got, len(want))
	}
	for i := range want {
		g := got[i]
		g.GossipAddr = "" // assigned by the system
		if g != want[i] {
			return fmt.Errorf("%s sees %+v, want %+v", m.LocalID(), g, want[i])
		}
	}
	return nil
}

func up(meta Meta) Member   { return Member{Meta: meta, Up: true} }
func down(meta Meta) Member { return Member{Meta: meta} }

func startCluster(tb testing.TB) []*Membership {
	tb.Helper()
	n1 := startNode(tb, "n1", "", testMeta("n1"))
	n2 := startNode(tb, "n2", "", testMeta("n2"), n1.LocalAddr())
	n3 := startNode(tb, "n3", "", testMeta("n3"), n1.LocalAddr())
	return []*Membership{n1, n2, n3}
}

func TestJoinSeesAllMembers(t *testing.T) {
	nodes := startCluster(t)
	for _, m := range nodes {
		checkFor(t, 10*time.Second, func() error {
			return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3")))
		})
	}
	for _, mem := range nodes[1].Members() {
		if mem.ID == "n1" && mem.GossipAddr != nodes[0].LocalAddr() {
			t.Errorf("n1 gossip addr %q, want %q", mem.GossipAddr, nodes[0].LocalAddr())
		}
	}
}

// A node that dies stays a member, down, and comes back up when it restarts
// under the same id, here on a new port and with new metadata.
func TestDownNodeKeptAndRejoins(t *testing.T) {
	nodes := startCluster(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	for _, m := range nodes {
		checkFor(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3"))) })
	}
	changed := n1.Subscribe()
	if err := n3.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Membership{n1, n2} {
		checkFor(t, 20*time.Second, func() error {
			return expect(m, up(testMeta("n1")), up(testMeta("n2")), down(testMeta("n3")))
		})
	}
	select {
	case <-changed:
	default:
		t.Error("no change signalled for n3 going down")
	}

	meta := testMeta("n3")
	meta.ClientAddr = "n3-new:6379"
	startNode(t, "n3", "", meta, n1.LocalAddr())
	for _, m := range []*Membership{n1, n2} {
		checkFor(t, 20*time.Second, func() error {
			return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(meta))
		})
	}
}

func TestSetStatePropagates(t *testing.T) {
	nodes := startCluster(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	for _, m := range nodes {
		checkFor(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3"))) })
	}
	leaving := testMeta("n2")
	leaving.State = Leaving
	if err := n2.SetState(t.Context(), Leaving); err != nil {
		t.Fatal(err)
	}
	if got := n2.LocalMeta(); got != leaving {
		t.Errorf("LocalMeta = %+v, want %+v", got, leaving)
	}
	for _, m := range nodes {
		checkFor(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(leaving), up(testMeta("n3"))) })
	}
	// Removed nodes drop out of Members, even while still gossiping.
	if err := n2.SetState(t.Context(), Removed); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Membership{n1, n3} {
		checkFor(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n3"))) })
	}
}

func TestLeaveMarksDown(t *testing.T) {
	nodes := startCluster(t)
	n1, n3 := nodes[0], nodes[2]
	for _, m := range nodes {
		checkFor(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3"))) })
	}
	if err := n3.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		return expect(n1, up(testMeta("n1")), up(testMeta("n2")), down(testMeta("n3")))
	})
	if err := n3.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := n3.Leave(t.Context()); err == nil {
		t.Error("Leave after Shutdown succeeded")
	}
}

// freeAddr returns a local address no one listens on (for TCP and UDP) at the
// time of the call.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	tb.Fatal("no free port")
	return ""
}

// Nodes may start before their seed: the join is retried in the background.
func TestJoinRetriesUntilSeedIsUp(t *testing.T) {
	seedAddr := freeAddr(t)
	n2 := startNode(t, "n2", "", testMeta("n2"), seedAddr)
	if err := expect(n2, up(testMeta("n2"))); err != nil {
		t.Fatal(err)
	}
	n1 := startNode(t, "n1", seedAddr, testMeta("n1"))
	for _, m := range []*Membership{n1, n2} {
		checkFor(t, 15*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2"))) })
	}
}

func TestSubscribeClosedOnShutdown(t *testing.T) {
	m := startNode(t, "solo", "", testMeta("solo"))
	ch := m.Subscribe()
	if err := m.SetState(t.Context(), Leaving); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; !ok {
		t.Fatal("channel closed before shutdown")
	}
	if err := m.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range ch { // drains a pending signal, then must end
	}
	if _, ok := <-m.Subscribe(); ok {
		t.Error("Subscribe after Shutdown returned an open channel")
	}
}
