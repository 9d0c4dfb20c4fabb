package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/hugepages"
	"github.com/ringkv/ringkv/internal/server"
	"github.com/ringkv/ringkv/internal/testutil"
)

// fakeNode records what a command does to a node.
type fakeNode struct {
	cfg      config.Config
	startErr error

	mu       sync.Mutex
	started  bool
	stopped  bool
	deadline bool // whether Shutdown's ctx had a deadline
}

func (n *fakeNode) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.started = true
	return n.startErr
}

func (n *fakeNode) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopped = true
	_, n.deadline = ctx.Deadline()
	return nil
}

func (n *fakeNode) Addrs() server.Addrs {
	return server.Addrs{Client: n.cfg.ClientAddr, HTTP: n.cfg.HTTPAddr, Peer: n.cfg.PeerAddr, Gossip: n.cfg.GossipAddr}
}

// testEnv is an env whose nodes are fakes and whose output is captured.
type testEnv struct {
	env
	stdout, stderr testutil.Buffer
	stdin          strings.Reader
	vars           map[string]string
	startErr       error

	mu      sync.Mutex
	nodes   []*fakeNode
	stopped []string // node ids in shutdown order
}

func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	te := &testEnv{vars: map[string]string{}}
	te.env = env{
		stdout:    &te.stdout,
		stderr:    &te.stderr,
		stdin:     &te.stdin,
		lookupEnv: func(k string) (string, bool) { v, ok := te.vars[k]; return v, ok },
		newNode: func(cfg config.Config, _ *slog.Logger) (node, error) {
			te.mu.Lock()
			defer te.mu.Unlock()
			n := &fakeNode{cfg: cfg, startErr: te.startErr}
			te.nodes = append(te.nodes, n)
			return &orderedNode{fakeNode: n, te: te}, nil
		},
	}
	return te
}

// orderedNode notes the order in which nodes are shut down.
type orderedNode struct {
	*fakeNode
	te *testEnv
}

func (n *orderedNode) Shutdown(ctx context.Context) error {
	n.te.mu.Lock()
	n.te.stopped = append(n.te.stopped, n.cfg.NodeID)
	n.te.mu.Unlock()
	return n.fakeNode.Shutdown(ctx)
}

func (te *testEnv) run(ctx context.Context, args ...string) int {
	return run(ctx, args, &te.env)
}

func (te *testEnv) fakeNodes() []*fakeNode {
	te.mu.Lock()
	defer te.mu.Unlock()
	return append([]*fakeNode(nil), te.nodes...)
}

func cancelled(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithCancel(tb.Context())
	cancel()
	return ctx
}

func TestRootHelp(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run(t.Context(), "--help"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	for _, want := range []string{"server", "demo", "status", "ringkv demo"} {
		if !strings.Contains(te.stdout.String(), want) {
			t.Errorf("root help lacks %q:\n%s", want, te.stdout.String())
		}
	}
}

func TestServerHelpMentionsEveryFlag(t *testing.T) {
	te := newTestEnv(t)
	if code := te.run(t.Context(), "server", "--help"); code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	help := te.stdout.String()
	fs := pflag.NewFlagSet("all", pflag.ContinueOnError)
	new(config.Config).AddFlags(fs)
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		if f.Hidden {
			// Test-only switches (--debug-endpoints) stay out of the help.
			if strings.Contains(help, "--"+f.Name+" ") {
				t.Errorf("server help shows hidden --%s", f.Name)
			}
			return
		}
		if !strings.Contains(help, "--"+f.Name+" ") {
			t.Errorf("server help lacks --%s", f.Name)
		}
	})
	if n < 20 {
		t.Fatalf("only %d config flags", n)
	}
	for _, want := range []string{"RINGKV_", "--config"} {
		if !strings.Contains(help, want) {
			t.Errorf("server help does not explain %s", want)
		}
	}
}

func TestServerConfigPrecedence(t *testing.T) {
	te := newTestEnv(t)
	file := filepath.Join(t.TempDir(), "ringkv.yaml")
	if err := os.WriteFile(file, []byte("replicas: 5\nvnodes: 32\nzone: file-zone\nnode-id: from-file\nshutdown-timeout: 7s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	te.vars["RINGKV_REPLICAS"] = "7"
	te.vars["RINGKV_VNODES"] = "16"
	te.vars["RINGKV_LOG_LEVEL"] = "error"

	// A cancelled context makes the command stop the node as soon as it started.
	code := te.run(cancelled(t), "server", "--config", file, "--replicas", "9", "--in-memory")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	nodes := te.fakeNodes()
	if len(nodes) != 1 {
		t.Fatalf("%d nodes built, want 1", len(nodes))
	}
	n := nodes[0]
	got := n.cfg
	if got.Replicas != 9 || got.VNodes != 16 || got.Zone != "file-zone" || got.NodeID != "from-file" ||
		!got.InMemory || got.LogLevel != slog.LevelError || got.ShutdownTimeout != 7*time.Second || got.ConfigFile != file {
		t.Fatalf("config %+v: want replicas 9 (flag), vnodes 16 (env), zone and node-id from the file", got)
	}
	if !n.started || !n.stopped || !n.deadline {
		t.Fatalf("node started %v, stopped %v, shutdown deadline %v; want all true", n.started, n.stopped, n.deadline)
	}
}

func TestServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		startErr error
		code     int
		want     string
	}{
		{"invalid config", []string{"server", "--replicas", "0"}, nil, exitError, "--replicas"},
		{"unknown flag", []string{"server", "--replicaz", "3"}, nil, exitUsage, "unknown flag"},
		{"bad flag value", []string{"server", "--gc-grace", "soon"}, nil, exitUsage, "gc-grace"},
		{"stray argument", []string{"server", "extra"}, nil, exitUsage, "extra"},
		{"start fails", []string{"server"}, errors.New("address in use"), exitError, "address in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t)
			te.startErr = tc.startErr
			if code := te.run(cancelled(t), tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, te.stderr.String())
			}
			if !strings.Contains(te.stderr.String(), tc.want) {
				t.Fatalf("stderr %q lacks %q", te.stderr.String(), tc.want)
			}
			for _, n := range te.fakeNodes() {
				if n.started && !n.stopped {
					t.Fatal("a node that failed to start was not shut down")
				}
			}
		})
	}
}

func TestServerAdvisesTheHeapBeforeBuildingTheNode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		err     error
		calls   int
		wantLog string
	}{
		{"default", nil, nil, 1, "heap advised for huge pages"},
		{"turned off", []string{"--huge-pages=false"}, nil, 0, ""},
		{"madvise fails", nil, errors.New("madvise: invalid argument"), 1, "heap not advised for huge pages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t)
			var sizes []int64
			var nodesBefore int
			te.reserveHeap = func(n int64) (hugepages.Result, error) {
				sizes = append(sizes, n)
				nodesBefore = len(te.fakeNodes())
				return hugepages.Result{Mode: hugepages.ModeMadvise, Advised: n}, tc.err
			}
			args := append([]string{"server", "--in-memory", "--log-level", "info"}, tc.args...)
			if code := te.run(cancelled(t), args...); code != exitOK {
				t.Fatalf("exit %d: %s", code, te.stderr.String())
			}
			if len(sizes) != tc.calls {
				t.Fatalf("heap reserved %d times, want %d", len(sizes), tc.calls)
			}
			if tc.calls == 0 {
				return
			}
			if sizes[0] != heapReserve || nodesBefore != 0 {
				t.Errorf("reserved %d bytes with %d nodes built, want %d before any node", sizes[0], nodesBefore, heapReserve)
			}
			if !strings.Contains(te.stderr.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, te.stderr.String())
			}
			if n := te.fakeNodes(); len(n) != 1 || !n[0].started {
				t.Errorf("the node did not start after the heap advice")
			}
		})
	}
}
