package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

type clusterStatus struct {
	Nodes []struct {
		ID    string `json:"id"`
		Up    bool   `json:"up"`
		State string `json:"state"`
		Hints int    `json:"hints"`
	} `json:"nodes"`
}

func status(t testing.TB, n *node) (clusterStatus, error) {
	t.Helper()
	var st clusterStatus
	resp, err := httpc.Get("http://" + n.HTTP + "/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// waitUp waits until n sees want nodes up and in the normal state (a node
// that just started may still be joining, which changes the replica sets).
func waitUp(t testing.TB, n *node, want int) {
	t.Helper()
	// Generous: CI runs this beside the race-enabled chaos suite on 2 cores.
	testutil.Eventually(t, 60*time.Second, func() error {
		st, err := status(t, n)
		if err != nil {
			return err
		}
		up := 0
		var seen []string
		for _, m := range st.Nodes {
			if m.Up && m.State == "normal" {
				up++
			}
			seen = append(seen, fmt.Sprintf("%s up=%t %s", m.ID, m.Up, m.State))
		}
		if up != want {
			return fmt.Errorf("%s sees %d nodes up and normal, want %d: %s", n.ID, up, want, strings.Join(seen, ", "))
		}
		return nil
	})
}

// waitDown waits until n sees the node id as down.
func waitDown(t testing.TB, n *node, id string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() error {
		st, err := status(t, n)
		if err != nil {
			return err
		}
		for _, m := range st.Nodes {
			if m.ID == id {
				if m.Up {
					return fmt.Errorf("%s still sees %s up", n.ID, id)
				}
				return nil
			}
		}
		return fmt.Errorf("%s does not list %s (a down node must keep its place)", n.ID, id)
	})
}

// localValue reads one node's own replica over HTTP.
func localValue(t testing.TB, n *node, key string) (string, bool) {
	t.Helper()
	resp, err := httpc.Get("http://" + n.HTTP + "/v1/kv/" + key + "?local=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return "", false
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("local read of %s on %s: %s %s", key, n.ID, resp.Status, b)
	}
	return string(b), true
}

func writeMany(t testing.TB, c *redis.Client, prefix string, n int) {
	t.Helper()
	for start := 0; start < n; start += 500 {
		pipe := c.Pipeline()
		for i := start; i < min(start+500, n); i++ {
			pipe.Set(t.Context(), fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("v%d", i), 0)
		}
		cmds, err := pipe.Exec(t.Context())
		if err != nil {
			t.Fatalf("writing %s: %v", prefix, err)
		}
		for _, c := range cmds {
			if c.Err() != nil {
				t.Fatalf("writing %s: %v", prefix, c.Err())
			}
		}
	}
}

func readMany(t testing.TB, c *redis.Client, prefix string, n int) {
	t.Helper()
	for start := 0; start < n; start += 500 {
		pipe := c.Pipeline()
		var gets []*redis.StringCmd
		for i := start; i < min(start+500, n); i++ {
			gets = append(gets, pipe.Get(t.Context(), fmt.Sprintf("%s%d", prefix, i)))
		}
		_, _ = pipe.Exec(t.Context()) // each command's own error is checked below
		for j, g := range gets {
			i := start + j
			if v, err := g.Result(); err != nil || v != fmt.Sprintf("v%d", i) {
				t.Fatalf("reading %s%d: %q %v", prefix, i, v, err)
			}
		}
	}
}

// The cluster scenario of the cluster-core issue, on real processes: QUORUM
// writes through one node are read through another; with one node killed,
// QUORUM and ONE keep working and ALL is refused as UNAVAILABLE; the restarted
// node catches up through hints.
func TestClusterQuorumFailoverAndHints(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	c1 := n1.redis(withLevel("QUORUM"))
	c3 := n3.redis(withLevel("QUORUM"))
	writeMany(t, c1, "a", 10000)
	readMany(t, c3, "a", 10000)

	n2.Kill()
	waitDown(t, n1, "n2")
	waitDown(t, n3, "n2")
	writeMany(t, c1, "b", 2000)
	readMany(t, c3, "b", 2000)
	readMany(t, c3, "a", 200)
	ctx := t.Context()
	all := n1.redis(withLevel("ALL"))
	if err := all.Set(ctx, "x", "1", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "UNAVAILABLE") {
		t.Fatalf("ALL write with a node down: %v, want UNAVAILABLE", err)
	}
	if err := all.Get(ctx, "a1").Err(); err == nil || !strings.HasPrefix(err.Error(), "UNAVAILABLE") {
		t.Fatalf("ALL read with a node down: %v, want UNAVAILABLE", err)
	}
	one := n3.redis(withLevel("ONE"))
	if err := one.Set(ctx, "one", "1", 0).Err(); err != nil {
		t.Fatalf("ONE write with a node down: %v", err)
	}
	if v, err := one.Get(ctx, "a5").Result(); err != nil || v != "v5" {
		t.Fatalf("ONE read with a node down: %q %v", v, err)
	}
	// Deletes made while n2 is down must reach it too.
	if err := c1.Del(ctx, "a7").Err(); err != nil {
		t.Fatal(err)
	}

	n2.Start()
	waitUp(t, n1, 3)
	// Within seconds of its return n2's own replica holds every write it missed.
	testutil.Eventually(t, 30*time.Second, func() error {
		for i := range 2000 {
			k := fmt.Sprintf("b%d", i)
			if v, ok := localValue(t, n2, k); !ok || v != fmt.Sprintf("v%d", i) {
				return fmt.Errorf("n2 local %s = %q, %v", k, v, ok)
			}
		}
		if _, ok := localValue(t, n2, "a7"); ok {
			return fmt.Errorf("n2 still holds deleted a7")
		}
		return nil
	})
	if err := all.Set(ctx, "x", "1", 0).Err(); err != nil {
		t.Fatalf("ALL write after recovery: %v", err)
	}
}

// A replica that missed a write (no hints: handoff off; no anti-entropy,
// which would compare with the returning node at once) is brought up to date
// by a QUORUM read through it.
func TestClusterReadRepair(t *testing.T) {
	nodes := startCluster(t, 3, "--hinted-handoff=false", "--repair-interval=0")
	n1, n3 := nodes[0], nodes[2]
	ctx := t.Context()
	c1 := n1.redis(withLevel("QUORUM"))
	if err := n1.redis(withLevel("ALL")).Set(ctx, "k", "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n3.Kill()
	waitDown(t, n1, "n3")
	if err := c1.Set(ctx, "k", "new", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n3.Start()
	waitUp(t, n1, 3)
	waitUp(t, n3, 3)
	// "old" or nothing: with --sync periodic the kill may have taken the last
	// 100 ms of n3's writes, which is what replication is there for.
	if v, _ := localValue(t, n3, "k"); v == "new" {
		t.Fatalf("n3 should still be stale, holds %q", v)
	}
	c3 := n3.redis(withLevel("QUORUM"))
	if v, err := c3.Get(ctx, "k").Result(); err != nil || v != "new" {
		t.Fatalf("QUORUM read through n3: %q %v", v, err)
	}
	if v, _ := localValue(t, n3, "k"); v != "new" {
		t.Fatalf("n3 not repaired by the QUORUM read, holds %q", v)
	}
}

// The first node of a cluster runs without --join. Killed and restarted at
// once, before its peers notice, it must come back knowing the cluster: its
// peers still hold it alive, so none of them redials it, and before it saved
// its peers it stayed alone until memberlist's periodic push/pull (every 15 s
// here) happened to reach it. Start returns after the first join, and the
// HTTP API only answers after Start, so the first status it gives must list
// everyone.
func TestSeedlessRestartRejoinsKnownPeers(t *testing.T) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	if len(n1.Join) != 0 {
		t.Fatalf("n1 runs with --join %v; this test is about a node without", n1.Join)
	}
	n1.Kill()
	n1.Start()
	st, err := status(t, n1)
	if err != nil {
		t.Fatal(err)
	}
	up := 0
	for _, m := range st.Nodes {
		if m.Up {
			up++
		}
	}
	if up != 3 {
		t.Fatalf("restarted without --join, n1 first sees %d nodes up, want 3: %+v", up, st.Nodes)
	}
	waitUp(t, n1, 3)
}
