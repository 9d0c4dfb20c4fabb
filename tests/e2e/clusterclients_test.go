package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/testproc"
)

// clusterRing is the ring the nodes place keys on, computed here from their
// /v1/cluster members exactly as the servers compute it, and each node's
// RESP address by id: the truth a cluster client's routing is checked against.
type clusterRing struct {
	ring     *ring.Ring
	byID     map[string]*node
	byClient map[string]*node
}

func ringOf(t *testing.T, nodes []*node) clusterRing {
	t.Helper()
	resp, err := httpc.Get("http://" + nodes[0].HTTP + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st apitypes.ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	var members []ring.Node
	for _, n := range st.Nodes {
		members = append(members, ring.Node{ID: n.ID, Zone: n.Zone})
	}
	cr := clusterRing{ring: ring.New(members, st.VNodes, st.Replicas), byID: map[string]*node{}, byClient: map[string]*node{}}
	for _, n := range nodes {
		cr.byID[n.ID] = n
		cr.byClient[n.Client] = n
	}
	return cr
}

// primary is the node the ring makes key's first replica: the master a
// cluster client must send it to.
func (cr clusterRing) primary(key string) *node {
	return cr.byID[cr.ring.Replicas([]byte(key))[0].ID]
}

// commandCount reads a node's own count of RESP commands named cmd.
func commandCount(t *testing.T, n *node, cmd string) int {
	t.Helper()
	return testproc.RESPCommands(t, httpc, n.URL("/metrics"), cmd)
}

// servedBy runs fn, which sends one command named cmd, and returns the node
// whose own counter of cmd rose; it fails unless exactly one rose, by one.
func servedBy(t *testing.T, nodes []*node, cmd string, fn func() error) *node {
	t.Helper()
	before := make([]int, len(nodes))
	for i, n := range nodes {
		before[i] = commandCount(t, n, cmd)
	}
	if err := fn(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	var served *node
	for i, n := range nodes {
		switch d := commandCount(t, n, cmd) - before[i]; {
		case d == 0:
		case d == 1 && served == nil:
			served = n
		default:
			t.Fatalf("%s: node %s counted %d more, and another node counted too, or more than one", cmd, n.ID, d)
		}
	}
	if served == nil {
		t.Fatalf("%s: no node counted it", cmd)
	}
	return served
}

// TestClusterClients drives a 3-node cluster of real processes with the
// Redis Cluster clients people already have: each must find every key's
// primary from CLUSTER SLOTS (or NODES) and send the key there, which the
// nodes' own command counters show.
func TestClusterClients(t *testing.T) {
	nodes := startCluster(t, 3)
	cr := ringOf(t, nodes)
	addrs := []string{nodes[0].Client, nodes[1].Client, nodes[2].Client}
	ctx := t.Context()

	checkRouting := func(t *testing.T, c redis.UniversalClient, prefix string) {
		t.Helper()
		for i := range 12 {
			key := prefix + strconv.Itoa(i)
			want := cr.primary(key)
			if got := servedBy(t, nodes, "set", func() error { return c.Set(ctx, key, i, 0).Err() }); got != want {
				t.Errorf("SET %s went to %s, want its primary %s", key, got.ID, want.ID)
			}
			var val string
			if got := servedBy(t, nodes, "get", func() (err error) { val, err = c.Get(ctx, key).Result(); return err }); got != want {
				t.Errorf("GET %s went to %s, want its primary %s", key, got.ID, want.ID)
			}
			if val != strconv.Itoa(i) {
				t.Fatalf("GET %s = %q, want %d", key, val, i)
			}
		}
	}

	t.Run("go-redis ClusterClient", func(t *testing.T) {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: e2ePassword, MaxRetries: -1, ReadTimeout: 10 * time.Second})
		defer c.Close()
		checkRouting(t, c, "gocluster:")
		// A pipeline across slots, and keys that share a hash tag.
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 50 {
				p.Set(ctx, "gopipe:"+strconv.Itoa(i), i, 0)
			}
			return nil
		})
		if err != nil || len(cmds) != 50 {
			t.Fatalf("pipeline: %d replies, %v", len(cmds), err)
		}
		if err := c.MSet(ctx, "{user:7}:name", "ann", "{user:7}:mail", "ann@example.com").Err(); err != nil {
			t.Fatal(err)
		}
		if v := c.MGet(ctx, "{user:7}:name", "{user:7}:mail").Val(); !slices.Equal(v, []any{"ann", "ann@example.com"}) {
			t.Fatalf("MGET by hash tag = %v", v)
		}
		if got, want := cr.primary("{user:7}:name"), cr.primary("{user:7}:mail"); got != want {
			t.Fatalf("keys with one hash tag have primaries %s and %s", got.ID, want.ID)
		}
		// Counters route like any key.
		for i := range 6 {
			key := "gocounter:" + strconv.Itoa(i)
			if got, want := servedBy(t, nodes, "incr", func() error { return c.Incr(ctx, key).Err() }), cr.primary(key); got != want {
				t.Errorf("INCR %s went to %s, want its primary %s", key, got.ID, want.ID)
			}
		}
		err = c.Watch(ctx, func(tx *redis.Tx) error { return nil }, "gocluster:1")
		if err == nil || !strings.Contains(err.Error(), "WATCH is not supported") {
			t.Fatalf("WATCH: %v, want the refusal", err)
		}
		// ReadOnly clients may read from any replica; every one serves.
		ro := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: e2ePassword, ReadOnly: true, RouteRandomly: true, MaxRetries: -1})
		defer ro.Close()
		for i := range 12 {
			key := "gocluster:" + strconv.Itoa(i)
			got := servedBy(t, nodes, "get", func() error { return ro.Get(ctx, key).Err() })
			if !slices.ContainsFunc(cr.ring.Replicas([]byte(key)), func(n ring.Node) bool { return n.ID == got.ID }) {
				t.Errorf("read-only GET %s went to %s, not a replica", key, got.ID)
			}
		}
	})

	t.Run("go-redis UniversalClient", func(t *testing.T) {
		c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, Password: e2ePassword, MaxRetries: -1, ReadTimeout: 10 * time.Second})
		defer c.Close()
		if _, ok := c.(*redis.ClusterClient); !ok {
			t.Fatalf("UniversalClient over %d addresses is a %T, want a *redis.ClusterClient", len(addrs), c)
		}
		checkRouting(t, c, "gouniversal:")
	})

	t.Run("redis-py RedisCluster", func(t *testing.T) {
		args := []string{"testdata/rediscluster.py"}
		for _, n := range nodes {
			args = append(args, n.Client+"="+n.HTTP)
		}
		// Debian's python3-redis lives with the system interpreter.
		cmd := exec.CommandContext(ctx, "/usr/bin/python3", args...)
		cmd.Env = append(os.Environ(), "RINGKV_PASSWORD="+e2ePassword)
		var stderr strings.Builder
		cmd.Stderr = &stderr // redis-py logs the refusal it is shown there
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("redis-py (needs Debian's python3-redis, which .ci/run installs): %v\n%s%s", err, out, stderr.String())
		}
		var res struct {
			Set, Get   map[string]string
			MGet       []string `json:"mget"`
			Keys       []string `json:"keys"`
			KeySlot    int      `json:"keyslot"`
			LPushError string   `json:"lpush_error"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("redis-py output: %v\n%s", err, out)
		}
		if len(res.Set) != 12 || len(res.Get) != 12 {
			t.Fatalf("redis-py routed %d SETs and %d GETs, want 12 each", len(res.Set), len(res.Get))
		}
		for _, what := range []map[string]string{res.Set, res.Get} {
			for key, client := range what {
				if got, want := cr.byClient[client], cr.primary(key); got != want {
					t.Errorf("redis-py sent %s to %s, want its primary %s", key, client, want.ID)
				}
			}
		}
		if !slices.Equal(res.MGet, []string{"1", "2"}) {
			t.Errorf("redis-py MGET = %v", res.MGet)
		}
		if want := []string{"py:1", "py:10", "py:11"}; !slices.Equal(res.Keys, want) {
			t.Errorf("redis-py KEYS py:1* = %v, want %v", res.Keys, want)
		}
		if res.KeySlot != 12182 {
			t.Errorf("redis-py keyslot(foo) = %d", res.KeySlot)
		}
		if !strings.HasPrefix(res.LPushError, "LPUSH is not supported: ringkv stores strings only") {
			t.Errorf("redis-py LPUSH error = %q", res.LPushError)
		}
	})

	t.Run("redis-cli -c", func(t *testing.T) {
		cli := func(n *node, args ...string) string {
			t.Helper()
			host, port, _ := strings.Cut(n.Client, ":")
			out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-c", "-h", host, "-p", port, "-a", e2ePassword, "--no-auth-warning"}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		for i, n := range nodes {
			key := "cli:" + strconv.Itoa(i)
			if out := cli(n, "SET", key, "v"+strconv.Itoa(i)); out != "OK" {
				t.Fatalf("redis-cli SET: %q", out)
			}
			// Any node answers for any key: no MOVED to follow.
			if out := cli(nodes[(i+1)%3], "GET", key); out != "v"+strconv.Itoa(i) {
				t.Fatalf("redis-cli GET %s on another node: %q", key, out)
			}
		}
		if out := cli(nodes[0], "CLUSTER", "KEYSLOT", "foo"); out != "12182" {
			t.Fatalf("redis-cli CLUSTER KEYSLOT foo: %q", out)
		}
		if out := cli(nodes[2], "KEYS", "cli:*"); len(strings.Fields(out)) != 3 {
			t.Fatalf("redis-cli KEYS cli:*: %q", out)
		}
		if out := cli(nodes[1], "CLUSTER", "INFO"); !strings.Contains(out, "cluster_state:ok") {
			t.Fatalf("redis-cli CLUSTER INFO: %q", out)
		}
	})

	t.Run("ringkv bench --cluster on", func(t *testing.T) {
		// One key: every SET of the run must land on its primary alone.
		const key = "key:000000000000"
		want := cr.primary(key)
		before := make([]int, len(nodes))
		for i, n := range nodes {
			before[i] = commandCount(t, n, "set")
		}
		out, err := operatorCommand(ctx, "bench", "--addr", nodes[1].Client, "--cluster", "on",
			"--keys", "1", "--ratio", "0:1:0", "--requests", "500", "--warmup", "0s", "--conns", "2", "-q").CombinedOutput()
		if err != nil {
			t.Fatalf("ringkv bench: %v\n%s", err, out)
		}
		for i, n := range nodes {
			d := commandCount(t, n, "set") - before[i]
			switch {
			case n == want && d < 500:
				t.Errorf("primary %s of %s served %d SETs, want the run's 500", n.ID, key, d)
			case n != want && d != 0:
				t.Errorf("node %s served %d SETs of %s, whose primary is %s", n.ID, d, key, want.ID)
			}
		}
	})

	t.Run("redis-benchmark --cluster", func(t *testing.T) {
		const tests = "set,get,incr,mset"
		host, port, _ := strings.Cut(nodes[0].Client, ":")
		before := make([]int, len(nodes))
		for i, n := range nodes {
			before[i] = commandCount(t, n, "set")
		}
		const requests = 3000
		out, err := exec.CommandContext(ctx, "redis-benchmark", "--cluster", "-h", host, "-p", port, "-a", e2ePassword,
			"-t", tests, "-n", strconv.Itoa(requests), "-c", "6", "--csv").CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark --cluster: %v\n%s", err, out)
		}
		t.Logf("redis-benchmark --cluster -t %s:\n%s", tests, out)
		for _, test := range strings.Split(tests, ",") {
			if !strings.Contains(string(out), strings.ToUpper(test)) {
				t.Errorf("redis-benchmark output lacks %s", strings.ToUpper(test))
			}
		}
		if strings.Contains(string(out), "ERR") || strings.Contains(string(out), "MOVED") {
			t.Fatalf("redis-benchmark saw errors:\n%s", out)
		}
		// redis-benchmark gives each master a hash tag of a slot it lists
		// for it in CLUSTER NODES and keeps that master's keys under it: its
		// SET key per master must have that master as its primary, and every
		// master must have served SETs.
		total := 0
		for i, n := range nodes {
			d := commandCount(t, n, "set") - before[i]
			if d == 0 {
				t.Errorf("node %s served no SET of redis-benchmark", n.ID)
			}
			total += d
		}
		if total != requests {
			t.Errorf("the nodes served %d SETs, want the benchmark's %d", total, requests)
		}
		keys, err := nodes[0].redis().Keys(ctx, "key:{*}:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		primaries := map[string]bool{}
		for _, k := range keys {
			primaries[cr.primary(k).ID] = true
		}
		if len(primaries) != 3 {
			t.Errorf("redis-benchmark's keys %v have primaries %v, want one tag per master", keys, primaries)
		}
	})
}
