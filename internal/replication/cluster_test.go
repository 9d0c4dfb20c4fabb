package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/handoff"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

// simTopo is a fixed replica set (every key on every node, RF = nodes) whose
// liveness the test flips, standing in for gossip; the ring has its own tests.
type simTopo struct {
	mu      sync.Mutex
	reps    []Replica
	pending []Replica
}

func (t *simTopo) ReplicasAt(uint64) []Replica {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Replica(nil), t.reps...)
}

func (t *simTopo) Nodes() []Replica { return t.ReplicasAt(0) }

func (t *simTopo) PendingAt(uint64) []Replica {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Replica(nil), t.pending...)
}

func (t *simTopo) setUp(id string, up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.reps {
		if t.reps[i].ID == id {
			t.reps[i].Up = up
		}
	}
}

func (t *simTopo) setUpPending(id string, up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.pending {
		if t.pending[i].ID == id {
			t.pending[i].Up = up
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

// simNode is one in-process node: real Pebble (in memory), a coordinator, a
// hint queue on the store's hint keyspace, and a MemNetwork endpoint.
type simNode struct {
	id    string
	store *storage.Store
	coord *Coordinator
	hints *handoff.Queue
	tr    *transport.MemTransport
}

type simCluster struct {
	net   *transport.MemNetwork
	topo  *simTopo
	nodes []*simNode
}

func newSimCluster(t *testing.T, n int) *simCluster {
	t.Helper()
	c := &simCluster{net: transport.NewMemNetwork(1), topo: &simTopo{}}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		c.topo.reps = append(c.topo.reps, Replica{ID: id, Addr: id, Up: true})
	}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		st, err := storage.Open(storage.Options{Dir: id, InMemory: true, ExpiryInterval: -1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		nd := &simNode{id: id, store: st}
		nd.tr = c.net.Listen(id, func(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
			return nd.coord.Serve(ctx, from, method, payload)
		})
		cfg := DefaultConfig()
		cfg.NodeID = id
		cfg.RequestTimeout = 300 * time.Millisecond
		cfg.ReadRepairChance = 0
		q, err := handoff.New(handoff.Config{}, st.Keyspace('h'),
			func(ctx context.Context, target string, key []byte, rec *record.Record) error {
				return nd.coord.SendApply(ctx, target, key, rec)
			}, c.topo.isUp)
		if err != nil {
			t.Fatal(err)
		}
		nd.hints = q
		nd.coord = New(cfg, clock.NewHLC(clock.System{}, 500*time.Millisecond), st, nd.tr, c.topo, q)
		c.nodes = append(c.nodes, nd)
	}
	return c
}

// down takes a node off the network and marks it down, as gossip would.
func (c *simCluster) down(i int) {
	c.net.Down(c.nodes[i].id)
	c.topo.setUp(c.nodes[i].id, false)
}

func (c *simCluster) up(i int) {
	c.net.Up(c.nodes[i].id)
	c.topo.setUp(c.nodes[i].id, true)
}

func put(t *testing.T, co *Coordinator, key, val string, lvl Level) error {
	t.Helper()
	_, _, err := co.Put(t.Context(), []byte(key), Mutation{Value: []byte(val)}, lvl)
	return err
}

// putAll writes val to every key at lvl through co, failing the test on
// any error.
func putAll(t *testing.T, co *Coordinator, keys [][]byte, val string, lvl Level) {
	t.Helper()
	for _, k := range keys {
		if err := put(t, co, string(k), val, lvl); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
}

func localValue(t *testing.T, n *simNode, key string) (string, bool) {
	t.Helper()
	rec, found, err := n.store.Get([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if !found || !rec.Live(time.Now().UnixMilli()) {
		return "", false
	}
	return string(rec.Value), true
}

func TestQuorumWriteReadAcrossNodes(t *testing.T) {
	c := newSimCluster(t, 3)
	for i := range 500 {
		if err := put(t, c.nodes[0].coord, fmt.Sprint("k", i), fmt.Sprint("v", i), Quorum); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		rec, found, err := c.nodes[2].coord.Get(t.Context(), []byte(fmt.Sprint("k", i)), Quorum)
		if err != nil || !found || string(rec.Value) != fmt.Sprint("v", i) {
			t.Fatalf("k%d via n3: %q %v %v", i, rec.Value, found, err)
		}
	}
}

func TestLevelsWithOneNodeDown(t *testing.T) {
	c := newSimCluster(t, 3)
	c.down(1)
	co := c.nodes[0].coord
	if err := put(t, co, "a", "1", Quorum); err != nil {
		t.Fatalf("QUORUM write with one down: %v", err)
	}
	if err := put(t, co, "b", "1", One); err != nil {
		t.Fatalf("ONE write with one down: %v", err)
	}
	if err := put(t, co, "c", "1", All); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ALL write with one down: err = %v, want UNAVAILABLE", err)
	}
	if _, _, err := co.Get(t.Context(), []byte("a"), All); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ALL read with one down: err = %v, want UNAVAILABLE", err)
	}
	for _, lvl := range []Level{One, Quorum} {
		rec, found, err := c.nodes[2].coord.Get(t.Context(), []byte("a"), lvl)
		if err != nil || !found || string(rec.Value) != "1" {
			t.Fatalf("%s read: %q %v %v", lvl, rec.Value, found, err)
		}
	}
	c.down(2)
	if err := put(t, co, "d", "1", Quorum); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("QUORUM write with two down: err = %v, want UNAVAILABLE", err)
	}
}

func TestHintsDeliverMissedWrites(t *testing.T) {
	c := newSimCluster(t, 3)
	c.down(1)
	for i := range 200 {
		if err := put(t, c.nodes[0].coord, fmt.Sprint("k", i), "v", Quorum); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.nodes[0].hints.Backlog()["n2"]; got != 200 {
		t.Fatalf("backlog for n2 = %d, want 200", got)
	}
	c.up(1)
	if n := c.nodes[0].hints.ReplayNow(t.Context()); n != 200 {
		t.Fatalf("replayed %d hints, want 200", n)
	}
	for i := range 200 {
		if v, ok := localValue(t, c.nodes[1], fmt.Sprint("k", i)); !ok || v != "v" {
			t.Fatalf("n2 lacks k%d after hint replay", i)
		}
	}
}

func TestReadRepairFixesStaleReplica(t *testing.T) {
	c := newSimCluster(t, 3)
	if err := put(t, c.nodes[0].coord, "k", "old", All); err != nil {
		t.Fatal(err)
	}
	c.down(2)
	if err := put(t, c.nodes[0].coord, "k", "new", Quorum); err != nil {
		t.Fatal(err)
	}
	// Come back without replaying hints: n3 is stale.
	c.up(2)
	if v, _ := localValue(t, c.nodes[2], "k"); v != "old" {
		t.Fatalf("n3 should be stale, has %q", v)
	}
	// A QUORUM read through n3 asks n3 first (local) and one peer; whichever
	// peer it is, the answers differ or n3 is repaired by ALL below.
	rec, found, err := c.nodes[2].coord.Get(t.Context(), []byte("k"), All)
	if err != nil || !found || string(rec.Value) != "new" {
		t.Fatalf("ALL read: %q %v %v", rec.Value, found, err)
	}
	if v, _ := localValue(t, c.nodes[2], "k"); v != "new" {
		t.Fatalf("n3 not repaired by the read: has %q", v)
	}
}

func TestQuorumReadRepairsLocalStaleReplica(t *testing.T) {
	c := newSimCluster(t, 3)
	if err := put(t, c.nodes[0].coord, "k", "old", All); err != nil {
		t.Fatal(err)
	}
	c.down(2)
	if err := put(t, c.nodes[0].coord, "k", "new", Quorum); err != nil {
		t.Fatal(err)
	}
	c.up(2)
	// n3 reads itself plus one peer; both peers hold "new", so the read sees
	// the newer version and repairs n3 before answering.
	rec, _, err := c.nodes[2].coord.Get(t.Context(), []byte("k"), Quorum)
	if err != nil || string(rec.Value) != "new" {
		t.Fatalf("QUORUM read: %q %v", rec.Value, err)
	}
	if v, _ := localValue(t, c.nodes[2], "k"); v != "new" {
		t.Fatalf("n3 not repaired: has %q", v)
	}
}

func TestTimeoutIsIndeterminate(t *testing.T) {
	c := newSimCluster(t, 3)
	// Gossip still thinks n2 and n3 are up, but every message to them is lost:
	// the write lands locally and may have landed on them, so ALL must answer
	// TIMEOUT, never UNAVAILABLE.
	c.net.SetDropRate(1)
	err := put(t, c.nodes[0].coord, "k", "v", All)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want TIMEOUT", err)
	}
	if v, ok := localValue(t, c.nodes[0], "k"); !ok || v != "v" {
		t.Fatal("local replica should hold the write")
	}
}

func TestUnreachableReplicasGetHints(t *testing.T) {
	c := newSimCluster(t, 3)
	// n3 is cut off but gossip has not noticed: its send fails as not sent,
	// the write still reaches QUORUM, and n3 gets a hint.
	c.net.Isolate("n3")
	if err := put(t, c.nodes[0].coord, "k", "v", Quorum); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, func() error {
		if got := c.nodes[0].hints.Backlog()["n3"]; got != 1 {
			return fmt.Errorf("n3 backlog %d", got)
		}
		return nil
	})
}

func TestDeleteAndPrev(t *testing.T) {
	c := newSimCluster(t, 3)
	co := c.nodes[0].coord
	if err := put(t, co, "k", "v", Quorum); err != nil {
		t.Fatal(err)
	}
	prev, found, err := co.Put(t.Context(), []byte("k"), Mutation{Tombstone: true}, Quorum)
	if err != nil || !found || string(prev.Value) != "v" {
		t.Fatalf("delete prev: %q %v %v", prev.Value, found, err)
	}
	rec, found, err := c.nodes[1].coord.Get(t.Context(), []byte("k"), Quorum)
	if err != nil || !found || !rec.Tombstone {
		t.Fatalf("read after delete: %+v %v %v", rec, found, err)
	}
}

func TestScanWalksAllKeys(t *testing.T) {
	c := newSimCluster(t, 3)
	want := map[string]bool{}
	for i := range 333 {
		k := fmt.Sprint("key-", i)
		want[k] = true
		// ALL, so every replica holds every key when DBSIZE counts them.
		if err := put(t, c.nodes[i%3].coord, k, "v", All); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.nodes[0].coord.Put(t.Context(), []byte("key-0"), Mutation{Tombstone: true}, All); err != nil {
		t.Fatal(err)
	}
	delete(want, "key-0")
	got := map[string]bool{}
	var cursor uint64
	for pages := 0; ; pages++ {
		keys, next, err := c.nodes[1].coord.Scan(t.Context(), cursor, 25, Quorum)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if got[string(k)] {
				t.Fatalf("key %s returned twice", k)
			}
			got[string(k)] = true
		}
		if next == 0 {
			break
		}
		if pages > 1000 {
			t.Fatal("scan does not end")
		}
		cursor = next
	}
	if len(got) != len(want) {
		t.Fatalf("scan returned %d keys, want %d", len(got), len(want))
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("scan missed %s", k)
		}
	}
	n, err := c.nodes[0].coord.DBSize(t.Context())
	if err != nil || n < 300 || n > 340 {
		t.Fatalf("DBSize = %d, %v", n, err)
	}
}

func TestWritesReachPendingReplicas(t *testing.T) {
	c := newSimCluster(t, 4)
	// n4 is joining: it is no natural replica yet but gains the range.
	c.topo.mu.Lock()
	c.topo.pending = []Replica{c.topo.reps[3]}
	c.topo.reps = c.topo.reps[:3]
	c.topo.mu.Unlock()
	if err := put(t, c.nodes[0].coord, "k", "v", Quorum); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, func() error {
		if v, ok := localValue(t, c.nodes[3], "k"); !ok || v != "v" {
			return fmt.Errorf("pending replica lacks the write: %q %v", v, ok)
		}
		return nil
	})
	c.down(3)
	c.topo.setUpPending("n4", false)
	if err := put(t, c.nodes[0].coord, "k2", "v", All); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ALL with the pending replica down: %v, want UNAVAILABLE", err)
	}
	if err := put(t, c.nodes[0].coord, "k3", "v", Quorum); err != nil {
		t.Fatalf("QUORUM with the pending replica down (3 natural up): %v", err)
	}
}

// A DEL that starts after a SET was acknowledged must delete it, also when
// the SET went through a node whose clock runs ahead: the replicas report
// the SET's newer version and the coordinator writes again past it. (The
// chaos suite found the SET winning: seed 8313543208232245051, 94 ms skew.)
func TestWriteAfterAheadWriteWins(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprint("batch=", batch), func(t *testing.T) {
			c := newSimCluster(t, 3)
			// n1's clock runs 200 ms ahead of the others'. n3 is down during
			// the SETs, so when it coordinates the DELs nothing has carried
			// n1's time to it: its tombstones are older than the SETs.
			c.nodes[0].coord.hlc = clock.NewHLC(clock.NewOffset(clock.System{}, 200*time.Millisecond), 500*time.Millisecond)
			c.down(2)
			for i := range 20 {
				k := fmt.Sprint("k", i)
				if err := put(t, c.nodes[0].coord, k, "v", Quorum); err != nil {
					t.Fatal(err)
				}
			}
			c.up(2)
			co := c.nodes[2].coord
			keys := make([][]byte, 20)
			muts := make([]Mutation, 20)
			for i := range keys {
				keys[i] = []byte(fmt.Sprint("k", i))
				muts[i] = Mutation{Tombstone: true}
			}
			if batch {
				for i, err := range co.PutBatch(t.Context(), keys, muts, Quorum) {
					if err != nil {
						t.Fatalf("DEL k%d: %v", i, err)
					}
				}
			} else {
				for _, k := range keys {
					if _, _, err := co.Put(t.Context(), k, Mutation{Tombstone: true}, Quorum); err != nil {
						t.Fatalf("DEL %s: %v", k, err)
					}
				}
			}
			for _, k := range keys {
				rec, found, err := c.nodes[1].coord.Get(t.Context(), k, All)
				if err != nil {
					t.Fatal(err)
				}
				if found && rec.Live(time.Now().UnixMilli()) {
					t.Fatalf("%s holds %q after an acknowledged DEL that followed its SET", k, rec.Value)
				}
			}
		})
	}
}

// TestReadsAlone checks the promise the RESP server's event loops rely on:
// only the sole member of a cluster says it reads alone, and it stops saying
// so as soon as another node is listed, down or not.
func TestReadsAlone(t *testing.T) {
	check := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s: ReadsAlone = %v, want %v", what, got, want)
		}
	}
	one := newSimCluster(t, 1)
	check("a cluster of one", one.nodes[0].coord.ReadsAlone(), true)
	one.topo.reps = append(one.topo.reps, Replica{ID: "n2", Addr: "n2"})
	check("with a second member, down", one.nodes[0].coord.ReadsAlone(), false)

	three := newSimCluster(t, 3)
	for _, nd := range three.nodes {
		check(nd.id+" of three", nd.coord.ReadsAlone(), false)
	}
	three.down(1)
	three.down(2)
	check("n1 with both peers down", three.nodes[0].coord.ReadsAlone(), false)
}
