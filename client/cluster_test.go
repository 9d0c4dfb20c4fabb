package client

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/ringkv/ringkv/internal/testcluster"
)

// testCluster is the client tests' handle on an in-process cluster of real
// nodes (internal/testcluster), by node id.
type testCluster struct{ *testcluster.Cluster }

// startCluster starts n in-memory nodes with replication factor rf and waits
// until every node sees all of them up. It returns an error rather than
// taking a testing.TB so TestMain can use it for the Examples.
func startCluster(n, rf int, logger *slog.Logger) (*testCluster, error) {
	c, err := testcluster.StartE(testcluster.Options{Nodes: n, Replicas: rf, Logger: logger})
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	return &testCluster{c}, nil
}

// seeds returns the HTTP addresses of the running nodes.
func (c *testCluster) seeds() []string { return c.HTTPAddrs() }

// kill shuts node id down.
func (c *testCluster) kill(id string) {
	for i, n := range c.Nodes() {
		if n.ID == id {
			_ = c.Stop(i)
		}
	}
}

func (c *testCluster) shutdown() { c.Close() }

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
