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
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/auth/authtest"
	"github.com/ringkv/ringkv/internal/pki"
	"github.com/ringkv/ringkv/internal/testproc"
)

// ringkvBin is the ringkv executable, built once for the package.
var ringkvBin string

func TestMain(m *testing.M) { testproc.Main(m, &ringkvBin, nil) }

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
	s.users = authtest.WriteUsersFile(t, func(pw string) string { return testproc.HashPassword(t, ringkvBin, pw) },
		authtest.User{Name: adminUser, Password: adminPassword, Rights: []string{"read", "write", "admin"}},
		authtest.User{Name: readerUser, Password: readerPassword, Rights: []string{"read"}},
		authtest.User{Name: writerUser, Password: writerPassword, Rights: []string{"read", "write"}})
	return s
}

// clientTLS verifies the nodes' client and HTTP ports.
func (s *secrets) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// node is one ringkv server process.
type node struct{ *testproc.Node }

func (n *node) logLines() int { return strings.Count(n.Log(), "\n") }

// rss is the process's resident set in bytes, from /proc.
func (n *node) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", n.Pid()))
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
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", n.Pid())
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
	var procs []*testproc.Node
	for _, id := range ids {
		n := &node{testproc.NewNode(t, ringkvBin, id)}
		n.Flags = append([]string{"--in-memory"}, c.sec.nodeArgs(id)...)
		n.HTTPClient, n.Scheme = c.http, "https"
		c.nodes, procs = append(c.nodes, n), append(procs, n.Node)
	}
	testproc.StartJoined(procs)
	for _, n := range c.nodes {
		c.waitMembers(n, 3)
	}
	for _, n := range c.nodes {
		c.admin = append(c.admin, c.redis(n, adminUser, adminPassword, "ALL"))
	}
	c.writeDataSet()
	return c
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
		if !n.Alive() {
			t.Fatalf("%s exited:\n%s", n.ID, n.LogTail())
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
