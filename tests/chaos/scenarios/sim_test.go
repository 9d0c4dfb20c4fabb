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
	"github.com/ringkv/ringkv/internal/transport"
	"github.com/ringkv/ringkv/tests/chaos/checker"
	"github.com/ringkv/ringkv/tests/chaos/failpoint"
	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// simRepairInterval is the simulated nodes' anti-entropy period: short, so
// that convergence through repair is checked within a short run.
const simRepairInterval = time.Second

// simCluster is whole ringkv nodes (server.New, as the binary wires them) in
// this process: their peer requests and gossip go over a MemNetwork whose
// faults the test injects, so membership, anti-entropy and hints all run
// under them; clients speak RESP to each node's real client port. A "killed"
// node keeps its in-memory store and is cut from the network, its client
// requests refused as a dead process's would be; a paused one holds every
// request, as under SIGSTOP.
type simCluster struct {
	net    *transport.MemNetwork
	tc     *testcluster.Cluster
	clocks map[string]*clock.Offset
	httpc  *http.Client
	// clients[level][i] speaks to node i at that consistency level.
	clients map[string][]*redis.Client

	mu struct {
		sync.Mutex
		down   map[int]bool
		paused map[int]chan struct{} // closed on unpause
	}
}

var (
	_ cluster            = (*simCluster)(nil)
	_ antiEntropyCluster = (*simCluster)(nil)
)

func newSimCluster(t *testing.T, n int, seed uint64) *simCluster {
	t.Helper()
	c := &simCluster{
		net: transport.NewMemNetwork(int64(seed)), clocks: map[string]*clock.Offset{},
		httpc: &http.Client{Timeout: 5 * time.Second}, clients: map[string][]*redis.Client{},
	}
	c.mu.down, c.mu.paused = map[int]bool{}, map[int]chan struct{}{}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		c.clocks[id] = clock.NewOffset(clock.System{}, 0)
	}
	c.tc = testcluster.Start(t, testcluster.Options{
		Nodes: n, Replicas: n, Network: c.net,
		Clock: func(id string) clock.Clock { return c.clocks[id] },
		Configure: func(cfg *config.Config) {
			cfg.RepairInterval = simRepairInterval
			cfg.RequestTimeout = time.Second
		},
	})
	for _, nd := range c.tc.Nodes() {
		for _, lvl := range []string{traffic.One, traffic.Quorum, traffic.All} {
			cl := redis.NewClient(&redis.Options{
				Addr: nd.Addrs().Client, DialTimeout: time.Second, MaxRetries: -1,
				ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, PoolSize: 8,
				OnConnect: func(ctx context.Context, cn *redis.Conn) error {
					return cn.Do(ctx, "RINGKV.CONSISTENCY", lvl).Err()
				},
			})
			t.Cleanup(func() { cl.Close() })
			c.clients[lvl] = append(c.clients[lvl], cl)
		}
	}
	return c
}

func (c *simCluster) id(i int) string { return c.tc.Node(i).ID }

// errSimDown is what a client of a killed node sees: a refused dial, which
// sent nothing.
var errSimDown = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("sim: connection refused")}

// gate refuses a request to a killed node and holds one to a paused node
// until it is unpaused or ctx ends.
func (c *simCluster) gate(ctx context.Context, i int) error {
	c.mu.Lock()
	down, p := c.mu.down[i], c.mu.paused[i]
	c.mu.Unlock()
	if down {
		return errSimDown
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

func (c *simCluster) Nodes() int { return len(c.tc.Nodes()) }

// Members is every node: the simulation's membership never changes.
func (c *simCluster) Members() []int {
	m := make([]int, c.Nodes())
	for i := range m {
		m[i] = i
	}
	return m
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
	for a := range c.Nodes() {
		for b := range c.Nodes() {
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
	c.clocks[c.id(i)].Set(d)
	return nil
}

func (c *simCluster) Put(ctx context.Context, node int, key, value string, ttl time.Duration, level string) error {
	if err := c.gate(ctx, node); err != nil {
		return err
	}
	return respPut(ctx, c.clients[level][node], key, value, ttl)
}

func (c *simCluster) Get(ctx context.Context, node int, key, level string) (string, bool, error) {
	if err := c.gate(ctx, node); err != nil {
		return "", false, err
	}
	return respGet(ctx, c.clients[level][node], key)
}

func (c *simCluster) Del(ctx context.Context, node int, key, level string) error {
	if err := c.gate(ctx, node); err != nil {
		return err
	}
	return respDel(ctx, c.clients[level][node], key)
}

func (c *simCluster) Incr(ctx context.Context, node int, key string, delta int64, level string) error {
	if err := c.gate(ctx, node); err != nil {
		return err
	}
	return respIncr(ctx, c.clients[level][node], key, delta)
}

func (c *simCluster) Classify(err error) traffic.Outcome { return classifyRESP(err) }

func (c *simCluster) httpURL(i int, path string) string {
	return "http://" + c.tc.Node(i).Addrs().HTTP + path
}

// Versions reads key from every node's own replica: with as many replicas as
// nodes, every node holds every key.
func (c *simCluster) Versions(ctx context.Context, key string) ([]string, error) {
	out := make([]string, c.Nodes())
	for i := range out {
		v, err := localVersion(ctx, c.httpc, c.httpURL(i, "/v1/kv/"+key+"?local=true"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.id(i), err)
		}
		out[i] = v
	}
	return out, nil
}

func (c *simCluster) RangeRoots(ctx context.Context) (map[string][]checker.RangeRoot, error) {
	out := map[string][]checker.RangeRoot{}
	for i := range c.Nodes() {
		roots, err := rangeRoots(ctx, c.httpc, c.httpURL(i, "/v1/repair/status?roots=true"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.id(i), err)
		}
		out[c.id(i)] = roots
	}
	return out, nil
}

func (c *simCluster) Repair(ctx context.Context) error {
	var errs []error
	for i := range c.Nodes() {
		if err := postOK(ctx, c.httpc, c.httpURL(i, "/v1/repair")); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.id(i), err))
		}
	}
	return errors.Join(errs...)
}

func (c *simCluster) RepairInterval() time.Duration { return simRepairInterval }

// WaitHealthy waits until every node sees every node up and normal: the
// failure detectors, not the test, decide when the faults have healed.
func (c *simCluster) WaitHealthy(ctx context.Context) error {
	for {
		err := c.tc.CheckNormal(c.Nodes())
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
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
