package testproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/testutil"
)

// AnyPort is where a node listens until its first start has bound: on
// loopback, at a port the kernel picks.
const AnyPort = "127.0.0.1:0"

// startTimeout bounds a node's start and readiness. Generous: CI runs these
// tests beside the race-enabled suites on two cores.
const startTimeout = 60 * time.Second

// Node is one ringkv server process. Its fields are the command line of its
// next start; a test may change them between starts.
type Node struct {
	ID string
	// Client, HTTP, Peer and Gossip are the listen addresses. They are
	// AnyPort until the first start has bound them, then the ports the node
	// wrote to its --addr-file, which every later start reuses: peers know
	// a node by its addresses, and memberlist does not take a known name
	// back at a new one until the old has been declared dead. A test may
	// set one to a fixed address before the first start.
	Client, HTTP, Peer, Gossip string
	// DataDir is --data-dir; empty passes none.
	DataDir string
	// Join is --join.
	Join []string
	// InitialCluster, when set, are the members of the new cluster this node
	// forms with, itself among them (see initialClusterFlag).
	InitialCluster []*Node
	// Flags follow the ones above; a later flag wins over an earlier one.
	Flags []string
	// Dir is the working directory; empty is the test's.
	Dir string
	// HTTPClient and Scheme reach the node's /readyz: nil and "" for plain
	// HTTP, a client that trusts its certificate and "https" for TLS.
	HTTPClient *http.Client
	Scheme     string

	tb       testing.TB
	binary   string
	logPath  string
	addrFile string
	// unbound stands for Gossip in other members' --initial-cluster while
	// this node has not bound it (Unanswered).
	unbound string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// NewNode prepares node id, to run binary. Its log and address file live in
// a temporary directory of tb, and a failed test logs the log's tail.
func NewNode(tb testing.TB, binary, id string) *Node {
	tb.Helper()
	dir := tb.TempDir()
	n := &Node{
		ID: id, Client: AnyPort, HTTP: AnyPort, Peer: AnyPort, Gossip: AnyPort,
		tb: tb, binary: binary,
		logPath: filepath.Join(dir, id+".log"), addrFile: filepath.Join(dir, id+".addrs.json"),
	}
	// Registered after TempDir's removal, so it runs before it.
	tb.Cleanup(func() {
		if tb.Failed() && n.cmd != nil {
			tb.Logf("%s log (tail):\n%s", n.ID, n.LogTail())
		}
	})
	return n
}

// CommandLine is the arguments of the node's next start.
func (n *Node) CommandLine() []string {
	a := []string{"server", "--node-id", n.ID,
		"--client-addr", n.Client, "--http-addr", n.HTTP,
		"--peer-addr", n.Peer, "--gossip-addr", n.Gossip,
		"--addr-file", n.addrFile, "--log-level", "info",
	}
	if n.DataDir != "" {
		a = append(a, "--data-dir", n.DataDir)
	}
	if len(n.Join) > 0 {
		a = append(a, "--join", strings.Join(n.Join, ","))
	}
	if len(n.InitialCluster) > 0 {
		a = append(a, "--initial-cluster", n.initialClusterFlag())
	}
	return append(a, n.Flags...)
}

// initialClusterFlag names each member at its gossip address. The flag names
// every member before that member is up, which an address the kernel picks
// at the bind cannot be: a member not yet bound is named at an address of
// its own where nothing answers, held for the test. Members therefore start
// one after another, and the later ones find the earlier ones, which is all
// gossip needs: a node that is started first learns the others when they
// join it, and forming waits for members by id, not by address.
func (n *Node) initialClusterFlag() string {
	var entries []string
	for _, m := range n.InitialCluster {
		addr := m.Gossip
		if !m.bound() {
			if m.unbound == "" {
				m.unbound = Unanswered(n.tb)
			}
			addr = m.unbound
		}
		entries = append(entries, m.ID+"="+addr)
	}
	return strings.Join(entries, ",")
}

// bound reports whether every address is known: a fixed one, or one the
// node wrote to its --addr-file.
func (n *Node) bound() bool {
	for _, a := range []string{n.Client, n.HTTP, n.Peer, n.Gossip} {
		if _, port, _ := net.SplitHostPort(a); port == "0" {
			return false
		}
	}
	return true
}

// Start starts the process and waits until it answers /readyz with 200.
func (n *Node) Start() {
	n.tb.Helper()
	n.StartNoWait()
	n.WaitReady()
}

// StartNoWait starts the process and returns once its addresses are known:
// at once on a restart, else when it has written its --addr-file, or has
// exited first (a start that fails: Exited says so).
func (n *Node) StartNoWait() {
	n.tb.Helper()
	if err := os.Remove(n.addrFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		n.tb.Fatal(err)
	}
	// Appended to: one log across restarts, as a service manager keeps it.
	log, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		n.tb.Fatal(err)
	}
	defer log.Close() // the process has its own descriptor
	if n.cmd == nil {
		n.tb.Cleanup(n.Kill)
	}
	cmd := exec.Command(n.binary, n.CommandLine()...)
	cmd.Dir = n.Dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		n.tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	n.cmd, n.exited = cmd, exited
	if !n.bound() {
		n.readAddrFile()
	}
}

// readAddrFile takes the node's addresses from its --addr-file, which it
// writes once every listener is bound, or leaves them if it exits first.
func (n *Node) readAddrFile() {
	n.tb.Helper()
	testutil.Eventually(n.tb, startTimeout, func() error {
		b, err := os.ReadFile(n.addrFile)
		if err != nil {
			if !n.Alive() {
				return nil
			}
			return fmt.Errorf("%s has not written its --addr-file: %w", n.ID, err)
		}
		var a apitypes.ListenAddrs
		if err := json.Unmarshal(b, &a); err != nil {
			// Renamed into place whole: a bad file is a bug, not a race.
			n.tb.Fatalf("%s: --addr-file %s: %v", n.ID, b, err)
		}
		n.Client, n.HTTP, n.Peer, n.Gossip = a.Client, a.HTTP, a.Peer, a.Gossip
		return nil
	})
}

// URL is the address of path on the node's HTTP port.
func (n *Node) URL(path string) string {
	scheme := n.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + n.HTTP + path
}

// WaitReady waits until the node answers /readyz with 200, and fails the
// test at once if the process exits.
func (n *Node) WaitReady() {
	n.tb.Helper()
	c := n.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	testutil.Eventually(n.tb, startTimeout, func() error {
		if !n.Alive() {
			n.tb.Fatalf("%s exited: %s", n.ID, n.LogTail())
		}
		resp, err := c.Get(n.URL("/readyz"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /readyz: %s", n.ID, resp.Status)
		}
		return nil
	})
}

// Alive reports whether the process of the last start still runs.
func (n *Node) Alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return n.cmd != nil
	}
}

// Exited is closed when the process of the last start has exited.
func (n *Node) Exited() <-chan struct{} { return n.exited }

// ExitCode is the exit code of the last start's process, once it exited.
func (n *Node) ExitCode() int { return n.cmd.ProcessState.ExitCode() }

// Pid is the process id of the last start.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Kill sends SIGKILL and waits for the process to go.
func (n *Node) Kill() {
	if !n.Alive() {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// Stop sends SIGTERM and waits for a clean exit.
func (n *Node) Stop() error {
	n.tb.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.Kill()
		return fmt.Errorf("%s did not stop on SIGTERM", n.ID)
	}
	if code := n.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with %d: %s", n.ID, code, n.LogTail())
	}
	return nil
}

// LogPath is the file the node logs to, across its starts.
func (n *Node) LogPath() string { return n.logPath }

// Log is everything the node logged, across its starts.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// LogTail is the end of Log, enough to say why a node failed.
func (n *Node) LogTail() string {
	l := n.Log()
	if len(l) > 4000 {
		l = l[len(l)-4000:]
	}
	return l
}
