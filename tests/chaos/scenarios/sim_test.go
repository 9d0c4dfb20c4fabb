package scenarios

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/handoff"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/transport"
	"github.com/ringkv/ringkv/tests/chaos/failpoint"
	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// simTopo is one node's view of the cluster: every node is a replica of every
// key (RF = nodes = 3), and liveness is what this node's failure detector
// would say. The ring has its own tests; here faults matter, not placement.
type simTopo struct {
	mu   sync.Mutex
	reps []replication.Replica
}

func (t *simTopo) Replicas([]byte) []replication.Replica {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.reps)
}
func (t *simTopo) Pending([]byte) []replication.Replica { return nil }
func (t *simTopo) Nodes() []replication.Replica         { return t.Replicas(nil) }

func (t *simTopo) setUp(id string, up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.reps {
		if t.reps[i].ID == id {
			t.reps[i].Up = up
		}
	}
}

func (t *simTopo) isUp(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.reps {
		if r.ID == id {
			return r.Up
		}
	}
	return false
}

// simNode is one node from the real components: Pebble in memory, a
// coordinator, a hint queue, an endpoint on the fault network, and a wall
// clock the test can skew.
type simNode struct {
	id    string
	wall  *clock.Offset
	guard *clock.Guard
	check *replication.ClockCheck
	store *storage.Store
	coord *replication.Coordinator
	hints *handoff.Queue
	topo  *simTopo

	mu struct {
		sync.Mutex
		down   bool
		paused chan struct{} // closed on unpause; nil when running
	}
}

// gate blocks while the node is paused, as a SIGSTOPped process holds
// requests, and reports whether the node is down.
func (n *simNode) gate(ctx context.Context) error {
	n.mu.Lock()
	p, down := n.mu.paused, n.mu.down
	n.mu.Unlock()
	if down {
		return errors.New("sim: connection refused")
	}
	if p != nil {
		select {
		case <-p:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// simMaxSkew is the nodes' --max-clock-skew, the server's default.
const simMaxSkew = 500 * time.Millisecond

type simCluster struct {
	net   *transport.MemNetwork
	nodes []*simNode
	// cut[a][b]: a cannot reach b; each side's failure detector then says down.
	mu  sync.Mutex
	cut map[[2]int]bool
}

var _ cluster = (*simCluster)(nil)

func newSimCluster(t *testing.T, n int, seed uint64) *simCluster {
	t.Helper()
	c := &simCluster{net: transport.NewMemNetwork(int64(seed)), cut: map[[2]int]bool{}}
	var reps []replication.Replica
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		reps = append(reps, replication.Replica{ID: id, Addr: id, Up: true})
	}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		nd := &simNode{id: id, wall: clock.NewOffset(clock.System{}, 0), topo: &simTopo{reps: slices.Clone(reps)}}
		// The clock guard and check, wired as the server wires them.
		nd.guard = clock.NewGuard(nd.wall, simMaxSkew)
		st, err := storage.Open(storage.Options{Dir: id, InMemory: true, Clock: nd.wall, Logger: slog.New(slog.DiscardHandler),
			Guard: func(w storage.Guarded) error { return nd.guard.Check(w.TS) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		nd.store = st
		tr := c.net.Listen(id, func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
			if err := nd.gate(ctx); err != nil {
				return nil, err
			}
			return nd.coord.Serve(ctx, from, method, payload)
		})
		q, err := handoff.New(handoff.Config{Clock: nd.wall, Registerer: prometheus.NewRegistry()}, st.Keyspace('h'),
			func(ctx context.Context, target string, key []byte, rec *record.Record) error {
				return nd.coord.SendApply(ctx, target, key, rec)
			}, nd.topo.isUp)
		if err != nil {
			t.Fatal(err)
		}
		nd.hints = q
		cfg := replication.DefaultConfig()
		cfg.NodeID = id
		cfg.RequestTimeout = 300 * time.Millisecond
		cfg.Registerer = prometheus.NewRegistry()
		cfg.Guard = nd.guard
		nd.coord = replication.New(cfg, clock.NewHLC(nd.wall, simMaxSkew), st, tr, nd.topo, q)
		// Rounds faster than the server's 1s: a simulated fault is held
		// for a second.
		nd.check, err = replication.NewClockCheck(replication.ClockCheckConfig{
			Interval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		}, nd.coord)
		if err != nil {
			t.Fatal(err)
		}
		q.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			q.Shutdown(ctx)
		})
		c.nodes = append(c.nodes, nd)
	}
	// Once every node serves: a round reads every peer's clock.
	for _, nd := range c.nodes {
		nd.check.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			nd.check.Shutdown(ctx)
		})
	}
	return c
}

// refreshLiveness recomputes each node's view, as gossip would after a probe
// round: a node is down to another when it is down, or cut from it.
func (c *simCluster) refreshLiveness() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, obs := range c.nodes {
		for j, nd := range c.nodes {
			nd.mu.Lock()
			down := nd.mu.down
			nd.mu.Unlock()
			up := !down && !c.cut[[2]int{i, j}] && !c.cut[[2]int{j, i}]
			if i == j {
				up = true
			}
			obs.topo.setUp(nd.id, up)
		}
		obs.hints.Kick()
	}
}

func (c *simCluster) Nodes() int { return len(c.nodes) }

// Members is every node: the simulation's membership never changes.
func (c *simCluster) Members() []int {
	m := make([]int, len(c.nodes))
	for i := range m {
		m[i] = i
	}
	return m
}

func (c *simCluster) Kill(_ context.Context, i int) error {
	nd := c.nodes[i]
	nd.mu.Lock()
	nd.mu.down = true
	nd.mu.Unlock()
	c.net.Down(nd.id)
	c.refreshLiveness()
	return nil
}

func (c *simCluster) Restart(_ context.Context, i int) error {
	nd := c.nodes[i]
	nd.mu.Lock()
	nd.mu.down = false
	nd.mu.Unlock()
	c.net.Up(nd.id)
	c.refreshLiveness()
	return nil
}

func (c *simCluster) Partition(_ context.Context, side []int) error {
	c.mu.Lock()
	for a := range c.nodes {
		for b := range c.nodes {
			if slices.Contains(side, a) != slices.Contains(side, b) {
				c.cut[[2]int{a, b}] = true
				c.net.Partition(c.nodes[a].id, c.nodes[b].id)
			}
		}
	}
	c.mu.Unlock()
	c.refreshLiveness()
	return nil
}

// PartitionOneWay cuts messages only; the failure detector's indirect probes
// keep both nodes up, so writes between them time out rather than skip.
func (c *simCluster) PartitionOneWay(_ context.Context, from, to int) error {
	c.net.PartitionOneWay(c.nodes[from].id, c.nodes[to].id)
	return nil
}

func (c *simCluster) Heal(_ context.Context) error {
	c.mu.Lock()
	clear(c.cut)
	c.mu.Unlock()
	c.net.Heal()
	c.refreshLiveness()
	return nil
}

func (c *simCluster) Pause(_ context.Context, i int) error {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.mu.paused == nil {
		nd.mu.paused = make(chan struct{})
	}
	return nil
}

func (c *simCluster) Unpause(_ context.Context, i int) error {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.mu.paused != nil {
		close(nd.mu.paused)
		nd.mu.paused = nil
	}
	return nil
}

func (c *simCluster) SkewClock(_ context.Context, i int, d time.Duration) error {
	c.nodes[i].wall.Set(d)
	return nil
}

func (c *simCluster) level(s string) replication.Level {
	l, err := replication.ParseLevel(s)
	if err != nil {
		panic(err) // the workloads only use the three levels
	}
	return l
}

func (c *simCluster) Put(ctx context.Context, node int, key, value string, ttl time.Duration, level string) error {
	nd := c.nodes[node]
	if err := nd.gate(ctx); err != nil {
		return err
	}
	m := replication.Mutation{Value: []byte(value)}
	if ttl > 0 {
		m.ExpireAt = nd.coord.Now().Add(ttl).UnixMilli()
	}
	_, _, err := nd.coord.Put(ctx, []byte(key), m, c.level(level))
	return err
}

func (c *simCluster) Get(ctx context.Context, node int, key, level string) (string, bool, error) {
	nd := c.nodes[node]
	if err := nd.gate(ctx); err != nil {
		return "", false, err
	}
	rec, found, err := nd.coord.Get(ctx, []byte(key), c.level(level))
	if err != nil || !found || !rec.Live(nd.coord.Now().UnixMilli()) {
		return "", false, err
	}
	return string(rec.Value), true, nil
}

func (c *simCluster) Del(ctx context.Context, node int, key, level string) error {
	nd := c.nodes[node]
	if err := nd.gate(ctx); err != nil {
		return err
	}
	_, _, err := nd.coord.Put(ctx, []byte(key), replication.Mutation{Tombstone: true}, c.level(level))
	return err
}

func (c *simCluster) Incr(ctx context.Context, node int, key string, delta int64, level string) error {
	nd := c.nodes[node]
	if err := nd.gate(ctx); err != nil {
		return err
	}
	_, err := nd.coord.Incr(ctx, []byte(key), delta, c.level(level))
	return err
}

// Classify follows the coordinator's contract: UNAVAILABLE and a refusal
// for the clock were not attempted, everything else that failed may have
// been applied.
func (c *simCluster) Classify(err error) traffic.Outcome {
	if errors.Is(err, replication.ErrUnavailable) {
		return traffic.Failed
	}
	if errors.Is(err, clock.ErrSkewed) {
		return traffic.Failed // refused for the node's clock before anything was sent
	}
	if err != nil && err.Error() == "sim: connection refused" {
		return traffic.Failed // the coordinator process is down: nothing was sent
	}
	return traffic.Indeterminate
}

func (c *simCluster) Versions(_ context.Context, key string) ([]string, error) {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		rec, found, err := nd.store.Get([]byte(key))
		if err != nil {
			return nil, err
		}
		if found {
			out[i] = rec.Version.String()
			if rec.Counter != nil {
				// Two states of a counter can share a version.
				out[i] += " " + string(rec.Value)
			}
		}
	}
	return out, nil
}

func (c *simCluster) WaitHealthy(context.Context) error {
	c.refreshLiveness()
	for _, nd := range c.nodes {
		nd.hints.Kick()
	}
	return nil
}

// TestSimulation runs the workloads and every fault against in-process
// clusters, one per seed. A seed fixes the fault schedule, the network's drops
// and each worker's choices; goroutine interleaving still varies.
func TestSimulation(t *testing.T) {
	dur := envDuration(t, 10*time.Second)
	n := 4
	if testing.Short() {
		n = 2
	}
	for _, seed := range seeds(t, n) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimCluster(t, 3, seed)
			run(t, c, runConfig{
				name: "simulation", seed: seed, duration: dur,
				calm: 300 * time.Millisecond, hold: time.Second,
				faults: failpoint.Steady(),
				traffic: traffic.Config{
					WriteOnceWorkers: 2, Registers: 4, RegisterReaders: 3, DeleteWorkers: 2, CounterWorkers: 2,
					Pause: 5 * time.Millisecond, OpTimeout: time.Second,
				},
				convergeWithin: 5 * time.Second,
			})
		})
	}
}
