package resp

import (
	"crypto/sha1"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ringkv/ringkv/internal/ring"
)

// ClusterView is the ring as the CLUSTER commands describe it to Redis
// Cluster clients: hash slot ranges, each with its replicas in ring order, the
// first reported as master. Any node coordinates any key, so a client that
// sends a key to another node than the listed ones still gets an answer; the
// listing only saves it the hop. The node builds a view from its current ring
// on every call (Config.Cluster).
type ClusterView struct {
	// Self is this node's id.
	Self string
	// Nodes are the ring's members, in id order.
	Nodes []ClusterNode
	// Slots cover slots 0..16383 in order; Replicas index Nodes.
	Slots []ClusterSlots
}

// ClusterNode is one member as clients reach it.
type ClusterNode struct {
	ID   string
	Addr string // RESP host:port
	Up   bool
}

// ClusterSlots is a run of hash slots, First to Last inclusive, and the nodes
// (indexes into ClusterView.Nodes) that hold it, primary first.
type ClusterSlots struct {
	First, Last int
	Replicas    []int
}

// clusterNodeID is the 40-hex-digit name Redis Cluster gives a node, derived
// from the ringkv id so that every node names every other one alike.
func clusterNodeID(id string) string {
	sum := sha1.Sum([]byte(id))
	return hex.EncodeToString(sum[:])
}

// clusterView returns the cluster view, or a single-node one owning every slot when
// the server has no cluster (tests, embedding).
func (c *conn) clusterView() ClusterView {
	if f := c.s.cfg.Cluster; f != nil {
		if v := f(); len(v.Nodes) > 0 {
			return v
		}
	}
	return ClusterView{
		Self:  "self",
		Nodes: []ClusterNode{{ID: "self", Addr: c.laddr.String(), Up: true}},
		Slots: []ClusterSlots{{First: 0, Last: ring.Slots - 1, Replicas: []int{0}}},
	}
}

// hostPort splits a node's RESP address for a client. A node that listens on
// every interface advertises no usable host; the client then gets the host it
// reached this node on, which is right when the nodes share a host (a local
// cluster) and otherwise needs --client-addr set to a reachable address.
func (c *conn) hostPort(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		if lh, _, err := net.SplitHostPort(c.laddr.String()); err == nil {
			host = lh
		}
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

var clusterArity = map[string]int{
	"slots": 2, "shards": 2, "nodes": 2, "myid": 2, "info": 2, "keyslot": 3,
	"countkeysinslot": 3, "getkeysinslot": 4,
}

// cmdCluster serves the CLUSTER subcommands a cluster-mode client needs to
// find a key's replicas. Topology changes show in the next call: clients
// refresh on their own schedule and, since no node ever answers MOVED, a
// stale map costs a hop, never an error.
func cmdCluster(c *conn, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	n, known := clusterArity[sub]
	switch {
	case !known:
		c.fail("ERR unknown subcommand '" + string(truncate(args[1], 128)) +
			"'. ringkv serves CLUSTER SLOTS, SHARDS, NODES, MYID, INFO and KEYSLOT; its ring is changed by joining and decommissioning nodes, not by CLUSTER commands.")
		return
	case len(args) != n:
		c.fail("ERR wrong number of arguments for 'cluster|" + sub + "' command")
		return
	}
	switch sub {
	case "keyslot":
		c.w.Int(int64(ring.Slot(args[2])))
	case "myid":
		c.w.BulkString(clusterNodeID(c.clusterView().Self))
	case "slots":
		c.clusterSlots(c.clusterView())
	case "shards":
		c.clusterShards(c.clusterView())
	case "nodes":
		c.w.Verbatim(c.clusterNodes(c.clusterView()))
	case "info":
		c.w.Verbatim(clusterInfo(c.clusterView()))
	case "countkeysinslot", "getkeysinslot":
		c.fail("ERR CLUSTER " + strings.ToUpper(sub) + " is not served: a slot's keys are spread over its replicas' token order; use SCAN with MATCH on a hash tag instead")
	}
}

// clusterSlots writes CLUSTER SLOTS in Redis 7's form: start, end, then each
// replica as ip, port, id and an empty metadata map.
func (c *conn) clusterSlots(v ClusterView) {
	// Each node's name and endpoint once: a ring lists them hundreds of times.
	type endpoint struct {
		host, id string
		port     int64
	}
	eps := make([]endpoint, len(v.Nodes))
	for i, n := range v.Nodes {
		host, port := c.hostPort(n.Addr)
		eps[i] = endpoint{host: host, id: clusterNodeID(n.ID), port: int64(port)}
	}
	c.w.Array(len(v.Slots))
	for _, g := range v.Slots {
		c.w.Array(2 + len(g.Replicas))
		c.w.Int(int64(g.First))
		c.w.Int(int64(g.Last))
		for _, i := range g.Replicas {
			c.w.Array(4)
			c.w.BulkString(eps[i].host)
			c.w.Int(eps[i].port)
			c.w.BulkString(eps[i].id)
			c.w.Map(0)
		}
	}
}

// clusterShards writes CLUSTER SHARDS: a shard per distinct replica list, its
// slot ranges as flat start/end pairs, its nodes with the first as master.
func (c *conn) clusterShards(v ClusterView) {
	type shard struct {
		replicas []int
		slots    []int
	}
	var shards []*shard
	byKey := map[string]*shard{}
	for _, g := range v.Slots {
		var k strings.Builder
		for _, i := range g.Replicas {
			k.WriteString(strconv.Itoa(i) + ",")
		}
		sh := byKey[k.String()]
		if sh == nil {
			sh = &shard{replicas: g.Replicas}
			byKey[k.String()] = sh
			shards = append(shards, sh)
		}
		sh.slots = append(sh.slots, g.First, g.Last)
	}
	c.w.Array(len(shards))
	for _, sh := range shards {
		c.w.Map(2)
		c.w.BulkString("slots")
		c.w.Array(len(sh.slots))
		for _, s := range sh.slots {
			c.w.Int(int64(s))
		}
		c.w.BulkString("nodes")
		c.w.Array(len(sh.replicas))
		for j, i := range sh.replicas {
			n := v.Nodes[i]
			host, port := c.hostPort(n.Addr)
			role, health := "replica", "online"
			if j == 0 {
				role = "master"
			}
			if !n.Up {
				health = "failed"
			}
			c.w.Map(7)
			c.w.BulkString("id")
			c.w.BulkString(clusterNodeID(n.ID))
			c.w.BulkString("port")
			c.w.Int(int64(port))
			c.w.BulkString("ip")
			c.w.BulkString(host)
			c.w.BulkString("endpoint")
			c.w.BulkString(host)
			c.w.BulkString("role")
			c.w.BulkString(role)
			c.w.BulkString("replication-offset")
			c.w.Int(0)
			c.w.BulkString("health")
			c.w.BulkString(health)
		}
	}
}

// clusterNodes is CLUSTER NODES. Redis gives a node one role; a ringkv node
// is the primary of some ranges and a replica of others, so every node is
// listed as a master with the slots it is the primary of, which is where a
// client that reads this listing (redis-benchmark --cluster) sends a key.
func (c *conn) clusterNodes(v ClusterView) string {
	primary := make([][]string, len(v.Nodes))
	for _, g := range v.Slots {
		r := strconv.Itoa(g.First)
		if g.Last != g.First {
			r += "-" + strconv.Itoa(g.Last)
		}
		primary[g.Replicas[0]] = append(primary[g.Replicas[0]], r)
	}
	var b strings.Builder
	for i, n := range v.Nodes {
		host, port := c.hostPort(n.Addr)
		flags, link := "master", "connected"
		if n.ID == v.Self {
			flags = "myself,master"
		}
		if !n.Up {
			flags += ",fail"
			link = "disconnected"
		}
		b.WriteString(clusterNodeID(n.ID) + " " + net.JoinHostPort(host, strconv.Itoa(port)) + "@0 " + flags + " - 0 0 1 " + link)
		for _, r := range primary[i] {
			b.WriteString(" " + r)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// clusterInfo is CLUSTER INFO. The state is ok while every slot has a live
// replica; a slot whose replicas are all down fails, as in Redis.
func clusterInfo(v ClusterView) string {
	okSlots, masters := 0, map[int]bool{}
	for _, g := range v.Slots {
		masters[g.Replicas[0]] = true
		for _, i := range g.Replicas {
			if v.Nodes[i].Up {
				okSlots += g.Last - g.First + 1
				break
			}
		}
	}
	state := "ok"
	if okSlots < ring.Slots {
		state = "fail"
	}
	kv := []string{
		"cluster_enabled", "1",
		"cluster_state", state,
		"cluster_slots_assigned", strconv.Itoa(ring.Slots),
		"cluster_slots_ok", strconv.Itoa(okSlots),
		"cluster_slots_pfail", "0",
		"cluster_slots_fail", strconv.Itoa(ring.Slots - okSlots),
		"cluster_known_nodes", strconv.Itoa(len(v.Nodes)),
		"cluster_size", strconv.Itoa(len(masters)),
		"cluster_current_epoch", "1",
		"cluster_my_epoch", "1",
	}
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		b.WriteString(kv[i] + ":" + kv[i+1] + "\r\n")
	}
	return b.String()
}

// cmdReadMode serves READONLY and READWRITE: a cluster client sends READONLY
// before it reads from replicas. Every ringkv node serves reads and writes of
// every key at the connection's consistency level, so both only say OK.
func cmdReadMode(c *conn, _ [][]byte) { c.w.OK() }
