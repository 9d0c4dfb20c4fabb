package antientropy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

// liveTopo is a fixed ring whose peers can go down and up during a test.
type liveTopo struct {
	r    *ring.Ring
	mu   sync.Mutex
	down map[string]bool
}

func (t *liveTopo) Ranges() []ring.Range { return t.r.Ranges() }

func (t *liveTopo) Peer(id string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return id, !t.down[id]
}

func (t *liveTopo) set(id string, down bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.down == nil {
		t.down = map[string]bool{}
	}
	t.down[id] = down
}

// holds reports whether key's record on s has the version of rec.
func holds(tb testing.TB, n *node, key string, want string) error {
	tb.Helper()
	rec, found, err := n.store.Get([]byte(key))
	if err != nil {
		return err
	}
	if !found || rec.Version.String() != want {
		return fmt.Errorf("%s: %s found=%v version %s, want %s", n.id, key, found, rec.Version, want)
	}
	return nil
}

// With a period far longer than the test, no continuous pass runs: a peer
// coming up is what gets the ranges shared with it compared, at once, so a
// node back from a partition converges without waiting for the next pass.
func TestPeerComingUpIsComparedWithoutWaitingForAPass(t *testing.T) {
	net := transport.NewMemNetwork(11)
	topo := &liveTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, 4, 3)}
	topo.set("c", true)
	slow := func(c *Config) { c.Interval = time.Hour }
	a := newNode(t, net, "a", topo, slow)
	b := newNode(t, net, "b", topo, slow)
	c := newNode(t, net, "c", topo, slow)
	for i := range 200 {
		mustApply(t, c.store, fmt.Sprintf("k%d", i), value(int64(i), "from c"))
	}
	for _, n := range []*node{a, b, c} {
		n.start(t)
	}
	a.svc.TopologyChanged() // c is down: nothing to compare with it yet
	topo.set("c", false)
	a.svc.TopologyChanged()
	want := ver(199, "n1").String()
	// Repairs of different ranges land in any order: wait for all of them.
	testutil.Eventually(t, 30*time.Second, func() error {
		if got := len(contents(t, a.store, 0, 0)); got != 200 {
			return fmt.Errorf("a holds %d records after comparing with c, want 200", got)
		}
		return holds(t, a, "k199", want)
	})
	if !b.svc.LastFullPass().IsZero() {
		t.Fatal("b ran a pass: the test's period is meant to rule passes out")
	}
}

// A comparison that fails (here: the peer has not rebuilt its hashes yet) is
// retried soon after, not at the next pass.
func TestFailedComparisonIsRetried(t *testing.T) {
	net := transport.NewMemNetwork(12)
	topo := &liveTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}}, 4, 2)}
	slow := func(c *Config) { c.Interval = time.Hour }
	a := newNode(t, net, "a", topo, slow)
	b := newNode(t, net, "b", topo, slow)
	for i := range 100 {
		mustApply(t, b.store, fmt.Sprintf("k%d", i), value(int64(i), "from b"))
	}
	cc := &countingCaller{inner: a.svc.net}
	a.svc.net = cc
	a.start(t)
	a.svc.TopologyChanged()
	// a's first comparisons fail with ErrNotReady, as b has not started.
	testutil.Eventually(t, 30*time.Second, func() error {
		if cc.failed.Load() == 0 {
			return fmt.Errorf("no failed comparison yet")
		}
		return nil
	})
	b.start(t)
	testutil.Eventually(t, 30*time.Second, func() error { return holds(t, a, "k99", ver(99, "n1").String()) })
	testutil.Eventually(t, 30*time.Second, func() error {
		if a.svc.LastFullPass().IsZero() {
			return fmt.Errorf("no full pass recorded once every owed comparison was made")
		}
		return nil
	})
}

// countingCaller counts the calls that failed.
type countingCaller struct {
	inner  Caller
	failed atomic.Int64
}

func (c *countingCaller) Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	p, err := c.inner.Call(ctx, addr, method, payload)
	if err != nil {
		c.failed.Add(1)
	}
	return p, err
}

// hangingCaller lets calls to one peer hang until their context ends, as a
// paused or cut-off peer does, and reports when one has started.
type hangingCaller struct {
	inner   Caller
	peer    string
	entered chan struct{}
	once    sync.Once
}

func (h *hangingCaller) Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	if addr != h.peer {
		return h.inner.Call(ctx, addr, method, payload)
	}
	h.once.Do(func() { close(h.entered) })
	<-ctx.Done()
	return nil, ctx.Err()
}

// A pass stuck on a peer that stopped answering lets go of it once gossip
// marks it down: the pass finishes with the other peer's ranges repaired and
// the stuck peer's left owed, instead of waiting out a call timeout per range.
func TestPassAbandonsPeerMarkedDown(t *testing.T) {
	net := transport.NewMemNetwork(13)
	topo := &liveTopo{r: ring.New([]ring.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, 4, 3)}
	a := newNode(t, net, "a", topo, func(c *Config) {
		c.CallTimeout = time.Hour
		c.Concurrency = 1
	})
	b := newNode(t, net, "b", topo, nil)
	c := newNode(t, net, "c", topo, nil)
	hc := &hangingCaller{inner: a.svc.net, peer: "c", entered: make(chan struct{})}
	a.svc.net = hc
	for i := range 100 {
		mustApply(t, b.store, fmt.Sprintf("k%d", i), value(int64(i), "from b"))
	}
	for _, n := range []*node{a, b, c} {
		n.start(t)
	}
	a.svc.Repair()
	<-hc.entered
	topo.set("c", true)
	a.svc.TopologyChanged()
	var p Progress
	testutil.Eventually(t, 30*time.Second, func() error {
		p, _ = a.svc.LastRepair()
		if !p.Done {
			return fmt.Errorf("repair still running: %+v", p)
		}
		return nil
	})
	if p.RecordsPulled != 100 || p.RangesSkipped != 11 || p.Errors != 1 {
		t.Fatalf("progress %+v, want 100 records pulled from b, c's 11 other ranges skipped, 1 error (the abandoned call)", p)
	}
	if !a.svc.LastFullPass().IsZero() {
		t.Fatal("a pass that left c's ranges owed counted as full")
	}
}
