// Package e2e runs real ringkv processes on loopback and drives them with real
// clients: go-redis over RESP, net/http, and the ringkv binary's own commands.
// The processes run under internal/testproc, on ports the kernel picks.
package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testproc"
)

// binary is the ringkv executable built once for the whole package.
var binary string

func TestMain(m *testing.M) { testproc.Main(m, &binary, setUpSecrets) }

// node is one ringkv server process, protected as every node of these tests
// is (securityArgs).
type node struct {
	*testproc.Node
	t testing.TB
}

// newNode prepares node id with the protecting flags and then extra; its
// data directory is a temporary one of t.
func newNode(t testing.TB, id string, extra ...string) *node {
	t.Helper()
	n := &node{Node: testproc.NewNode(t, binary, id), t: t}
	n.DataDir = filepath.Join(t.TempDir(), id)
	n.Flags = append(securityArgs(t, id), extra...)
	n.HTTPClient = httpc
	return n
}

// redis returns a go-redis client for the node; closed at cleanup.
func (n *node) redis(opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: n.Client, Password: e2ePassword, MaxRetries: -1, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	n.t.Cleanup(func() { c.Close() })
	return c
}

// withLevel makes every connection of a client use a consistency level.
func withLevel(level string) func(*redis.Options) {
	return func(o *redis.Options) {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "RINGKV.CONSISTENCY", level).Err()
		}
	}
}

// procs are the processes of nodes, for testproc's cluster helpers.
func procs(nodes []*node) []*testproc.Node {
	out := make([]*testproc.Node, len(nodes))
	for i, n := range nodes {
		out[i] = n.Node
	}
	return out
}

// startCluster starts n nodes that join through the first one, and waits until
// every node sees every other as up.
func startCluster(t testing.TB, n int, extra ...string) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("n%d", i+1), extra...)
	}
	testproc.StartJoined(procs(nodes))
	for _, nd := range nodes {
		waitUp(t, nd, n)
	}
	return nodes
}

// freeBase finds a base port for a program that takes a block of fixed
// ports from one base (ringkv demo, bench/scale.sh): a port the kernel has
// just handed out whose ports(base) are all free now.
func freeBase(t testing.TB, ports func(base int) []int) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p > 60000 || p < 20000 {
			continue
		}
		free := true
		for _, q := range ports(p) {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return p
		}
	}
	t.Fatal("no free block of ports")
	return 0
}
