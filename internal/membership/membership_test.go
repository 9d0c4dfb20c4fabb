package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringkv/ringkv/internal/testutil"
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
	return startMember(tb, m)
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
		testutil.Eventually(t, 10*time.Second, func() error {
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
		testutil.Eventually(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3"))) })
	}
	changed := n1.Subscribe()
	if err := n3.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Membership{n1, n2} {
		testutil.Eventually(t, 20*time.Second, func() error {
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
		testutil.Eventually(t, 20*time.Second, func() error {
			return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(meta))
		})
	}
}

func TestSetStatePropagates(t *testing.T) {
	nodes := startCluster(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	for _, m := range nodes {
		testutil.Eventually(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3"))) })
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
		testutil.Eventually(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(leaving), up(testMeta("n3"))) })
	}
	// Removed nodes drop out of Members, even while still gossiping.
	if err := n2.SetState(t.Context(), Removed); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Membership{n1, n3} {
		testutil.Eventually(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n3"))) })
	}
}

func TestLeaveMarksDown(t *testing.T) {
	nodes := startCluster(t)
	n1, n3 := nodes[0], nodes[2]
	for _, m := range nodes {
		testutil.Eventually(t, 10*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3"))) })
	}
	if err := n3.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		return expect(n1, up(testMeta("n1")), up(testMeta("n2")), down(testMeta("n3")))
	})
	if err := n3.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := n3.Leave(t.Context()); err == nil {
		t.Error("Leave after Shutdown succeeded")
	}
}

// Nodes may start before their seed: the join is retried in the background.
// The seed binds a port the kernel picks, so that no other process can take
// it; until the test brings it "up", n2's gossip to it is refused, as at a
// port that nothing has bound yet, and only n2's retries can then join them:
// n1 never heard of n2.
func TestJoinRetriesUntilSeedIsUp(t *testing.T) {
	fn := &faultNet{}
	n1 := startNode(t, "n1", "", testMeta("n1"))
	seed := n1.LocalAddr()
	fn.setDown(seed, true)
	n2 := startFaultNode(t, fn, "n2", func(*memberlist.Config) {}, seed)
	testutil.Eventually(t, 10*time.Second, func() error {
		if n2.JoinFailures() == 0 {
			return fmt.Errorf("n2 has not yet failed to join %s", seed)
		}
		return nil
	})
	if err := expect(n2, up(testMeta("n2"))); err != nil {
		t.Fatal(err)
	}
	if err := expect(n1, up(testMeta("n1"))); err != nil {
		t.Fatal(err)
	}
	fn.setDown(seed, false)
	for _, m := range []*Membership{n1, n2} {
		testutil.Eventually(t, 15*time.Second, func() error { return expect(m, up(testMeta("n1")), up(testMeta("n2"))) })
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

// faultNet cuts gossip between nodes for tests: a cut drops the packets and
// hangs the dials from one gossip address to another, as a firewall that
// drops packets does. A dial started during a cut hangs for its whole timeout
// even after the heal, the worst a real SYN retry schedule can do.
type faultNet struct {
	mu   sync.Mutex
	cut  map[[2]string]bool // [from, to] gossip addresses
	down map[string]bool    // gossip addresses that refuse everything
}

func (f *faultNet) isCut(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[[2]string{from, to}]
}

func (f *faultNet) isDown(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down[addr]
}

// setDown makes addr, for the nodes gossiping through f, a port nothing
// listens on: dials are refused at once and packets lost. Unlike a cut, it
// holds for every sender, known or not.
func (f *faultNet) setDown(addr string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down == nil {
		f.down = map[string]bool{}
	}
	f.down[addr] = down
}

// partition cuts (or, with cut false, restores) both directions between every
// node of a and every node of b.
func (f *faultNet) partition(a, b []*Membership, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut == nil {
		f.cut = map[[2]string]bool{}
	}
	for _, x := range a {
		for _, y := range b {
			f.cut[[2]string{x.LocalAddr(), y.LocalAddr()}] = cut
			f.cut[[2]string{y.LocalAddr(), x.LocalAddr()}] = cut
		}
	}
}

// faultTransport is memberlist's own transport with faultNet's cuts applied
// to what it sends. It deliberately implements only memberlist.Transport, so
// memberlist routes every send through WriteTo and DialTimeout.
type faultTransport struct {
	nt     *memberlist.NetTransport
	net    *faultNet
	self   string
	closed chan struct{}
	once   sync.Once
}

func (t *faultTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.nt.FinalAdvertiseAddr(ip, port)
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.net.isCut(t.self, addr) || t.net.isDown(addr) {
		return time.Now(), nil // dropped on the way
	}
	return t.nt.WriteTo(b, addr)
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.nt.PacketCh() }

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.net.isDown(addr) {
		return nil, fmt.Errorf("dial %s: connection refused (down)", addr)
	}
	if t.net.isCut(t.self, addr) {
		select {
		case <-time.After(timeout):
		case <-t.closed:
		}
		return nil, fmt.Errorf("dial %s: i/o timeout (cut)", addr)
	}
	return t.nt.DialTimeout(addr, timeout)
}

func (t *faultTransport) StreamCh() <-chan net.Conn { return t.nt.StreamCh() }

func (t *faultTransport) Shutdown() error {
	t.once.Do(func() { close(t.closed) })
	return t.nt.Shutdown()
}

// startFaultNode starts a node whose gossip goes through fn; tune adjusts its
// memberlist configuration first.
func startFaultNode(tb testing.TB, fn *faultNet, id string, tune func(*memberlist.Config), join ...string) *Membership {
	tb.Helper()
	m, err := New(Config{NodeID: id, BindAddr: "127.0.0.1:0", Join: join, Meta: testMeta(id), Logger: testLogger(tb).With("node", id), Profile: ProfileLocal})
	if err != nil {
		tb.Fatal(err)
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, Logger: m.mlc.Logger})
	if err != nil {
		tb.Fatal(err)
	}
	m.mlc.Transport = &faultTransport{nt: nt, net: fn, self: fmt.Sprintf("127.0.0.1:%d", nt.GetAutoBindPort()), closed: make(chan struct{})}
	tune(m.mlc)
	return startMember(tb, m)
}

// After a partition heals, nodes that declared each other dead see each other
// up again through the reconnect dials alone (memberlist never probes a dead
// node, and here gossips nothing to one either), even while a dial to a
// member still cut off hangs.
func TestHealedPartitionRejoins(t *testing.T) {
	fn := &faultNet{}
	tune := func(c *memberlist.Config) {
		// Refutations must not reach the other side by gossip: only the
		// reconnect exchange may bring the nodes back.
		c.GossipToTheDeadTime = time.Nanosecond
		// A dial into the partition hangs far longer than the test waits.
		c.TCPTimeout = time.Minute
		// The isolated node hears no confirmation of its suspicions, so
		// Lifeguard would stretch its suspicion timeout and probe interval:
		// keep both short so it declares its peers dead as soon as they do.
		c.SuspicionMaxTimeoutMult = 1
		c.AwarenessMaxMultiplier = 1
	}
	n1 := startFaultNode(t, fn, "n1", tune)
	var nodes []*Membership
	nodes = append(nodes, n1)
	for _, id := range []string{"n2", "n3", "n4"} {
		// Joining every earlier node, rather than relying on gossip to
		// spread each join, which the test's settings make slower.
		var seeds []string
		for _, m := range nodes {
			seeds = append(seeds, m.LocalAddr())
		}
		nodes = append(nodes, startFaultNode(t, fn, id, tune, seeds...))
	}
	n2, n3, n4 := nodes[1], nodes[2], nodes[3]
	all := []Member{up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3")), up(testMeta("n4"))}
	for _, m := range nodes {
		testutil.Eventually(t, 10*time.Second, func() error { return expect(m, all...) })
	}

	fn.partition([]*Membership{n4}, []*Membership{n1, n2, n3}, true)
	fn.partition([]*Membership{n1}, []*Membership{n2, n3}, true)
	testutil.Eventually(t, 20*time.Second, func() error {
		return expect(n1, up(testMeta("n1")), down(testMeta("n2")), down(testMeta("n3")), down(testMeta("n4")))
	})
	for _, m := range []*Membership{n2, n3} {
		testutil.Eventually(t, 20*time.Second, func() error {
			return expect(m, down(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3")), down(testMeta("n4")))
		})
	}

	fn.partition([]*Membership{n1}, []*Membership{n2, n3}, false)
	for _, m := range []*Membership{n1, n2, n3} {
		testutil.Eventually(t, 20*time.Second, func() error {
			return expect(m, up(testMeta("n1")), up(testMeta("n2")), up(testMeta("n3")), down(testMeta("n4")))
		})
	}
}

// startMember starts m and shuts it down when the test ends.
func startMember(tb testing.TB, m *Membership) *Membership {
	tb.Helper()
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

// loseUpdate changes m's state the way a dropped memberlist update leaves it:
// set here, never handed to memberlist.
func loseUpdate(m *Membership, s State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.meta.State = s
	m.mu.encoded, _ = m.mu.meta.encode()
}

// A state change that memberlist dropped (see reannounce) reaches the peers
// all the same.
func TestLostUpdateIsReannounced(t *testing.T) {
	n1 := startNode(t, "n1", "", testMeta("n1"))
	n2 := startNode(t, "n2", "", testMeta("n2"), n1.LocalAddr())
	testutil.Eventually(t, 10*time.Second, func() error { return expect(n1, up(testMeta("n1")), up(testMeta("n2"))) })
	loseUpdate(n2, Leaving)
	leaving := testMeta("n2")
	leaving.State = Leaving
	testutil.Eventually(t, 10*time.Second, func() error { return expect(n1, up(testMeta("n1")), up(leaving)) })
	if n2.Reannounced() == 0 {
		t.Error("the lost update reached n1 without being re-announced")
	}
	if got := n1.Reannounced(); got != 0 {
		t.Errorf("n1, whose updates all went out, re-announced %d times", got)
	}
}

// quietNode starts a node whose memberlist neither gossips, probes nor
// push/pulls on its own, so updates travel only when the test moves them.
func quietNode(tb testing.TB, id string, join ...string) *Membership {
	tb.Helper()
	m, err := New(Config{NodeID: id, BindAddr: "127.0.0.1:0", Join: join, Meta: testMeta(id), Logger: testLogger(tb).With("node", id), Profile: ProfileLocal})
	if err != nil {
		tb.Fatal(err)
	}
	m.mlc.GossipInterval, m.mlc.ProbeInterval, m.mlc.PushPullInterval = 0, 0, 0
	return startMember(tb, m)
}

// A node that missed an update learns it from Sync.
func TestSyncBringsMissedUpdate(t *testing.T) {
	n1 := quietNode(t, "n1")
	n2 := quietNode(t, "n2", n1.LocalAddr())
	testutil.Eventually(t, 10*time.Second, func() error { return expect(n1, up(testMeta("n1")), up(testMeta("n2"))) })
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := n2.SetState(ctx, Leaving); err == nil {
		t.Fatal("SetState's update was sent; this test needs it held back")
	}
	if err := expect(n1, up(testMeta("n1")), up(testMeta("n2"))); err != nil {
		t.Fatalf("before Sync: %v", err)
	}
	if got := n1.Sync(); got != 1 {
		t.Fatalf("Sync reached %d members, want 1", got)
	}
	leaving := testMeta("n2")
	leaving.State = Leaving
	if err := expect(n1, up(testMeta("n1")), up(leaving)); err != nil {
		t.Fatalf("after Sync: %v", err)
	}
}
