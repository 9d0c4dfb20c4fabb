package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/testutil"
)

// topoKeys is how many keys the topology tests preload: the 100k of the
// issue, which CI's two cores load and move in well under a minute per test.
// RINGKV_TOPO_KEYS changes it for a quicker or a larger run.
var topoKeys = func() int {
	if n, err := strconv.Atoi(os.Getenv("RINGKV_TOPO_KEYS")); err == nil && n > 0 {
		return n
	}
	return 100000
}()

type memberState struct {
	ID    string `json:"id"`
	Up    bool   `json:"up"`
	State string `json:"state"`
}

func states(n *node) (map[string]memberState, error) {
	resp, err := httpc.Get("http://" + n.HTTP + "/v1/cluster")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct{ Nodes []memberState }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	out := map[string]memberState{}
	for _, m := range st.Nodes {
		out[m.ID] = m
	}
	return out, nil
}

// waitRing waits until every node in nodes lists exactly want as normal
// members (other ids absent).
func waitRing(t *testing.T, total time.Duration, nodes []*node, want ...string) {
	t.Helper()
	testutil.Eventually(t, total, func() error {
		for _, n := range nodes {
			st, err := states(n)
			if err != nil {
				return err
			}
			if len(st) != len(want) {
				return fmt.Errorf("%s lists %v, want %v", n.ID, st, want)
			}
			for _, id := range want {
				if st[id].State != "normal" {
					return fmt.Errorf("%s sees %s as %q", n.ID, id, st[id].State)
				}
			}
		}
		return nil
	})
}

func preload(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	for i := 0; i < n; i += 500 {
		pipe := c.Pipeline()
		for j := i; j < min(i+500, n); j++ {
			pipe.Set(t.Context(), "k"+strconv.Itoa(j), "v"+strconv.Itoa(j), 0)
		}
		if _, err := pipe.Exec(t.Context()); err != nil {
			t.Fatalf("preload: %v", err)
		}
	}
}

// traffic runs QUORUM writers of fresh keys and QUORUM readers of keys
// already acknowledged (preloaded or written) until stop; every read of an
// acknowledged key must return its value.
type traffic struct {
	acked      sync.Map // key -> value
	ackedN     atomic.Int64
	reads      atomic.Int64
	writeErrs  atomic.Int64
	violations atomic.Int64
	firstBad   atomic.Value
	wg         sync.WaitGroup
	stop       chan struct{}
}

func startTraffic(t *testing.T, clients []*redis.Client, preloaded int) *traffic {
	t.Helper()
	tr := &traffic{stop: make(chan struct{})}
	for g, c := range clients {
		tr.wg.Go(func() { // writer
			for i := 0; ; i++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d-%d", g, i), fmt.Sprintf("val-%d-%d", g, i)
				if err := c.Set(context.Background(), k, v, 0).Err(); err != nil {
					tr.writeErrs.Add(1) // unacknowledged: may or may not exist
					continue
				}
				tr.acked.Store(k, v)
				tr.ackedN.Add(1)
			}
		})
		tr.wg.Go(func() { // reader
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-tr.stop:
					return
				default:
				}
				var k, want string
				if n := tr.ackedN.Load(); n > 0 && rng.IntN(2) == 0 {
					// A recent write: the likeliest to be missed by a switch.
					tr.acked.Range(func(key, val any) bool {
						k, want = key.(string), val.(string)
						return rng.IntN(int(min(n, 50))) != 0
					})
				} else {
					i := rng.IntN(preloaded)
					k, want = "k"+strconv.Itoa(i), "v"+strconv.Itoa(i)
				}
				got, err := c.Get(context.Background(), k).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					continue // an error is not an answer
				}
				tr.reads.Add(1)
				if got != want {
					tr.violations.Add(1)
					tr.firstBad.CompareAndSwap(nil, fmt.Sprintf("%s: got %q (err %v), want %q", k, got, err, want))
				}
			}
		})
	}
	return tr
}

func (tr *traffic) finish(t *testing.T) {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	t.Logf("traffic: %d acknowledged writes, %d failed writes, %d reads checked", tr.ackedN.Load(), tr.writeErrs.Load(), tr.reads.Load())
	if v := tr.violations.Load(); v > 0 {
		t.Errorf("%d reads missed an acknowledged write; first: %v", v, tr.firstBad.Load())
	}
}

// changedShare is the share of keys (sampled by their names) whose replica
// set differs between two memberships.
func changedShare(before, after []string, keys int) float64 {
	mk := func(ids []string) *ring.Ring {
		var nodes []ring.Node
		for _, id := range ids {
			nodes = append(nodes, ring.Node{ID: id})
		}
		return ring.New(nodes, 64, 3)
	}
	a, b := mk(before), mk(after)
	changed := 0
	for i := range keys {
		k := []byte("k" + strconv.Itoa(i))
		ra, rb := a.Replicas(k), b.Replicas(k)
		same := len(ra) == len(rb)
		for _, n := range ra {
			same = same && containsID(rb, n.ID)
		}
		if !same {
			changed++
		}
	}
	return float64(changed) / float64(keys)
}

func containsID(set []ring.Node, id string) bool {
	for _, n := range set {
		if n.ID == id {
			return true
		}
	}
	return false
}

// checkAll reads every preloaded key at QUORUM through c.
func checkAll(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	for i := 0; i < n; i += 500 {
		pipe := c.Pipeline()
		cmds := make([]*redis.StringCmd, 0, 500)
		for j := i; j < min(i+500, n); j++ {
			cmds = append(cmds, pipe.Get(t.Context(), "k"+strconv.Itoa(j)))
		}
		_, _ = pipe.Exec(t.Context()) // each command's own error is checked below
		for j, c := range cmds {
			if v, err := c.Result(); v != "v"+strconv.Itoa(i+j) {
				t.Fatalf("k%d: %q, %v", i+j, v, err)
			}
		}
	}
}

// A 4th node joins a loaded 3-node cluster under QUORUM traffic: no
// acknowledged write is ever missed, and the share of keys whose replica set
// changed is what the ring predicts: with RF 3 and 4 nodes a key's set gains
// the new node with probability 3/4; 64 vnodes keep it within ±0.1.
func TestJoinStreamsUnderTraffic(t *testing.T) {
	nodes := startCluster(t, 3, "--in-memory")
	c := nodes[0].redis()
	preload(t, c, topoKeys)
	waitRing(t, 20*time.Second, nodes, "n1", "n2", "n3")

	clients := []*redis.Client{nodes[0].redis(), nodes[1].redis(), nodes[2].redis()}
	tr := startTraffic(t, clients, topoKeys)
	n4 := newNode(t, "n4", "--in-memory")
	n4.Join = []string{nodes[0].Gossip}
	start := time.Now()
	n4.Start()
	all := append(nodes, n4)
	waitRing(t, 80*time.Second, all, "n1", "n2", "n3", "n4")
	took := time.Since(start)
	if b := streamedBytes(t, n4); b > 0 {
		t.Logf("join took %v; n4 streamed %.1f MB (%.1f MB/s over the whole join)", took, float64(b)/1e6, float64(b)/1e6/took.Seconds())
	}
	time.Sleep(time.Second) // traffic across the switch
	tr.finish(t)

	share := changedShare([]string{"n1", "n2", "n3"}, []string{"n1", "n2", "n3", "n4"}, topoKeys)
	t.Logf("keys whose replica set changed: %.3f (expected 0.75)", share)
	if share < 0.65 || share > 0.85 {
		t.Errorf("changed share %.3f outside [0.65, 0.85]", share)
	}
	// The new node now serves reads: every key is still there.
	checkAll(t, n4.redis(), topoKeys)
}

func TestDecommissionStreamsUnderTraffic(t *testing.T) {
	nodes := startCluster(t, 4, "--in-memory")
	waitRing(t, 30*time.Second, nodes, "n1", "n2", "n3", "n4")
	preload(t, nodes[0].redis(), topoKeys)
	clients := []*redis.Client{nodes[0].redis(), nodes[1].redis(), nodes[2].redis()}
	tr := startTraffic(t, clients, topoKeys)

	out, err := operatorCommand(context.Background(), "decommission", "--addr", nodes[3].HTTP, "--timeout", "80s").CombinedOutput()
	if err != nil {
		t.Fatalf("decommission: %v: %s", err, out)
	}
	t.Logf("decommission: %s", out)
	waitRing(t, 30*time.Second, nodes[:3], "n1", "n2", "n3")
	time.Sleep(time.Second)
	tr.finish(t)

	share := changedShare([]string{"n1", "n2", "n3", "n4"}, []string{"n1", "n2", "n3"}, topoKeys)
	t.Logf("keys whose replica set changed: %.3f (expected 0.75)", share)
	if share < 0.65 || share > 0.85 {
		t.Errorf("changed share %.3f outside [0.65, 0.85]", share)
	}
	// The decommissioned node can stop without losing anything.
	if err := nodes[3].Stop(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, nodes[0].redis(), topoKeys)
}

// A killed node is removed: its ranges get a third live replica again.
func TestRemoveNodeRereplicates(t *testing.T) {
	const keys = 3000
	nodes := startCluster(t, 4, "--in-memory")
	waitRing(t, 30*time.Second, nodes, "n1", "n2", "n3", "n4")
	preload(t, nodes[0].redis(), keys)
	nodes[3].Kill()
	waitDown(t, nodes[0], "n4")

	out, err := operatorCommand(context.Background(), "removenode", "--id", "n4", "--addr", nodes[0].HTTP, "--timeout", "60s").CombinedOutput()
	if err != nil {
		t.Fatalf("removenode: %v: %s", err, out)
	}
	waitRing(t, 30*time.Second, nodes[:3], "n1", "n2", "n3")
	for i := range keys {
		k := "k" + strconv.Itoa(i)
		for _, n := range nodes[:3] {
			if v, ok := localValue(t, n, k); !ok || v != "v"+strconv.Itoa(i) {
				t.Fatalf("%s's own replica of %s: %q, %v", n.ID, k, v, ok)
			}
		}
	}
}

func streamedBytes(t *testing.T, n *node) int64 {
	t.Helper()
	resp, err := httpc.Get("http://" + n.HTTP + "/v1/cluster")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Self  string
		Nodes []struct {
			ID            string `json:"id"`
			StreamedBytes int64  `json:"streamed_bytes"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0 // read as "nothing streamed yet", as an unreachable node is
	}
	for _, m := range st.Nodes {
		if m.ID == st.Self {
			return m.StreamedBytes
		}
	}
	return 0
}
