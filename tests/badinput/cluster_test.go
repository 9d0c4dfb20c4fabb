// Package badinput is the bad-input catalogue (issue 30): a real 3-node
// cluster of ringkv processes with every protection on (peer mutual TLS, an
// encrypted gossip keyring, users and passwords, TLS on the client and HTTP
// ports), attacked on each of its four ports by the probes of catalogue_test.go.
// After each probe every node must still serve, within a memory bound, with a
// fixed data set unchanged.
package badinput

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
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

	"github.com/ringkv/ringkv/internal/pki"
)

// ringkvBin is the ringkv executable, built once for the package.
var ringkvBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ringkv-badinput-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ringkvBin = filepath.Join(dir, "ringkv")
	build := exec.Command("go", "build", "-o", ringkvBin, "../../cmd/ringkv")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ringkv:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Users of the cluster. The default user's password is --password; the
// others come from --users-file with the rights their names say.
const (
	defaultPassword = "default-pw-9f2c"
	adminUser       = "admin"
	adminPassword   = "admin-pw-41b7"
	readerUser      = "reader"
	readerPassword  = "reader-pw-77de"
	writerUser      = "writer"
	writerPassword  = "writer-pw-0c5a"
)

// Limits the cluster runs with: the defaults for keys and values, so that
// sizes declared up to them must be met by buffers that grow as bytes
// arrive, and a small cap on all client buffers.
const (
	maxKeyBytes     = 8 << 10
	maxValueBytes   = 16 << 20
	maxClientMemory = 64 << 20
)

// Memory bounds every node must stay under, during and after each probe. A
// node holds ~100 small keys, so its baseline is tens of MiB; each attack the
// issue found would have added from 500 MiB to gigabytes. The heap bound
// counts allocations that a declared size made but bytes never filled, which
// RSS does not see until the pages are touched.
const (
	rssBound     = 512 << 20
	heapBound    = 256 << 20
	dataSetSize  = 100
	dataSetValue = "badinput-value-%03d-unchanged"
)

// secrets are the files a protected cluster needs.
type secrets struct {
	dir       string
	ca        *pki.CA
	caFile    string
	pool      *x509.CertPool
	nodes     map[string]pki.Files // peer certificates by node id
	server    pki.Files            // client and HTTP ports
	gossipKey string               // file holding the cluster's gossip key
	users     string               // --users-file
}

func makeSecrets(t testing.TB, ids []string) *secrets {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("badinput-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	s := &secrets{dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.crt"), nodes: map[string]pki.Files{}}
	s.pool = x509.NewCertPool()
	s.pool.AddCert(ca.Cert)
	for _, id := range ids {
		if s.nodes[id], err = ca.IssueFiles(dir, id, []string{"127.0.0.1"}, pki.Peer, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if s.server, err = ca.IssueFiles(dir, "server", []string{"127.0.0.1", "localhost"}, pki.Server, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	s.gossipKey = filepath.Join(dir, "gossip.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(s.gossipKey, []byte("# the cluster's gossip key\n"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var users strings.Builder
	users.WriteString("users:\n")
	for _, u := range []struct{ name, pw, rights string }{
		{adminUser, adminPassword, "[read, write, admin]"},
		{readerUser, readerPassword, "[read]"},
		{writerUser, writerPassword, "[read, write]"},
	} {
		fmt.Fprintf(&users, "  - name: %s\n    password: %q\n    rights: %s\n", u.name, hashPassword(t, u.pw), u.rights)
	}
	s.users = filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(s.users, []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// hashPassword asks the binary, as an operator would, for a password's hash.
func hashPassword(t testing.TB, pw string) string {
	t.Helper()
	cmd := exec.Command(ringkvBin, "hash-password")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ringkv hash-password: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// clientTLS verifies the nodes' client and HTTP ports.
func (s *secrets) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// kernelPort returns a loopback address the kernel just handed out.
func kernelPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// node is one ringkv server process.
type node struct {
	t                          testing.TB
	ID                         string
	Client, HTTP, Peer, Gossip string
	args                       []string // beyond ids and addresses
	join                       []string
	cmd                        *exec.Cmd
	exited                     chan struct{}
	logPath                    string
}

func (n *node) pickPorts() {
	n.Client, n.HTTP, n.Peer, n.Gossip = kernelPort(n.t), kernelPort(n.t), kernelPort(n.t), kernelPort(n.t)
}

func (n *node) start() {
	n.t.Helper()
	args := []string{"server", "--node-id", n.ID,
		"--client-addr", n.Client, "--http-addr", n.HTTP, "--peer-addr", n.Peer, "--gossip-addr", n.Gossip,
		"--in-memory", "--log-level", "info"}
	if len(n.join) > 0 {
		args = append(args, "--join", strings.Join(n.join, ","))
	}
	args = append(args, n.args...)
	log, err := os.Create(n.logPath)
	if err != nil {
		n.t.Fatal(err)
	}
	defer log.Close()
	n.cmd = exec.Command(ringkvBin, args...)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	cmd, exited := n.cmd, n.exited
	go func() { cmd.Wait(); close(exited) }()
	n.t.Cleanup(n.kill)
}

func (n *node) kill() {
	select {
	case <-n.exited:
	default:
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
	}
}

func (n *node) alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *node) log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

func (n *node) logTail() string {
	b := n.log()
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return b
}

func (n *node) logLines() int { return strings.Count(n.log(), "\n") }

// rss is the process's resident set in bytes, from /proc.
func (n *node) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", n.cmd.Process.Pid)
}

// cluster is the protected cluster under attack.
type cluster struct {
	t       testing.TB
	sec     *secrets
	nodes   []*node
	http    *http.Client
	admin   []*redis.Client // one per node, admin user, consistency ALL
	dataSet map[string]string
	// The most any node used at any check, for the table's summary.
	maxRSS, maxHeap int64
}

// nodeArgs are the flags that protect a node.
func (s *secrets) nodeArgs(id string) []string {
	f := s.nodes[id]
	return []string{
		"--password", defaultPassword,
		"--users-file", s.users,
		"--peer-tls-cert", f.Cert, "--peer-tls-key", f.Key, "--peer-tls-ca", f.CA,
		"--gossip-key-file", s.gossipKey,
		"--tls-cert", s.server.Cert, "--tls-key", s.server.Key,
		"--max-key-bytes", strconv.Itoa(maxKeyBytes),
		"--max-value-bytes", strconv.Itoa(maxValueBytes),
		"--max-client-memory", strconv.Itoa(maxClientMemory),
		"--debug-endpoints",
	}
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	ids := []string{"n1", "n2", "n3"}
	c := &cluster{t: t, sec: makeSecrets(t, ids)}
	c.http = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: c.sec.clientTLS(), MaxIdleConnsPerHost: 4},
	}
	logs := t.TempDir()
	for _, id := range ids {
		c.nodes = append(c.nodes, &node{t: t, ID: id, args: c.sec.nodeArgs(id), logPath: filepath.Join(logs, id+".log")})
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("%s log (tail):\n%s", n.ID, n.logTail())
			}
		}
	})
	// The seed first, ready before the others join its gossip address.
	c.startReady(c.nodes[0])
	for _, n := range c.nodes[1:] {
		n.join = []string{c.nodes[0].Gossip}
		c.startReady(n)
	}
	for _, n := range c.nodes {
		c.waitMembers(n, 3)
	}
	for _, n := range c.nodes {
		c.admin = append(c.admin, c.redis(n, adminUser, adminPassword, "ALL"))
	}
	c.writeDataSet()
	return c
}

// startReady starts n and waits for /readyz, taking new ports when another
// process took one between kernelPort and the node's bind.
func (c *cluster) startReady(n *node) {
	c.t.Helper()
	for try := 0; ; try++ {
		n.pickPorts()
		n.start()
		err := c.waitReady(n)
		if err == nil {
			return
		}
		if try < 3 && strings.Contains(n.log(), "address already in use") {
			n.kill()
			continue
		}
		c.t.Fatalf("%s: %v\n%s", n.ID, err, n.logTail())
	}
}

func (c *cluster) waitReady(n *node) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if !n.alive() {
			return fmt.Errorf("exited")
		}
		resp, err := c.http.Get("https://" + n.HTTP + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterStatus is what /v1/cluster says, as far as the catalogue needs.
type clusterStatus struct {
	Nodes []struct {
		ID    string `json:"id"`
		Up    bool   `json:"up"`
		State string `json:"state"`
	} `json:"nodes"`
}

func (c *cluster) status(n *node) (clusterStatus, error) {
	var st clusterStatus
	req, _ := http.NewRequest("GET", "https://"+n.HTTP+"/v1/cluster", nil)
	req.SetBasicAuth(adminUser, adminPassword)
	resp, err := c.http.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/v1/cluster: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// members describes whom n sees up and normal.
func (c *cluster) members(n *node) (normal int, desc string, err error) {
	st, err := c.status(n)
	if err != nil {
		return 0, "", err
	}
	var seen []string
	for _, m := range st.Nodes {
		if m.Up && m.State == "normal" {
			normal++
		}
		seen = append(seen, fmt.Sprintf("%s up=%t %s", m.ID, m.Up, m.State))
	}
	return normal, strings.Join(seen, ", "), nil
}

func (c *cluster) waitMembers(n *node, want int) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, desc, err := c.members(n)
		if err == nil && got == want && len(strings.Split(desc, ", ")) == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s sees %d of %d nodes up and normal (%s; %v)", n.ID, got, want, desc, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// redis returns an authenticated go-redis client over TLS whose
// connections use the consistency level (empty: the node's default).
func (c *cluster) redis(n *node, user, password, level string) *redis.Client {
	o := &redis.Options{
		Addr: n.Client, Username: user, Password: password, TLSConfig: c.sec.clientTLS(),
		MaxRetries: -1, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, PoolSize: 4,
	}
	if level != "" {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "RINGKV.CONSISTENCY", level).Err()
		}
	}
	r := redis.NewClient(o)
	c.t.Cleanup(func() { r.Close() })
	return r
}

func dataKey(i int) string { return fmt.Sprintf("badinput:key:%03d", i) }

// writeDataSet writes the fixed data set at ALL, so every replica holds it.
func (c *cluster) writeDataSet() {
	c.t.Helper()
	c.dataSet = map[string]string{}
	ctx := context.Background()
	for i := range dataSetSize {
		k, v := dataKey(i), fmt.Sprintf(dataSetValue, i)
		if err := c.admin[0].Set(ctx, k, v, 0).Err(); err != nil {
			c.t.Fatalf("writing the data set: %s: %v", k, err)
		}
		c.dataSet[k] = v
	}
}

// verify is what every probe is followed by: every node alive, serving,
// under the memory bounds, every one of them normal in n1's view, and the
// data set unchanged, read at ALL through each node in turn.
func (c *cluster) verify(t *testing.T, round int) {
	t.Helper()
	for _, n := range c.nodes {
		if !n.alive() {
			t.Fatalf("%s exited:\n%s", n.ID, n.logTail())
		}
	}
	c.checkMemory(t, "after the probe")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, n := range c.nodes {
		if err := c.admin[i].Ping(ctx).Err(); err != nil {
			t.Errorf("%s does not serve after the probe: %v", n.ID, err)
		}
	}
	r := c.admin[round%len(c.admin)]
	pipe := r.Pipeline()
	cmds := make(map[string]*redis.StringCmd, len(c.dataSet))
	for k := range c.dataSet {
		cmds[k] = pipe.Get(ctx, k)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is checked below
	changed := 0
	for k, want := range c.dataSet {
		if got, err := cmds[k].Result(); err != nil || got != want {
			if changed < 3 {
				t.Errorf("data set changed: %s = %q, %v; want %q", k, got, err, want)
			}
			changed++
		}
	}
	if changed > 0 {
		t.Errorf("%d of %d data set keys changed or unreadable", changed, len(c.dataSet))
	}
	for _, n := range c.nodes {
		if got, desc, err := c.members(n); err != nil || got != len(c.nodes) {
			t.Errorf("%s sees %d of %d nodes up and normal after the probe: %s %v", n.ID, got, len(c.nodes), desc, err)
		}
	}
}

// checkMemory fails t if a node's RSS or heap is past its bound; the probes
// that hold connections open call it while they do.
func (c *cluster) checkMemory(t *testing.T, when string) {
	t.Helper()
	for _, n := range c.nodes {
		rss, err := n.rss()
		if err != nil {
			t.Errorf("%s: %v", n.ID, err)
		} else if c.maxRSS = max(c.maxRSS, rss); rss > rssBound {
			t.Errorf("%s: RSS %d MiB %s, bound %d MiB", n.ID, rss>>20, when, rssBound>>20)
		}
		heap, err := c.heapInUse(n)
		if err != nil {
			t.Errorf("%s: heap: %v", n.ID, err)
		} else if c.maxHeap = max(c.maxHeap, heap); heap > heapBound {
			t.Errorf("%s: heap in use %d MiB %s, bound %d MiB", n.ID, heap>>20, when, heapBound>>20)
		}
	}
}

// heapInUse reads go_memstats_heap_inuse_bytes from the node's /metrics.
func (c *cluster) heapInUse(n *node) (int64, error) {
	req, _ := http.NewRequest("GET", "https://"+n.HTTP+"/metrics", nil)
	req.SetBasicAuth(adminUser, adminPassword)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("/metrics has no go_memstats_heap_inuse_bytes")
}
