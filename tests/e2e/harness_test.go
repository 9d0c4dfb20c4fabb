// Package e2e runs real ringkv processes on loopback and drives them with real
// clients: go-redis over RESP, net/http, and the ringkv binary's own commands.
package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

// binary is the ringkv executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ringkv-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ringkv")
	if err := setUpSecrets(dir); err != nil {
		fmt.Fprintln(os.Stderr, "making the tests' CA and gossip key:", err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", binary, "../../cmd/ringkv")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ringkv:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address nothing listens on right now. It picks
// below the kernel's ephemeral range (32768+), so the outgoing connections of
// the many tests running beside this one cannot take it before the node binds.
func freePort(t testing.TB) string {
	t.Helper()
	for range 1000 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// node is one ringkv server process.
type node struct {
	t       testing.TB
	ID      string
	Client  string
	HTTP    string
	Peer    string
	Gossip  string
	DataDir string
	Extra   []string
	Join    []string
	// Secure are the flags that protect the node (securityArgs).
	Secure []string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

func newNode(t testing.TB, id string, extra ...string) *node {
	t.Helper()
	return &node{
		t: t, ID: id,
		Client: freePort(t), HTTP: freePort(t), Peer: freePort(t), Gossip: freePort(t),
		DataDir: filepath.Join(t.TempDir(), id),
		Extra:   extra,
		Secure:  securityArgs(t, id),
	}
}

func (n *node) args() []string {
	a := []string{"server",
		"--node-id", n.ID,
		"--client-addr", n.Client, "--http-addr", n.HTTP,
		"--peer-addr", n.Peer, "--gossip-addr", n.Gossip,
		"--data-dir", n.DataDir,
		"--log-level", "info",
	}
	a = append(a, n.Secure...)
	if len(n.Join) > 0 {
		a = append(a, "--join", strings.Join(n.Join, ","))
	}
	return append(a, n.Extra...)
}

// start launches the process and waits until it answers /readyz.
func (n *node) start() {
	n.t.Helper()
	n.startNoWait()
	n.waitReady()
}

func (n *node) startNoWait() {
	n.t.Helper()
	var err error
	if n.log == nil {
		n.log, err = os.Create(filepath.Join(n.t.TempDir(), n.ID+".log"))
		if err != nil {
			n.t.Fatal(err)
		}
	}
	n.cmd = exec.Command(binary, n.args()...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	cmd, exited := n.cmd, n.exited
	go func() { cmd.Wait(); close(exited) }()
	n.t.Cleanup(func() { n.kill() })
}

func (n *node) waitReady() {
	n.t.Helper()
	retries := 3
	testutil.Eventually(n.t, 60*time.Second, func() error {
		select {
		case <-n.exited:
			tail := n.logTail()
			if retries > 0 && strings.Contains(tail, "address already in use") {
				// Another test took a port between freePort and the bind:
				// take new ones. The node's own gossip address changes too,
				// which is why startCluster readies the seed before the rest.
				retries--
				n.Client, n.HTTP, n.Peer, n.Gossip = freePort(n.t), freePort(n.t), freePort(n.t), freePort(n.t)
				_ = n.log.Truncate(0) // the retry's log starts afresh; a stale one only reads longer
				_, _ = n.log.Seek(0, 0)
				n.startNoWait()
				return fmt.Errorf("%s: port taken, restarted on new ports", n.ID)
			}
			return fmt.Errorf("%s exited: %s", n.ID, tail)
		default:
		}
		resp, err := httpc.Get("http://" + n.HTTP + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
}

// kill sends SIGKILL and waits for the process to go.
func (n *node) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() error {
	n.t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.kill()
		return fmt.Errorf("%s did not stop on SIGTERM", n.ID)
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with %d: %s", n.ID, code, n.logTail())
	}
	return nil
}

func (n *node) logTail() string {
	b, _ := os.ReadFile(n.log.Name())
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
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

// startCluster starts n nodes that join through the first one, and waits until
// every node sees every other as up.
func startCluster(t testing.TB, n int, extra ...string) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("n%d", i+1), extra...)
	}
	// The seed first: the others join its gossip address, which must not
	// move (see waitReady) once they have it.
	nodes[0].start()
	for _, nd := range nodes[1:] {
		nd.Join = []string{nodes[0].Gossip}
		nd.startNoWait()
	}
	for _, nd := range nodes[1:] {
		nd.waitReady()
	}
	// Registered after the logs exist, so it runs before the temporary
	// directory holding them is removed: a cluster that never formed is
	// otherwise a bare count of nodes up.
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range nodes {
				t.Logf("%s log (tail):\n%s", nd.ID, nd.logTail())
			}
		}
	})
	for _, nd := range nodes {
		waitUp(t, nd, n)
	}
	return nodes
}
