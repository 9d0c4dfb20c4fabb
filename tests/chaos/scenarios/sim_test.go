package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/testcluster"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
	"github.com/ringkv/ringkv/tests/chaos/checker"
	"github.com/ringkv/ringkv/tests/chaos/failpoint"
	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// simRepairInterval is the simulated nodes' anti-entropy period: short, so
// that convergence through repair is checked within a short run.
const simRepairInterval = time.Second

// simHintWindow is the simulated nodes' --max-hint-window: far shorter than
// a fault's hold, so that hints replay only what a replica missed in the
// last moments of an outage and the rest is left to anti-entropy, as for a
// replica down longer than the window in production. The convergence check
// then needs both; with the default window hints alone would heal every
// fault of a short run, and the check would pass with anti-entropy off.
const simHintWindow = 300 * time.Millisecond

// simReplicas is the replication factor: a join or decommission changes the
// membership between 3 and failpoint.MaxMembers nodes, each key on 3.
const simReplicas = 3

// simTopologyTimeout bounds a join or a decommission, range streaming and
// every member's view included.
const simTopologyTimeout = 2 * time.Minute

// simCluster is whole ringkv nodes (server.New, as the binary wires them) in
// this process: their peer requests and gossip go over a MemNetwork whose
// faults the test injects, so membership, anti-entropy, hints and range
// streaming all run under them; clients speak RESP to each node's real
// client port. A "killed" node keeps its in-memory store and is cut from the
// network, its client requests refused as a dead process's would be; a
// paused one holds every request, as under SIGSTOP. A joined node is the
// next number (n4, n5 ...) with an empty store; a decommissioned one keeps
// its number, stopped, and its clients' requests go to the next member.
type simCluster struct {
	t     *testing.T
	net   *transport.MemNetwork
	tc    *testcluster.Cluster
	httpc *http.Client

	mu struct {
		sync.Mutex
		clocks map[string]*clock.Offset
		// clients[level][i] speaks to node i at that consistency level; a
		// node counts in Nodes once it has them.
		clients map[string][]*redis.Client
		removed []bool                // decommissioned and stopped
		down    map[int]bool          // killed
		paused  map[int]chan struct{} // closed on unpause
	}
}

var (
	_ cluster           = (*simCluster)(nil)
	_ failpoint.Resizer = (*simCluster)(nil)
)

func newSimCluster(t *testing.T, n int, seed uint64) *simCluster {
	t.Helper()
	c := &simCluster{t: t, net: transport.NewMemNetwork(int64(seed)), httpc: &http.Client{Timeout: 5 * time.Second}}
	c.mu.clocks, c.mu.clients = map[string]*clock.Offset{}, map[string][]*redis.Client{}
	c.mu.down, c.mu.paused = map[int]bool{}, map[int]chan struct{}{}
	c.tc = testcluster.Start(t, testcluster.Options{
		Nodes: n, Replicas: simReplicas, Network: c.net,
		Clock: func(id string) clock.Clock { return c.clock(id) },
		Configure: func(cfg *config.Config) {
			cfg.RepairInterval = simRepairInterval
			cfg.MaxHintWindow = simHintWindow
			cfg.RequestTimeout = time.Second
		},
	})
	for i := range n {
		c.addClients(i)
	}
	return c
}

// clock returns node id's wall clock, made at its first start.
func (c *simCluster) clock(id string) *clock.Offset {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.clocks[id] == nil {
		c.mu.clocks[id] = clock.NewOffset(clock.System{}, 0)
	}
	return c.mu.clocks[id]
}

// addClients makes node i's clients, one per consistency level, which makes
// it count in Nodes (and the traffic reach it).
func (c *simCluster) addClients(i int) {
	addr := c.tc.Node(i).Addrs().Client
	c.mu.Lock()
	defer c.mu.Unlock()
	for lvl, cl := range levelClients(c.t, addr, "") {
		c.mu.clients[lvl] = append(c.mu.clients[lvl], cl)
	}
	c.mu.removed = append(c.mu.removed, false)
}

func (c *simCluster) id(i int) string { return c.tc.Node(i).ID }

// errSimDown is what a client of a killed node sees: a refused dial, which
// sent nothing.
var errSimDown = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("sim: connection refused")}

// client returns the client at level for a request to node i (redirected
// when i was decommissioned) once the gate lets it pass: it refuses a
// request to a killed node and holds one to a paused node until it is
// unpaused or ctx ends.
func (c *simCluster) client(ctx context.Context, level string, i int) (*redis.Client, error) {
	c.mu.Lock()
	i = redirect(c.mu.removed, i)
	cl, down, p := c.mu.clients[level][i], c.mu.down[i], c.mu.paused[i]
	c.mu.Unlock()
	if down {
		return nil, errSimDown
	}
	if p != nil {
		select {
		case <-p:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return cl, nil
}

func (c *simCluster) Nodes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.removed)
}

func (c *simCluster) Members() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return members(c.mu.removed)
}

func (c *simCluster) Kill(_ context.Context, i int) error {
	c.mu.Lock()
	c.mu.down[i] = true
	c.mu.Unlock()
	c.net.Down(c.id(i))
	return nil
}

func (c *simCluster) Restart(_ context.Context, i int) error {
	c.mu.Lock()
	delete(c.mu.down, i)
	c.mu.Unlock()
	c.net.Up(c.id(i))
	return nil
}

func (c *simCluster) Partition(_ context.Context, side []int) error {
	in := map[int]bool{}
	for _, i := range side {
		in[i] = true
	}
	for _, a := range c.Members() {
		for _, b := range c.Members() {
			if in[a] && !in[b] {
				c.net.Partition(c.id(a), c.id(b))
			}
		}
	}
	return nil
}

func (c *simCluster) PartitionOneWay(_ context.Context, from, to int) error {
	c.net.PartitionOneWay(c.id(from), c.id(to))
	return nil
}

func (c *simCluster) Heal(_ context.Context) error {
	c.net.Heal()
	return nil
}

func (c *simCluster) Pause(_ context.Context, i int) error {
	c.mu.Lock()
	if c.mu.paused[i] == nil {
		c.mu.paused[i] = make(chan struct{})
	}
	c.mu.Unlock()
	c.net.Pause(c.id(i))
	return nil
}

func (c *simCluster) Unpause(_ context.Context, i int) error {
	c.net.Resume(c.id(i))
	c.mu.Lock()
	if p := c.mu.paused[i]; p != nil {
		close(p)
		delete(c.mu.paused, i)
	}
	c.mu.Unlock()
	return nil
}

func (c *simCluster) SkewClock(_ context.Context, i int, d time.Duration) error {
	c.clock(c.id(i)).Set(d)
	return nil
}

func (c *simCluster) Put(ctx context.Context, node int, key, value string, ttl time.Duration, level string) error {
	cl, err := c.client(ctx, level, node)
	if err != nil {
		return err
	}
	return respPut(ctx, cl, key, value, ttl)
}

func (c *simCluster) Get(ctx context.Context, node int, key, level string) (string, bool, error) {
	cl, err := c.client(ctx, level, node)
	if err != nil {
		return "", false, err
	}
	return respGet(ctx, cl, key)
}

func (c *simCluster) Del(ctx context.Context, node int, key, level string) error {
	cl, err := c.client(ctx, level, node)
	if err != nil {
		return err
	}
	return respDel(ctx, cl, key)
}

func (c *simCluster) Incr(ctx context.Context, node int, key string, delta int64, level string) error {
	cl, err := c.client(ctx, level, node)
	if err != nil {
		return err
	}
	return respIncr(ctx, cl, key, delta)
}

func (c *simCluster) Classify(err error) traffic.Outcome { return classifyRESP(err) }

func (c *simCluster) httpURL(i int, path string) string {
	return "http://" + c.tc.Node(i).Addrs().HTTP + path
}

// Versions reads key from the own replica of each of its replicas in the ring
// of the current members.
func (c *simCluster) Versions(ctx context.Context, key string) ([]string, error) {
	return replicaVersions(ctx, c.httpc, c.httpURL, c.Members(), c.tc.Node(0).Config.VNodes, simReplicas, key)
}

func (c *simCluster) RangeRoots(ctx context.Context) (map[string][]checker.RangeRoot, error) {
	return membersRoots(ctx, c.httpc, c.httpURL, c.Members())
}

func (c *simCluster) Repair(ctx context.Context) error {
	return repairMembers(ctx, c.httpc, c.httpURL, c.Members())
}

func (c *simCluster) RepairInterval() time.Duration { return simRepairInterval }

// Join starts the next node, empty, joining through the running ones while
// the traffic goes on (it reaches the new node as soon as it listens), and
// waits until every member, the new one included, sees it normal.
func (c *simCluster) Join(ctx context.Context) (int, error) {
	i, err := c.tc.Add()
	if err != nil {
		return i, err
	}
	c.addClients(i)
	ctx, cancel := context.WithTimeout(ctx, simTopologyTimeout)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		return i, fmt.Errorf("n%d never became normal everywhere: %w", i+1, err)
	}
	return i, nil
}

// Decommission takes node i out through the admin route, as an operator
// would: it streams its ranges away and is removed in every view; then its
// clients' requests go to the next member and it is stopped.
func (c *simCluster) Decommission(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, simTopologyTimeout)
	defer cancel()
	if err := c.tc.Decommission(ctx, i); err != nil {
		return err
	}
	c.mu.Lock()
	c.mu.removed[i] = true
	c.mu.Unlock()
	if err := c.tc.Stop(i); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

// WaitHealthy waits until every member sees exactly the members, up and
// normal: the failure detectors, not the test, decide when the faults have
// healed.
func (c *simCluster) WaitHealthy(ctx context.Context) error {
	return testutil.Poll(ctx, 100*time.Millisecond, func() error { return checkSettled(c.Members(), c.view) })
}

// view is node i's view of the members, as its /v1/cluster would list it.
func (c *simCluster) view(i int) (map[string]memberView, error) {
	out := map[string]memberView{}
	for _, m := range c.tc.Node(i).Status().Nodes {
		out[m.ID] = memberView{ID: m.ID, Up: m.Up, State: m.State}
	}
	return out, nil
}

// simFaults is every fault the simulation can inject: a join first, so that
// the steady faults act on 4 nodes with 3 replicas (a key's replicas are not
// every node), then a decommission back to 3.
func simFaults() []failpoint.Failpoint {
	fs := []failpoint.Failpoint{failpoint.Join}
	fs = append(fs, failpoint.Steady()...)
	return append(fs, failpoint.Decommission)
}

// TestSimulation runs the workloads and every fault the simulation can
// inject against in-process clusters, one per seed. A run goes on until each
// fault was injected once, which with the join and the decommission (5 to
// 7 s each under load on the 2-core dev box) takes about 20 s, longer than
// the default duration. A seed fixes the fault schedule, the network's drops
// and each worker's choices; goroutine interleaving still varies.
func TestSimulation(t *testing.T) {
	dur := envDuration(t, 10*time.Second)
	n := 3
	if testing.Short() {
		n = 1
	}
	for _, seed := range seeds(t, n) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimCluster(t, 3, seed)
			run(t, c, runConfig{
				name: "simulation", seed: seed, duration: dur,
				calm: 300 * time.Millisecond, hold: time.Second,
				faults: simFaults(),
				traffic: traffic.Config{
					WriteOnceWorkers: 2, Registers: 4, RegisterReaders: 3, DeleteWorkers: 2, CounterWorkers: 2,
					Pause: 5 * time.Millisecond, OpTimeout: time.Second,
				},
				convergeWithin: 5 * time.Second,
			})
		})
	}
}
