package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/testutil"
)

// startDemo runs the demo command until its banner is printed; stop ends it
// like Ctrl-C does and returns its exit code.
func startDemo(t *testing.T, te *testEnv, args ...string) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan int, 1)
	go func() { done <- te.run(ctx, append([]string{"demo"}, args...)...) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(te.stdout.String(), "Ctrl-C") {
			return fmt.Errorf("no banner yet; stdout %q stderr %q", te.stdout.String(), te.stderr.String())
		}
		return nil
	})
	return func() int {
		t.Helper()
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("demo did not stop after cancel")
			return -1
		}
	}
}

func TestDemo(t *testing.T) {
	te := newTestEnv(t)
	stop := startDemo(t, te, "--nodes", "3", "--base-port", "20000")
	nodes := te.fakeNodes()
	if len(nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes))
	}
	var dirs []string
	for i, n := range nodes {
		c := n.cfg
		p := 20000 + 10*i
		want := []string{fmt.Sprintf("127.0.0.1:%d", p), fmt.Sprintf("127.0.0.1:%d", p+1), fmt.Sprintf("127.0.0.1:%d", p+2), fmt.Sprintf("127.0.0.1:%d", p+1000)}
		if got := []string{c.ClientAddr, c.PeerAddr, c.GossipAddr, c.HTTPAddr}; !slices.Equal(got, want) {
			t.Errorf("node %d addrs %v, want %v", i, got, want)
		}
		if c.NodeID != fmt.Sprintf("node%d", i+1) || c.Replicas != 3 || c.InMemory {
			t.Errorf("node %d config %+v", i, c)
		}
		// A fixed base port: the nodes form the cluster together.
		wantInitial := []string{"node1=127.0.0.1:20002", "node2=127.0.0.1:20012", "node3=127.0.0.1:20022"}
		if len(c.Join) != 0 || !slices.Equal(c.InitialCluster, wantInitial) {
			t.Errorf("node %d joins %v with initial cluster %v, want none and %v", i, c.Join, c.InitialCluster, wantInitial)
		}
		if !n.started {
			t.Errorf("node %d not started", i)
		}
		dirs = append(dirs, c.DataDir)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(dirs)))) != 3 {
		t.Fatalf("data dirs not distinct: %v", dirs)
	}
	root := filepath.Dir(dirs[0])
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("data root: %v", err)
	}
	checkDemoSecrets(t, nodes, root)
	for _, want := range []string{"redis-cli -h 127.0.0.1 -p 20000", "curl http://127.0.0.1:21000/v1/kv/foo", "http://127.0.0.1:21000/ui", "node3"} {
		if !strings.Contains(te.stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, te.stdout.String())
		}
	}

	if code := stop(); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	if !slices.Equal(te.stopped, []string{"node3", "node2", "node1"}) {
		t.Fatalf("shutdown order %v, want node3 node2 node1", te.stopped)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data root %s not removed: %v", root, err)
	}
}

func TestDemoSingleNodeInMemory(t *testing.T) {
	te := newTestEnv(t)
	stop := startDemo(t, te, "--nodes", "1", "--in-memory", "--base-port", "0")
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	nodes := te.fakeNodes()
	if len(nodes) != 1 || !nodes[0].stopped {
		t.Fatalf("%d nodes, want 1, started and stopped", len(nodes))
	}
	c := nodes[0].cfg
	if !c.InMemory || c.DataDir != "" || c.Replicas != 1 || c.ClientAddr != "127.0.0.1:0" {
		t.Fatalf("config %+v: want in-memory, one replica, port 0", c)
	}
	// In memory too, the peer port has its certificate, and the
	// directory holding it is gone after the demo.
	root := filepath.Dir(filepath.Dir(c.PeerTLSCert))
	if c.PeerTLSCert == "" || c.GossipKeyFile == "" {
		t.Fatalf("in-memory demo node without peer TLS or gossip key: %+v", c)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the demo's directory %s was not removed: %v", root, err)
	}
}

// checkDemoSecrets checks that every demo node has its own peer certificate
// from one CA and the same gossip key, all under the demo's directory, and
// that they load as the server would load them.
func checkDemoSecrets(t *testing.T, nodes []*fakeNode, root string) {
	t.Helper()
	var certs []string
	for _, n := range nodes {
		c := n.cfg
		for _, f := range []string{c.PeerTLSCert, c.PeerTLSKey, c.PeerTLSCA, c.GossipKeyFile} {
			if !strings.HasPrefix(f, root+string(filepath.Separator)) {
				t.Errorf("%s: %q is not under the demo's directory %s", c.NodeID, f, root)
			}
		}
		if c.PeerTLSCA != nodes[0].cfg.PeerTLSCA || c.GossipKeyFile != nodes[0].cfg.GossipKeyFile {
			t.Errorf("%s: CA %s and gossip key %s differ from node1's", c.NodeID, c.PeerTLSCA, c.GossipKeyFile)
		}
		if _, _, err := pki.PeerConfigs(pki.Files{Cert: c.PeerTLSCert, Key: c.PeerTLSKey, CA: c.PeerTLSCA}); err != nil {
			t.Errorf("%s: peer TLS files do not load: %v", c.NodeID, err)
		}
		if keys, err := config.ReadGossipKeys(c.GossipKeyFile); err != nil || len(keys) != 1 {
			t.Errorf("%s: gossip key file: %d keys, %v", c.NodeID, len(keys), err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c.NodeID, err)
		}
		certs = append(certs, c.PeerTLSCert)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(certs)))) != len(nodes) {
		t.Errorf("nodes share peer certificates: %v", certs)
	}
}

func TestDemoErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--nodes", "0"}, exitUsage, "--nodes"},
		{[]string{"--base-port", "65000"}, exitUsage, "--base-port"},
		{[]string{"--log-level", "loud"}, exitUsage, "--log-level"},
	} {
		te := newTestEnv(t)
		if code := te.run(t.Context(), append([]string{"demo"}, tc.args...)...); code != tc.code || !strings.Contains(te.stderr.String(), tc.want) {
			t.Errorf("demo %v: exit %d, stderr %q; want %d and %q", tc.args, code, te.stderr.String(), tc.code, tc.want)
		}
	}

	te := newTestEnv(t)
	te.startErr = errors.New("port taken")
	if code := te.run(t.Context(), "demo", "--nodes", "2", "--base-port", "20000"); code != exitError || !strings.Contains(te.stderr.String(), "port taken") {
		t.Fatalf("exit %d, stderr %q", code, te.stderr.String())
	}
	if n := te.fakeNodes(); len(n) != 1 || !n[0].stopped {
		t.Fatal("a failed start did not stop the node and skip the rest")
	}
}
