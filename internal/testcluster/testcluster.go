// Package testcluster runs a ringkv cluster of real nodes (server.New, the
// same wiring as the binary) inside one test process. By default the nodes
// speak real TCP and gossip on loopback ports the kernel picks (port 0);
// with Options.Network their peer requests and gossip go over an in-memory
// network whose faults (partitions, down nodes, drops, delays) the test
// controls, so the whole node, membership, anti-entropy and range streaming
// included, runs under injected faults. A running cluster grows by a node
// that joins through gossip (Add) and shrinks by one decommissioned through
// the admin route an operator uses (Decommission). Every node stores in
// memory (config InMemory), so a test leaves nothing on disk.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/server"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/transport"
)

// Options shape a cluster.
type Options struct {
	// Nodes is how many nodes Start starts (at least 1).
	Nodes int
	// Replicas is the replication factor; 0 means min(3, Nodes).
	Replicas int
	// IDPrefix names the nodes IDPrefix1, IDPrefix2 ...; "" means "n".
	IDPrefix string
	// Configure adjusts each node's config after the defaults, before
	// Start; it may be nil.
	Configure func(*config.Config)
	// Logger receives the nodes' logs; nil discards them.
	Logger *slog.Logger
	// Network, when set, carries the peer requests (nodes are addressed by
	// id there) and, beside it, the gossip, both cut by its faults.
	Network *transport.MemNetwork
	// Clock, when set, returns each node's wall clock by id, so that a test
	// can skew one node's.
	Clock func(id string) clock.Clock
	// FS, when set, returns each node's filesystem by id: the node keeps
	// its data there under /data/<id> instead of in memory, and a Restart
	// reopens what FS returns then, so a test can restart a node on its
	// data, or on a crash clone of it (vfs.NewCrashableMem). Nil: each
	// node's store is in memory and a restarted node starts empty.
	FS func(id string) vfs.FS
}

// Node is one member. Server is nil while the node is stopped.
type Node struct {
	ID     string
	Config config.Config
	// Removed is set once the node was decommissioned: out of the ring for
	// good, running until Stop; Restart refuses it.
	Removed bool
	*server.Server
}

// Cluster is a running set of nodes. Its methods are safe for concurrent use.
type Cluster struct {
	opts   Options
	gossip *GossipNetwork // nil on real sockets

	mu    sync.Mutex
	nodes []*Node
}

// Start starts opts.Nodes nodes joined into one cluster, waits until each
// sees all of them up and normal, and shuts them down when tb ends.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	c, err := StartE(opts)
	if c != nil {
		tb.Cleanup(c.Close)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// StartE is Start for callers without a testing.TB (TestMain, Examples); the
// caller closes the cluster, also when it returns an error.
func StartE(opts Options) (*Cluster, error) {
	if opts.Nodes < 1 {
		return nil, fmt.Errorf("testcluster: %d nodes", opts.Nodes)
	}
	if opts.Replicas == 0 {
		opts.Replicas = min(3, opts.Nodes)
	}
	if opts.IDPrefix == "" {
		opts.IDPrefix = "n"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{opts: opts}
	if opts.Network != nil {
		c.gossip = NewGossipNetwork(opts.Network)
	}
	for range opts.Nodes {
		if _, err := c.Add(); err != nil {
			return c, err
		}
	}
	return c, c.WaitNormal(opts.Nodes, time.Minute)
}

// Add starts one more node, which joins through the running ones, and
// returns its index. It does not wait for the node to become normal.
func (c *Cluster) Add() (int, error) {
	c.mu.Lock()
	i := len(c.nodes)
	cfg := config.Default()
	cfg.NodeID = fmt.Sprintf("%s%d", c.opts.IDPrefix, i+1)
	cfg.InMemory, cfg.DataDir = true, ""
	cfg.ClientAddr, cfg.HTTPAddr, cfg.PeerAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Replicas = c.opts.Replicas
	cfg.Join = c.gossipAddrsLocked()
	n := &Node{ID: cfg.NodeID}
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	n.Config = cfg
	return i, c.start(n)
}

// gossipAddrsLocked lists the running nodes' bound gossip addresses.
func (c *Cluster) gossipAddrsLocked() []string {
	var out []string
	for _, n := range c.nodes {
		if n.Server != nil {
			out = append(out, n.Addrs().Gossip)
		}
	}
	return out
}

func (c *Cluster) start(n *Node) error {
	var opts []server.Option
	if c.opts.Network != nil {
		opts = append(opts, server.WithPeerNetwork(c.opts.Network), server.WithGossipTransport(c.gossip.Transport(n.ID)))
	}
	if c.opts.Clock != nil {
		opts = append(opts, server.WithClock(c.opts.Clock(n.ID)))
	}
	if c.opts.FS != nil {
		opts = append(opts, server.WithFS(c.opts.FS(n.ID)))
		n.Config.InMemory, n.Config.DataDir = false, "/data/"+n.ID
	}
	s, err := server.New(n.Config, c.opts.Logger, opts...)
	if err != nil {
		return fmt.Errorf("testcluster: %s: %w", n.ID, err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("testcluster: starting %s: %w", n.ID, err)
	}
	c.mu.Lock()
	n.Server = s
	c.mu.Unlock()
	return nil
}

// Nodes returns a snapshot of the members, stopped ones included, in the
// order added; a later Stop or Restart does not change it.
func (c *Cluster) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Node, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = *n
	}
	return out
}

// Node returns a snapshot of member i.
func (c *Cluster) Node(i int) Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.nodes[i]
}

// Running returns a snapshot of the members that are not stopped.
func (c *Cluster) Running() []Node {
	var out []Node
	for _, n := range c.Nodes() {
		if n.Server != nil {
			out = append(out, n)
		}
	}
	return out
}

// Stop shuts node i down gracefully: it leaves the gossip, as on SIGTERM.
func (c *Cluster) Stop(i int) error {
	c.mu.Lock()
	n := c.nodes[i]
	s := n.Server
	n.Server = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// Restart starts the stopped node i again under its id and config, joining
// through the running nodes. Its store starts empty, unless Options.FS
// gives it a filesystem with its data.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	n := c.nodes[i]
	if n.Server != nil || n.Removed {
		c.mu.Unlock()
		return fmt.Errorf("testcluster: %s is running or was decommissioned", n.ID)
	}
	n.Config.Join = c.gossipAddrsLocked()
	c.mu.Unlock()
	return c.start(n)
}

// adminClient sends the operator's requests to a node's HTTP API.
var adminClient = &http.Client{Timeout: 10 * time.Second}

// Decommission takes node i out the way an operator does: POST
// /v1/admin/decommission on it, so that it streams its ranges to their new
// owners (retried while it refuses, e.g. 409 BUSY while another topology
// change runs, until ctx ends), and waits until every other running node
// lists it removed or not at all. Like a real node it then goes on running,
// out of the ring, until the operator stops it (Stop); it keeps its index
// in Nodes, marked Removed, and Restart refuses it.
func (c *Cluster) Decommission(ctx context.Context, i int) error {
	n := c.Node(i)
	if n.Server == nil {
		return fmt.Errorf("testcluster: %s is not running", n.ID)
	}
	url := "http://" + n.Addrs().HTTP + "/v1/admin/decommission"
	if err := testutil.Poll(ctx, 100*time.Millisecond, func() error { return postAdmin(ctx, url, n.Config.Password) }); err != nil {
		return fmt.Errorf("testcluster: decommissioning %s: %w", n.ID, err)
	}
	err := testutil.Poll(ctx, testutil.DefaultPoll, func() error {
		for _, m := range c.Running() {
			for _, st := range m.Status().Nodes {
				if m.ID != n.ID && st.ID == n.ID && st.State != "removed" {
					return fmt.Errorf("%s sees %s %s", m.ID, n.ID, st.State)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testcluster: %s never removed: %w", n.ID, err)
	}
	c.mu.Lock()
	c.nodes[i].Removed = true
	c.mu.Unlock()
	return nil
}

// postAdmin sends an empty POST to url, with password as the bearer token
// when the node has one, and wants 202 Accepted.
func postAdmin(ctx context.Context, url, password string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	if password != "" {
		req.Header.Set("Authorization", "Bearer "+password)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: %s: %s", req.URL.Path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Close shuts every running node down.
func (c *Cluster) Close() {
	for i := range c.Nodes() {
		_ = c.Stop(i)
	}
}

// CheckNormal returns nil when every running node sees want nodes up and in
// the normal state (a joining node owns no ranges until streaming ends).
func (c *Cluster) CheckNormal(want int) error {
	running := c.Running()
	if len(running) == 0 {
		return errors.New("testcluster: no node is running")
	}
	for _, n := range running {
		up := 0
		for _, m := range n.Status().Nodes {
			if m.Up && m.State == "normal" {
				up++
			}
		}
		if up != want {
			return fmt.Errorf("%s sees %d of %d nodes up and normal: %+v", n.ID, up, want, n.Status().Nodes)
		}
	}
	return nil
}

// WaitNormal waits until CheckNormal(want) holds, or returns its last error
// after timeout.
func (c *Cluster) WaitNormal(want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return testutil.Poll(ctx, testutil.DefaultPoll, func() error { return c.CheckNormal(want) })
}

// ClientAddrs returns the running nodes' RESP addresses.
func (c *Cluster) ClientAddrs() []string {
	var out []string
	for _, n := range c.Running() {
		out = append(out, n.Addrs().Client)
	}
	return out
}

// HTTPAddrs returns the running nodes' HTTP addresses.
func (c *Cluster) HTTPAddrs() []string {
	var out []string
	for _, n := range c.Running() {
		out = append(out, n.Addrs().HTTP)
	}
	return out
}
