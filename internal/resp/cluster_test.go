package resp

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// testView is three nodes over four slot ranges; n3 is down.
func testView(addr string) ClusterView {
	return ClusterView{
		Self: "n1",
		Nodes: []ClusterNode{
			{ID: "n1", Addr: addr, Up: true},
			{ID: "n2", Addr: "10.0.0.2:7379", Up: true},
			{ID: "n3", Addr: "0.0.0.0:7381", Up: false},
		},
		Slots: []ClusterSlots{
			{First: 0, Last: 99, Replicas: []int{0, 1}},
			{First: 100, Last: 100, Replicas: []int{1, 2}},
			{First: 101, Last: 9000, Replicas: []int{2, 0}},
			{First: 9001, Last: 16383, Replicas: []int{0, 1}},
		},
	}
}

func TestClusterCommands(t *testing.T) {
	// The view names the server's own address, known once it listens; the
	// network does not order the store before the server's read for the
	// race detector, so it is atomic.
	var addr atomic.Pointer[string]
	eachProtoWith(t, func(c *Config) {
		c.Cluster = func() ClusterView { return testView(*addr.Load()) }
	}, func(t *testing.T, ts *testServer, c *redis.Client) {
		addr.Store(&ts.addr)
		ctx := t.Context()
		id := func(n string) string { return clusterNodeID(n) }

		slots := must(c.ClusterSlots(ctx).Result()) //nolint:staticcheck // CLUSTER SLOTS is the command under test
		want := []redis.ClusterSlot{
			{Start: 0, End: 99, Nodes: []redis.ClusterNode{{ID: id("n1"), Addr: ts.addr}, {ID: id("n2"), Addr: "10.0.0.2:7379"}}},
			{Start: 100, End: 100, Nodes: []redis.ClusterNode{{ID: id("n2"), Addr: "10.0.0.2:7379"}, {ID: id("n3"), Addr: "127.0.0.1:7381"}}},
			{Start: 101, End: 9000, Nodes: []redis.ClusterNode{{ID: id("n3"), Addr: "127.0.0.1:7381"}, {ID: id("n1"), Addr: ts.addr}}},
			{Start: 9001, End: 16383, Nodes: []redis.ClusterNode{{ID: id("n1"), Addr: ts.addr}, {ID: id("n2"), Addr: "10.0.0.2:7379"}}},
		}
		equal(t, "CLUSTER SLOTS ranges", len(slots), len(want))
		for i := range want {
			g, w := slots[i], want[i]
			if g.Start != w.Start || g.End != w.End || len(g.Nodes) != len(w.Nodes) {
				t.Fatalf("CLUSTER SLOTS[%d] = %+v, want %+v", i, g, w)
			}
			for j := range w.Nodes {
				if g.Nodes[j].ID != w.Nodes[j].ID || g.Nodes[j].Addr != w.Nodes[j].Addr {
					t.Fatalf("CLUSTER SLOTS[%d] node %d = %+v, want %+v", i, j, g.Nodes[j], w.Nodes[j])
				}
			}
		}

		shards := must(c.ClusterShards(ctx).Result())
		// n1,n2 holds two ranges: one shard with both.
		equal(t, "CLUSTER SHARDS count", len(shards), 3)
		first := shards[0]
		if !slices.Equal(first.Slots, []redis.SlotRange{{Start: 0, End: 99}, {Start: 9001, End: 16383}}) {
			t.Fatalf("shard 0 slots %+v", first.Slots)
		}
		if len(first.Nodes) != 2 || first.Nodes[0].Role != "master" || first.Nodes[1].Role != "replica" || first.Nodes[0].ID != id("n1") {
			t.Fatalf("shard 0 nodes %+v", first.Nodes)
		}
		if h := shards[1].Nodes[1].Health; h != "failed" {
			t.Fatalf("down node n3 has health %q, want failed", h)
		}

		nodes := must(c.ClusterNodes(ctx).Result())
		lines := strings.Split(strings.TrimSpace(nodes), "\n")
		equal(t, "CLUSTER NODES lines", len(lines), 3)
		wantLines := []string{
			id("n1") + " " + ts.addr + "@0 myself,master - 0 0 1 connected 0-99 9001-16383",
			id("n2") + " 10.0.0.2:7379@0 master - 0 0 1 connected 100",
			id("n3") + " 127.0.0.1:7381@0 master,fail - 0 0 1 disconnected 101-9000",
		}
		for i := range wantLines {
			equal(t, "CLUSTER NODES line", lines[i], wantLines[i])
		}

		equal(t, "CLUSTER MYID", must(c.ClusterMyID(ctx).Result()), id("n1"))
		info := must(c.ClusterInfo(ctx).Result())
		for _, f := range []string{"cluster_enabled:1", "cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:3", "cluster_size:3"} {
			if !strings.Contains(info, f+"\r\n") {
				t.Fatalf("CLUSTER INFO lacks %q:\n%s", f, info)
			}
		}
		equal(t, "CLUSTER KEYSLOT foo", must(c.ClusterKeySlot(ctx, "foo").Result()), int64(12182))
		equal(t, "CLUSTER KEYSLOT tag", must(c.ClusterKeySlot(ctx, "{user1000}.following").Result()), int64(3443))
		equal(t, "READONLY", must(c.ReadOnly(ctx).Result()), "OK")
		equal(t, "READWRITE", must(c.ReadWrite(ctx).Result()), "OK")
		wantErr(t, c.Do(ctx, "CLUSTER", "KEYSLOT").Err(), "ERR wrong number of arguments for 'cluster|keyslot' command")
		err := c.Do(ctx, "CLUSTER", "ADDSLOTS", "1").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR unknown subcommand 'ADDSLOTS'. ringkv serves CLUSTER SLOTS") {
			t.Fatalf("CLUSTER ADDSLOTS: %v", err)
		}
		if !strings.Contains(must(c.Info(ctx, "cluster").Result()), "cluster_enabled:1") {
			t.Fatal("INFO cluster lacks cluster_enabled:1")
		}
	})
}

// A slot whose replicas are all down fails CLUSTER INFO's state.
func TestClusterInfoFails(t *testing.T) {
	v := testView("127.0.0.1:1")
	v.Nodes[1].Up = false
	info := clusterInfo(v)
	for _, f := range []string{"cluster_state:fail", "cluster_slots_ok:16383", "cluster_slots_fail:1"} {
		if !strings.Contains(info, f+"\r\n") {
			t.Fatalf("CLUSTER INFO lacks %q:\n%s", f, info)
		}
	}
}

// Without a cluster the node describes itself as holding every slot.
func TestClusterSingleNode(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t, 2)
	slots := must(c.ClusterSlots(t.Context()).Result()) //nolint:staticcheck // CLUSTER SLOTS is the command under test
	if len(slots) != 1 || slots[0].Start != 0 || slots[0].End != 16383 || len(slots[0].Nodes) != 1 || slots[0].Nodes[0].Addr != ts.addr {
		t.Fatalf("CLUSTER SLOTS of a lone server: %+v", slots)
	}
}
