package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/config"
)

// Demo port layout: node i listens on base+10i (client), base+10i+1 (peer),
// base+10i+2 (gossip) and base+1000+10i (HTTP), so the default base 7379 gives
// node 1 the same client, peer and HTTP ports as a default `ringkv server`,
// and two demos with different bases do not collide.
const (
	demoPortStride = 10
	demoHTTPOffset = 1000
	demoMaxNodes   = 50
)

type demoOptions struct {
	nodes    int
	inMemory bool
	engine   string
	basePort int
	logLevel string
	level    slog.Level // parsed from logLevel
}

func newDemoCommand(e *env) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local cluster in this process, for trying ringkv out",
		Long: `Start a cluster of --nodes nodes in this one process, on loopback ports
derived from --base-port, print how to connect, and run until Ctrl-C. Data lives
in a temporary directory removed at exit, or in memory with --in-memory.

The nodes talk to each other as a production cluster's do: the demo makes a CA
and a gossip key in its temporary directory, and its nodes speak mutual TLS on
their peer ports and encrypt their gossip. Their client and HTTP ports stay
plain and without a password, on loopback only.`,
		Example: `  ringkv demo
  ringkv demo --nodes 3 --in-memory --base-port 17379`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.level.UnmarshalText([]byte(o.logLevel)); err != nil {
				return usageError{err: fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel), cmd: cmd.CommandPath()}
			}
			if err := o.check(); err != nil {
				return usageError{err: err, cmd: cmd.CommandPath()}
			}
			logger := newLogger(cmd.ErrOrStderr(), config.LogFormatText, o.level)
			return runDemo(cmd.Context(), cmd.OutOrStdout(), logger, e, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", 3, "number of nodes")
	f.BoolVar(&o.inMemory, "in-memory", false, "keep data in memory instead of a temporary directory")
	f.StringVar(&o.engine, "engine", config.EngineMemory, "storage engine: memory or pebble")
	f.IntVar(&o.basePort, "base-port", 7379, "client port of the first node; the others follow (0: pick free ports)")
	// Warn by default: the banner is the demo's interface, not the logs.
	f.StringVar(&o.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	return cmd
}

func (o demoOptions) check() error {
	if o.engine != config.EngineMemory && o.engine != config.EnginePebble {
		return fmt.Errorf("--engine %q: want %s or %s", o.engine, config.EngineMemory, config.EnginePebble)
	}
	if o.nodes < 1 || o.nodes > demoMaxNodes {
		return fmt.Errorf("--nodes %d: want 1..%d", o.nodes, demoMaxNodes)
	}
	if top := o.port(o.nodes-1, demoHTTPOffset); o.basePort < 0 || top > 65535 {
		return fmt.Errorf("--base-port %d: the nodes' ports would run past 65535", o.basePort)
	}
	return nil
}

// port returns node i's port at offset from its client port, or 0 (any free
// port) when the base is 0.
func (o demoOptions) port(i, offset int) int {
	if o.basePort == 0 {
		return 0
	}
	return o.basePort + demoPortStride*i + offset
}

// config returns node i's configuration; join lists the seeds' gossip
// addresses, and sec the demo's CA and gossip key.
//
// With a fixed base port every node's gossip address is known up front, so
// the nodes name each other in --initial-cluster and the cluster forms as a
// whole (design §5): none is ready, or takes client requests, until all are
// up, and then every key has its full replica set at once. With --base-port 0
// the ports are the kernel's choice, known only once a node bound them; the
// nodes then join node 1 one after another, as a cluster grows.
func (o demoOptions) config(i int, dataRoot string, sec demoSecrets, join []string) config.Config {
	addr := func(offset int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port(i, offset))) }
	c := config.Default()
	c.NodeID = fmt.Sprintf("node%d", i+1)
	c.InMemory = o.inMemory
	c.Engine = o.engine
	c.DataDir = ""
	if !o.inMemory {
		c.DataDir = filepath.Join(dataRoot, c.NodeID)
	}
	peer := sec.peer[i]
	c.PeerTLSCert, c.PeerTLSKey, c.PeerTLSCA = peer.Cert, peer.Key, peer.CA
	c.GossipKeyFile = sec.gossipKey
	c.ClientAddr, c.PeerAddr, c.GossipAddr, c.HTTPAddr = addr(0), addr(1), addr(2), addr(demoHTTPOffset)
	c.Join = join
	if o.basePort != 0 {
		c.Join = nil
		for j := range o.nodes {
			gossip := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port(j, 2)))
			c.InitialCluster = append(c.InitialCluster, fmt.Sprintf("node%d=%s", j+1, gossip))
		}
	}
	// QUORUM of 3 replicas on fewer than 3 nodes could never be reached.
	c.Replicas = min(c.Replicas, o.nodes)
	c.LogLevel = o.level
	return c
}

func runDemo(ctx context.Context, out io.Writer, logger *slog.Logger, e *env, o demoOptions) (err error) {
	// The directory holds the CA and keys even when the data is in memory.
	dataRoot, err := os.MkdirTemp("", "ringkv-demo-")
	if err != nil {
		return err
	}
	// Runs after the nodes are shut down (defers run last-in first-out).
	defer func() {
		err = errors.Join(err, os.RemoveAll(dataRoot))
	}()
	sec, err := makeDemoSecrets(filepath.Join(dataRoot, "certs"), o.nodes)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	var (
		nodes []node
		cfgs  []config.Config
	)
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			err = errors.Join(err, shutdown(ctx, nodes[i], cfgs[i].ShutdownTimeout))
		}
	}()

	var join []string
	for i := range o.nodes {
		if ctx.Err() != nil {
			return nil // Interrupted while starting: stop what runs, quietly.
		}
		cfg := o.config(i, dataRoot, sec, join)
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("demo: %s: %w", cfg.NodeID, err)
		}
		// The server scopes its logger by node id itself.
		n, err := e.newNode(cfg, logger)
		if err != nil {
			return fmt.Errorf("demo: %s: %w", cfg.NodeID, err)
		}
		if err := n.Start(); err != nil {
			return errors.Join(fmt.Errorf("demo: %s: start: %w", cfg.NodeID, err), shutdown(ctx, n, cfg.ShutdownTimeout))
		}
		nodes, cfgs = append(nodes, n), append(cfgs, cfg)
		if i == 0 {
			// Join the address node 1 really got, which differs with --base-port 0.
			join = []string{n.Addrs().Gossip}
		}
	}

	waitDemoReady(ctx, logger, nodes, cfgs)
	if ctx.Err() != nil {
		return nil // Interrupted while waiting: stop what runs, quietly.
	}
	if err := printDemoBanner(out, nodes, cfgs, dataRoot, o.inMemory); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping the demo cluster...")
	return nil
}

// readier is a node that can say whether it serves yet (*server.Server).
type readier interface{ Ready() error }

// demoReadyWait bounds how long the banner waits for the nodes: they are on
// one host and ready within a second or two, unless something is wrong, which
// the warning then says.
const demoReadyWait = 30 * time.Second

// waitDemoReady waits until every node is ready, so the banner's commands
// work as soon as they are shown.
func waitDemoReady(ctx context.Context, logger *slog.Logger, nodes []node, cfgs []config.Config) {
	deadline := time.Now().Add(demoReadyWait)
	for i, n := range nodes {
		r, ok := n.(readier)
		if !ok {
			continue
		}
		for {
			err := r.Ready()
			if err == nil || ctx.Err() != nil {
				break
			}
			if time.Now().After(deadline) {
				logger.Warn("demo node not ready; showing the banner anyway", "node", cfgs[i].NodeID, "reason", err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func printDemoBanner(w io.Writer, nodes []node, cfgs []config.Config, dataRoot string, inMemory bool) error {
	where := "in " + dataRoot + " (removed at exit)"
	if inMemory {
		where = "in memory"
	}
	fmt.Fprintf(w, "ringkv demo: %d node(s) running, %d replica(s) per key, data %s\n\n", len(nodes), cfgs[0].Replicas, where)
	rows := make([][]string, len(nodes))
	for i, n := range nodes {
		a := n.Addrs()
		rows[i] = []string{cfgs[i].NodeID, a.Client, a.HTTP, a.Peer, a.Gossip}
	}
	if err := writeTable(w, []string{"NODE", "REDIS", "HTTP", "PEER", "GOSSIP"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nPeer ports: mutual TLS with the demo's CA; gossip encrypted (%s).\n", filepath.Dir(cfgs[0].PeerTLSCA))
	first := nodes[0].Addrs()
	host, port, err := net.SplitHostPort(first.Client)
	if err != nil {
		host, port = "127.0.0.1", "7379"
	}
	fmt.Fprintf(w, `
Try:
  redis-cli -h %[1]s -p %[2]s SET foo bar
  redis-cli -h %[1]s -p %[2]s GET foo
  curl -X PUT --data-binary bar http://%[3]s/v1/kv/foo
  curl http://%[3]s/v1/kv/foo
  ringkv status --addr %[3]s
  open http://%[3]s/ui in a browser: the dashboard

Press Ctrl-C to stop.
`, host, port, first.HTTP)
	return nil
}
