package testcluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

// roundTrip writes through one node and reads the value back through
// another, which proves the nodes route requests to each other.
func roundTrip(t *testing.T, c *Cluster) {
	t.Helper()
	addrs := c.ClientAddrs()
	w := redis.NewClient(&redis.Options{Addr: addrs[0]})
	r := redis.NewClient(&redis.Options{Addr: addrs[len(addrs)-1]})
	defer w.Close()
	defer r.Close()
	ctx := context.Background()
	for i := range 20 {
		k := fmt.Sprintf("k%d", i)
		if err := w.Set(ctx, k, "v"+k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		got, err := r.Get(ctx, k).Result()
		if err != nil || got != "v"+k {
			t.Fatalf("GET %s through another node = %q, %v; want %q", k, got, err, "v"+k)
		}
	}
}

func TestOnRealSockets(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	for _, n := range c.Nodes() {
		a := n.Addrs()
		for _, addr := range []string{a.Client, a.HTTP, a.Peer, a.Gossip} {
			if addr == "" || addr[len(addr)-2:] == ":0" {
				t.Errorf("%s has no bound address in %+v", n.ID, a)
			}
		}
	}
	roundTrip(t, c)
}

// TestOnTheSimulatedNetwork checks that the network's faults reach gossip:
// a node cut off is seen down by the others, and up again after the heal.
func TestOnTheSimulatedNetwork(t *testing.T) {
	net := transport.NewMemNetwork(1)
	c := Start(t, Options{Nodes: 3, Network: net})
	if got := c.Node(0).Addrs().Peer; got != "n1" {
		t.Fatalf("n1's peer address is %q, want its id on the simulated network", got)
	}
	roundTrip(t, c)

	net.Isolate("n3")
	testutil.Eventually(t, time.Minute, func() error {
		for _, m := range c.Node(0).Status().Nodes {
			if m.ID == "n3" && m.Up {
				return fmt.Errorf("n1 still sees n3 up")
			}
		}
		return nil
	})
	net.Heal()
	if err := c.WaitNormal(3, time.Minute); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
}

// TestStopAndRestart checks that a restarted node rejoins under its id.
func TestStopAndRestart(t *testing.T) {
	net := transport.NewMemNetwork(2)
	c := Start(t, Options{Nodes: 3, Network: net})
	if err := c.Stop(1); err != nil {
		t.Fatal(err)
	}
	if len(c.Running()) != 2 {
		t.Fatalf("%d nodes running after a stop, want 2", len(c.Running()))
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNormal(3, time.Minute); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
}

// TestJoinOnTheSimulatedNetwork: a fourth node joins over the simulated
// network, streams its ranges and turns normal, and serves every key written
// before it came.
func TestJoinOnTheSimulatedNetwork(t *testing.T) {
	c := Start(t, Options{Nodes: 3, Network: transport.NewMemNetwork(3)})
	ctx := context.Background()
	w := redis.NewClient(&redis.Options{Addr: c.Node(0).Addrs().Client})
	defer w.Close()
	for i := range 50 {
		if err := w.Set(ctx, fmt.Sprintf("j%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	i, err := c.Add()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNormal(4, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	r := redis.NewClient(&redis.Options{Addr: c.Node(i).Addrs().Client})
	defer r.Close()
	for k := range 50 {
		got, err := r.Get(ctx, fmt.Sprintf("j%d", k)).Int()
		if err != nil || got != k {
			t.Fatalf("GET j%d through the joined node = %d, %v", k, got, err)
		}
	}
}

// TestDecommissionOnTheSimulatedNetwork: a node decommissioned through the
// admin route streams its ranges to their new owners and is removed in every
// view; once stopped it cannot come back. Continuous anti-entropy is off, so
// every key's replicas in the new ring hold it only if the streaming brought
// it.
func TestDecommissionOnTheSimulatedNetwork(t *testing.T) {
	c := Start(t, Options{Nodes: 4, Replicas: 3, Network: transport.NewMemNetwork(4),
		Configure: func(cfg *config.Config) { cfg.RepairInterval = 0 }})
	ctx := context.Background()
	const keys = 200
	writeAll(t, c, "d", keys)
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.Decommission(dctx, 1); err != nil {
		t.Fatal(err)
	}
	if !c.Node(1).Removed {
		t.Fatal("n2 not marked removed after its decommission")
	}
	if err := c.Stop(1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNormal(3, time.Minute); err != nil {
		t.Fatal(err)
	}
	var nodes []ring.Node
	byID := map[string]Node{}
	for _, n := range c.Running() {
		nodes = append(nodes, ring.Node{ID: n.ID})
		byID[n.ID] = n
	}
	r := ring.New(nodes, c.Node(0).Config.VNodes, 3)
	var missing []string
	for k := range keys {
		key := fmt.Sprintf("d%d", k)
		for _, rep := range r.Replicas([]byte(key)) {
			if !holdsLocally(t, byID[rep.ID], key) {
				missing = append(missing, key+" on "+rep.ID)
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d replicas in the new ring lack a key written at ALL before the decommission, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if err := c.Restart(1); err == nil {
		t.Fatal("Restart brought a decommissioned node back")
	}
}

// writeAll writes keys prefix0..prefix{n-1} through node 0 at ALL, so that
// every replica acknowledged each one.
func writeAll(t *testing.T, c *Cluster, prefix string, n int) {
	t.Helper()
	w := redis.NewClient(&redis.Options{Addr: c.Node(0).Addrs().Client, OnConnect: func(ctx context.Context, cn *redis.Conn) error {
		return cn.Do(ctx, "RINGKV.CONSISTENCY", "ALL").Err()
	}})
	defer w.Close()
	for i := range n {
		if err := w.Set(t.Context(), fmt.Sprintf("%s%d", prefix, i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// holdsLocally reports whether n's own store holds key (GET
// /v1/kv/{key}?local=true, which asks no other replica).
func holdsLocally(t *testing.T, n Node, key string) bool {
	t.Helper()
	resp, err := http.Get("http://" + n.Addrs().HTTP + "/v1/kv/" + key + "?local=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("local read of %s on %s: %s", key, n.ID, resp.Status)
	return false
}

// TestCrashedNodeKeepsAcknowledgedWrites: the nodes keep their data on
// crashable in-memory filesystems under --sync always. Node n2's disk is cut
// after it acknowledged writes at ALL (a crash clone keeps only what was
// synced): what survived holds every one of them, and n2 restarted on it
// serves them again by itself (hints and anti-entropy are off, and the reads
// ask no other replica).
func TestCrashedNodeKeepsAcknowledgedWrites(t *testing.T) {
	var mu sync.Mutex
	fss := map[string]*vfs.MemFS{}
	fsOf := func(id string) vfs.FS {
		mu.Lock()
		defer mu.Unlock()
		if fss[id] == nil {
			fss[id] = vfs.NewCrashableMem()
		}
		return fss[id]
	}
	c := Start(t, Options{Nodes: 3, FS: fsOf, Configure: func(cfg *config.Config) {
		cfg.Sync, cfg.RepairInterval, cfg.HintedHandoff = config.SyncAlways, 0, false
	}})
	const keys = 200
	writeAll(t, c, "c", keys)
	mu.Lock()
	// Two copies of the disk as a crash leaves it, no unsynced byte kept:
	// one to read here, one to restart n2 on.
	crashed := fss["n2"].CrashClone(vfs.CrashCloneCfg{})
	fss["n2"] = fss["n2"].CrashClone(vfs.CrashCloneCfg{})
	mu.Unlock()
	if err := c.Stop(1); err != nil {
		t.Fatal(err)
	}
	// Read the crashed disk directly: a node restarted on a disk that lost
	// its state would rejoin and stream its ranges back, hiding the loss.
	st, err := storage.Open(storage.Options{FS: crashed, Dir: "/data/n2", Sync: storage.SyncAlways})
	if err != nil {
		t.Fatalf("opening n2's crashed disk: %v", err)
	}
	var lost []string
	for i := range keys {
		k := fmt.Sprintf("c%d", i)
		if _, found, err := st.Get([]byte(k)); err != nil || !found {
			lost = append(lost, k)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(lost) > 0 {
		t.Fatalf("n2's disk lost %d of %d writes it acknowledged before the crash, e.g. %v", len(lost), keys, lost[:min(5, len(lost))])
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNormal(3, time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if k := fmt.Sprintf("c%d", i); !holdsLocally(t, c.Node(1), k) {
			t.Fatalf("n2 restarted on its crashed disk does not serve %s", k)
		}
	}
}
