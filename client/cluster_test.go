package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/server"
)

// testCluster is a ringkv cluster of real nodes running in this process.
type testCluster struct {
	nodes []*server.Server
	ids   []string
}

// startCluster starts n in-memory nodes with replication factor rf, the first
// one the others join, and waits until every node sees all of them up. It
// returns an error rather than taking a testing.TB so TestMain can use it for
// the Examples.
func startCluster(n, rf int, logger *slog.Logger) (*testCluster, error) {
	c := &testCluster{}
	var first string
	for i := range n {
		cfg := config.Default()
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		cfg.InMemory = true
		cfg.DataDir = "" // in memory: the store names itself
		cfg.ClientAddr, cfg.HTTPAddr, cfg.PeerAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		gossip, err := freeGossipAddr()
		if err != nil {
			c.shutdown()
			return nil, err
		}
		cfg.GossipAddr = gossip
		cfg.Replicas = rf
		if first != "" {
			cfg.Join = []string{first}
		} else {
			first = gossip
		}
		s, err := server.New(cfg, logger)
		if err == nil {
			err = s.Start()
		}
		if err != nil {
			c.shutdown()
			return nil, fmt.Errorf("starting %s: %w", cfg.NodeID, err)
		}
		c.nodes = append(c.nodes, s)
		c.ids = append(c.ids, cfg.NodeID)
	}
	if err := c.waitUp(n, 30*time.Second); err != nil {
		c.shutdown()
		return nil, err
	}
	return c, nil
}

// waitUp waits until every running node sees want nodes up and in the
// normal state (joining nodes own no ranges until streaming ends).
func (c *testCluster) waitUp(want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, s := range c.nodes {
			if s == nil {
				continue
			}
			up := 0
			for _, n := range s.Status().Nodes {
				if n.Up && n.State == "normal" {
					up++
				}
			}
			if up != want {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster did not see %d nodes up and normal within %v", want, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeGossipAddr returns a loopback address whose port is free for both TCP
// and UDP, as memberlist binds both.
func freeGossipAddr() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free gossip port")
}

// seeds returns the HTTP addresses of the running nodes.
func (c *testCluster) seeds() []string {
	var out []string
	for _, s := range c.nodes {
		if s != nil {
			out = append(out, s.Addrs().HTTP)
		}
	}
	return out
}

// kill shuts node id down and forgets it.
func (c *testCluster) kill(id string) {
	for i := range c.nodes {
		if c.ids[i] == id && c.nodes[i] != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c.nodes[i].Shutdown(ctx)
			cancel()
			c.nodes[i] = nil
		}
	}
}

func (c *testCluster) shutdown() {
	for _, id := range c.ids {
		c.kill(id)
	}
}

// newTestCluster starts a cluster that the test shuts down.
func newTestCluster(t testing.TB, n, rf int) *testCluster {
	t.Helper()
	c, err := startCluster(n, rf, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.shutdown)
	return c
}

// newTestClient connects a client to c that the test closes.
func newTestClient(t testing.TB, seeds []string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Seeds: seeds, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	cl, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// testLogger sends warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// shared is the cluster the Examples and the cheap tests run against; tests
// that stop nodes start their own.
var shared *testCluster

func TestMain(m *testing.M) {
	var err error
	shared, err = startCluster(3, 3, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the shared cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	shared.shutdown()
	os.Exit(code)
}

// exampleSeeds are the HTTP addresses of the shared cluster's nodes; in an
// application they come from its configuration.
func exampleSeeds() []string { return shared.seeds() }
