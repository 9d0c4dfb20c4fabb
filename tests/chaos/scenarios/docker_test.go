//go:build docker

package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/tests/chaos/checker"
	"github.com/ringkv/ringkv/tests/chaos/failpoint"
	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// Ports every container listens on, on its own IP.
const (
	clientPort = "7379"
	httpPort   = "8379"
	peerPort   = "7380"
	gossipPort = "7946"
)

// Ring parameters every container runs with; the convergence check computes
// each key's replicas from them.
const (
	replicas = 3
	vnodes   = 64
)

// repairInterval is the nodes' continuous anti-entropy period: short, so that
// "converged within two periods" (invariant 2) is checked in a short run.
const repairInterval = 5 * time.Second

// convergeMargin is all the convergence check adds to two repair periods: it
// polls every 500 ms and one poll fetches every member's roots, which on the
// loaded dev box takes up to about a second. A poll that starts inside the
// deadline and finds agreement passes, however long its key-by-key
// confirmation takes.
const convergeMargin = 2 * time.Second

// dockerCluster is one container per node on a user-defined network. Faults
// act from the host: iptables in a container's network namespace (nsenter),
// docker kill/start/pause, the node's debug clock endpoint, and the admin API
// for decommission. A joined node gets the next number and IP; a
// decommissioned one keeps its number, stopped.
type dockerCluster struct {
	t      *testing.T
	prefix string
	image  string
	base   net.IP // the network's .0; node i is .(10+i)
	useIPT bool
	httpc  *http.Client
	sec    *dockerSecrets
	// data holds each node's data directory on the host (data/n1, ...),
	// bind-mounted at /data, so a fault can damage a stopped node's files.
	data string
	mu   struct {
		sync.Mutex
		ips []string
		// find is each node's --initial-cluster or --join flag and value,
		// kept to run its container again (CorruptLog).
		find    [][2]string
		removed []bool                     // decommissioned and stopped
		clients map[string][]*redis.Client // level -> per node
	}
}

var (
	_ cluster             = (*dockerCluster)(nil)
	_ failpoint.Resizer   = (*dockerCluster)(nil)
	_ failpoint.Corrupter = (*dockerCluster)(nil)
)

func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// dockerLogs returns the last n lines a container wrote. docker logs writes
// the container's stderr, where a node logs, to its own stderr, so both
// streams are read.
func dockerLogs(ctx context.Context, name string, n int) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", "logs", "--tail", fmt.Sprint(n), name).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// newDockerCluster builds the static binary, an image FROM scratch holding it,
// a network and n containers, and waits until every node sees the others.
// Docker being unusable fails the test: the suite must not pass by skipping.
func newDockerCluster(t *testing.T, n int, seed uint64) *dockerCluster {
	t.Helper()
	ctx := t.Context()
	if _, err := docker(ctx, "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("chaos: Docker is required for the multi-host suite and is not usable here: %v", err)
	}
	c := &dockerCluster{t: t, prefix: fmt.Sprintf("ringkv-chaos-%d", seed%1_000_000_000), httpc: &http.Client{Timeout: 5 * time.Second, Transport: bearer{http.DefaultTransport}}}
	c.mu.clients = map[string][]*redis.Client{}
	_, err := exec.LookPath("iptables")
	_, err2 := exec.LookPath("nsenter")
	c.useIPT = err == nil && err2 == nil && os.Geteuid() == 0
	if !c.useIPT {
		t.Logf("iptables/nsenter unusable (need both, as root): partitions use docker network disconnect, and one-way cuts become two-way")
	}

	dir := t.TempDir()
	c.data = filepath.Join(dir, "data")
	if c.sec, err = newDockerSecrets(filepath.Join(dir, "certs")); err != nil {
		t.Fatalf("chaos: making the run's CA and gossip key: %v", err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "ringkv"), "../../../cmd/ringkv")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building ringkv: %v\n%s", err, out)
	}
	df := "FROM scratch\nCOPY ringkv /ringkv\nENTRYPOINT [\"/ringkv\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	image := c.prefix + ":test"
	c.image = image
	if _, err := docker(ctx, "build", "-q", "-t", image, dir); err != nil {
		t.Fatalf("chaos: building the scratch image: %v", err)
	}
	netName := c.prefix
	// --ip needs a subnet the network was created with; try a few /24s in
	// case another run or network holds one.
	var subnet string
	for try := range uint64(8) {
		subnet = fmt.Sprintf("10.213.%d.0/24", (seed+try)%250+1)
		if _, err = docker(ctx, "network", "create", "--subnet", subnet, netName); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("chaos: creating the docker network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := range c.Nodes() { // joined nodes too
			if t.Failed() {
				if logs, err := dockerLogs(ctx, c.name(i), 40); err == nil {
					t.Logf("%s log tail:\n%s", c.name(i), logs)
				}
			}
			_, _ = docker(ctx, "rm", "-f", c.name(i)) // teardown: best effort
		}
		_, _ = docker(ctx, "network", "rm", netName)
		_, _ = docker(ctx, "rmi", "-f", image)
	})
	_, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatalf("network subnet %q: %v", subnet, err)
	}
	c.base = ipnet.IP.To4()
	// The cluster forms as operators are told to form one: every node names
	// every initial member (--initial-cluster), so all come up normal
	// together and none streams from another while the first faults hit
	// (issue 29: a node killed in that window failed every QUORUM write).
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("n%d=%s:%s", i+1, c.ip(i), gossipPort))
	}
	for range n {
		if err := c.start(ctx, "--initial-cluster", strings.Join(initial, ",")); err != nil {
			t.Fatalf("chaos: %v", err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := c.WaitHealthy(wctx); err != nil {
		t.Fatalf("chaos: cluster never formed: %v", err)
	}
	if err := c.waitReady(wctx); err != nil {
		t.Fatalf("chaos: cluster formed but not ready: %v", err)
	}
	return c
}

// waitReady waits until every member's /readyz answers 200: the moment an
// orchestrator would send traffic and the formation-kill fault strikes.
func (c *dockerCluster) waitReady(ctx context.Context) error {
	return waitFor(ctx, time.Minute, func(ctx context.Context) error {
		for _, i := range c.Members() {
			if err := c.ready(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
}

// ready is nil when node i's /readyz answers 200.
func (c *dockerCluster) ready(ctx context.Context, i int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.ip(i)+":"+httpPort+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("n%d /readyz %d: %s", i+1, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func (c *dockerCluster) name(i int) string { return fmt.Sprintf("%s-n%d", c.prefix, i+1) }

func (c *dockerCluster) ip(i int) string {
	return net.IPv4(c.base[0], c.base[1], c.base[2], c.base[3]+byte(10+i)).String()
}

// start runs the next node's container with how it finds the cluster
// (--initial-cluster at formation, --join for a node added later) and makes
// its clients. A node joining while the cluster holds data enters joining
// and streams its ranges.
func (c *dockerCluster) start(ctx context.Context, findFlag, findValue string) error {
	c.mu.Lock()
	i := len(c.mu.ips)
	c.mu.Unlock()
	if err := os.MkdirAll(c.hostDir(i), 0o755); err != nil {
		return err
	}
	if err := c.run(ctx, i, findFlag, findValue); err != nil {
		return err
	}
	ip := c.ip(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.find = append(c.mu.find, [2]string{findFlag, findValue})
	for lvl, cl := range levelClients(c.t, ip+":"+clientPort, chaosPassword) {
		c.mu.clients[lvl] = append(c.mu.clients[lvl], cl)
	}
	c.mu.ips = append(c.mu.ips, ip)
	c.mu.removed = append(c.mu.removed, false)
	return nil
}

// run starts node i's container on its data directory; extra flags follow
// the usual ones.
func (c *dockerCluster) run(ctx context.Context, i int, findFlag, findValue string, extra ...string) error {
	ip := c.ip(i)
	secure, err := c.sec.nodeArgs(i, ip)
	if err != nil {
		return fmt.Errorf("certificate for n%d: %w", i+1, err)
	}
	args := []string{"run", "-d", "--name", c.name(i), "--network", c.prefix, "--ip", ip,
		"-v", c.hostDir(i) + ":/data"}
	args = append(append(args, c.sec.mount()...), c.image,
		"server", "--node-id", fmt.Sprintf("n%d", i+1), "--data-dir", "/data",
		"--client-addr", ip+":"+clientPort, "--http-addr", ip+":"+httpPort,
		"--peer-addr", ip+":"+peerPort, "--gossip-addr", ip+":"+gossipPort,
		findFlag, findValue, "--debug-endpoints", "--log-level", "warn",
		"--replicas", fmt.Sprint(replicas), "--vnodes", fmt.Sprint(vnodes),
		"--repair-interval", repairInterval.String(), "--request-timeout", "1s")
	args = append(args, secure...)
	if _, err := docker(ctx, append(args, extra...)...); err != nil {
		return fmt.Errorf("starting container n%d: %w", i+1, err)
	}
	return nil
}

func (c *dockerCluster) hostDir(i int) string { return filepath.Join(c.data, fmt.Sprintf("n%d", i+1)) }

func (c *dockerCluster) Nodes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.ips)
}

func (c *dockerCluster) Members() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return members(c.mu.removed)
}

// client returns node i's client at level, or the one redirect picks when i
// was decommissioned.
func (c *dockerCluster) client(level string, i int) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.clients[level][redirect(c.mu.removed, i)]
}

func (c *dockerCluster) httpURL(i int, path string) string {
	return "http://" + c.ip(i) + ":" + httpPort + path
}

func (c *dockerCluster) Kill(ctx context.Context, i int) error {
	_, err := docker(ctx, "kill", "-s", "KILL", c.name(i))
	return err
}

func (c *dockerCluster) Restart(ctx context.Context, i int) error {
	if _, err := docker(ctx, "start", c.name(i)); err != nil {
		return err
	}
	// A restarted container has a fresh network namespace: no stale rules.
	return nil
}

func (c *dockerCluster) pid(ctx context.Context, i int) (string, error) {
	pid, err := docker(ctx, "inspect", "-f", "{{.State.Pid}}", c.name(i))
	if err == nil && (pid == "" || pid == "0") {
		err = fmt.Errorf("%s is not running", c.name(i))
	}
	return pid, err
}

// iptables runs iptables in node i's network namespace from the host, so the
// scratch image needs no tools.
func (c *dockerCluster) iptables(ctx context.Context, i int, args ...string) error {
	pid, err := c.pid(ctx, i)
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", pid, "-n", "iptables", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nsenter iptables %v on n%d: %w: %s", args, i+1, err, out)
	}
	return nil
}

// drop makes node to discard everything from's IP sends it, and from discard
// what to sends: a two-way cut when both are called, one-way when one is.
func (c *dockerCluster) dropFrom(ctx context.Context, at, from int) error {
	return c.iptables(ctx, at, "-A", "INPUT", "-s", c.ip(from), "-j", "DROP")
}

func (c *dockerCluster) Partition(ctx context.Context, side []int) error {
	in := func(i int) bool {
		for _, s := range side {
			if s == i {
				return true
			}
		}
		return false
	}
	if !c.useIPT {
		for _, i := range side {
			if _, err := docker(ctx, "network", "disconnect", c.prefix, c.name(i)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, a := range c.Members() {
		for _, b := range c.Members() {
			if in(a) != in(b) {
				if err := c.dropFrom(ctx, a, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (c *dockerCluster) PartitionOneWay(ctx context.Context, from, to int) error {
	if !c.useIPT {
		return c.Partition(ctx, []int{from})
	}
	return c.dropFrom(ctx, to, from)
}

func (c *dockerCluster) Heal(ctx context.Context) error {
	var errs []error
	for _, i := range c.Members() {
		if !c.useIPT {
			_, err := docker(ctx, "network", "connect", "--ip", c.ip(i), c.prefix, c.name(i))
			if err != nil && !strings.Contains(err.Error(), "already exists") {
				errs = append(errs, err)
			}
			continue
		}
		if _, err := c.pid(ctx, i); err != nil {
			continue // killed: its namespace, rules and all, is gone
		}
		errs = append(errs, c.iptables(ctx, i, "-F", "INPUT"))
	}
	return errors.Join(errs...)
}

func (c *dockerCluster) Pause(ctx context.Context, i int) error {
	_, err := docker(ctx, "pause", c.name(i))
	return err
}

func (c *dockerCluster) Unpause(ctx context.Context, i int) error {
	_, err := docker(ctx, "unpause", c.name(i))
	return err
}

func (c *dockerCluster) SkewClock(ctx context.Context, i int, d time.Duration) error {
	return c.post(ctx, i, "/debug/clock-offset?d="+d.String(), http.StatusOK)
}

// FillDisk makes node i's data disk full by raising its reserve past any
// free space (the hidden debug endpoint): the node then takes the path a
// really full disk takes. A container's disk is the host's, which the suite
// must not fill; the e2e tests fill a real tmpfs instead.
func (c *dockerCluster) FillDisk(ctx context.Context, i int, full bool) error {
	bytes := "0" // back to the configured reserve
	if full {
		bytes = strconv.FormatInt(1<<50, 10)
	}
	return c.post(ctx, i, "/debug/disk-reserve?bytes="+bytes, http.StatusOK)
}

var _ failpoint.DiskFiller = (*dockerCluster)(nil)

// post sends an empty POST to node i's HTTP API and wants status back.
func (c *dockerCluster) post(ctx context.Context, i int, path string, status int) error {
	if err := postURL(ctx, c.httpc, c.httpURL(i, path), status); err != nil {
		return fmt.Errorf("n%d: %w", i+1, err)
	}
	return nil
}

func (c *dockerCluster) Put(ctx context.Context, node int, key, value string, ttl time.Duration, level string) error {
	return respPut(ctx, c.client(level, node), key, value, ttl)
}

func (c *dockerCluster) Get(ctx context.Context, node int, key, level string) (string, bool, error) {
	return respGet(ctx, c.client(level, node), key)
}

func (c *dockerCluster) Del(ctx context.Context, node int, key, level string) error {
	return respDel(ctx, c.client(level, node), key)
}

func (c *dockerCluster) Incr(ctx context.Context, node int, key string, delta int64, level string) error {
	return respIncr(ctx, c.client(level, node), key, delta)
}

func (c *dockerCluster) Classify(err error) traffic.Outcome { return classifyRESP(err) }

// Versions reads key from the own replica of each of its replicas in the ring
// of the current members.
func (c *dockerCluster) Versions(ctx context.Context, key string) ([]string, error) {
	return replicaVersions(ctx, c.httpc, c.httpURL, c.Members(), vnodes, replicas, key)
}

// getJSON decodes node i's answer to GET path into v.
func (c *dockerCluster) getJSON(ctx context.Context, i int, path string, v any) error {
	if err := getJSONURL(ctx, c.httpc, c.httpURL(i, path), v); err != nil {
		return fmt.Errorf("n%d: %w", i+1, err)
	}
	return nil
}

// view returns node i's /v1/cluster by member id.
func (c *dockerCluster) view(ctx context.Context, i int) (map[string]memberView, error) {
	var st struct {
		Nodes []memberView `json:"nodes"`
	}
	if err := c.getJSON(ctx, i, "/v1/cluster", &st); err != nil {
		return nil, err
	}
	out := map[string]memberView{}
	for _, m := range st.Nodes {
		out[m.ID] = m
	}
	return out, nil
}

// settled is checkSettled on the members' /v1/cluster.
func (c *dockerCluster) settled(ctx context.Context) error {
	return checkSettled(c.Members(), func(i int) (map[string]memberView, error) { return c.view(ctx, i) })
}

// WaitHealthy waits until every member answers and sees exactly the members,
// up and normal.
func (c *dockerCluster) WaitHealthy(ctx context.Context) error {
	return testutil.Poll(ctx, 500*time.Millisecond, func() error { return c.settled(ctx) })
}

// waitFor polls cond every half second until it returns nil or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := testutil.Poll(ctx, 500*time.Millisecond, func() error { return cond(ctx) }); err != nil {
		return fmt.Errorf("after %v: %w", timeout, err)
	}
	return nil
}

// Join starts the next node with an empty data directory, joining through
// every member, while the traffic goes on (it reaches the new node as soon as
// it listens), and waits until every member, the new one included, sees it
// normal.
func (c *dockerCluster) Join(ctx context.Context) (int, error) {
	var seeds []string
	for _, i := range c.Members() {
		seeds = append(seeds, c.ip(i)+":"+gossipPort)
	}
	if err := c.start(ctx, "--join", strings.Join(seeds, ",")); err != nil {
		return 0, err
	}
	i := c.Nodes() - 1
	if err := waitFor(ctx, 3*time.Minute, c.settled); err != nil {
		return i, fmt.Errorf("n%d never became normal everywhere: %w", i+1, err)
	}
	return i, nil
}

// Decommission asks node i to stream its ranges away (retrying while another
// topology change runs), waits until every other member sees it removed,
// sends its clients elsewhere and stops its container.
func (c *dockerCluster) Decommission(ctx context.Context, i int) error {
	id := fmt.Sprintf("n%d", i+1)
	err := waitFor(ctx, time.Minute, func(ctx context.Context) error {
		return c.post(ctx, i, "/v1/admin/decommission", http.StatusAccepted)
	})
	if err != nil {
		return err
	}
	err = waitFor(ctx, 3*time.Minute, func(ctx context.Context) error {
		for _, j := range c.Members() {
			if j == i {
				continue
			}
			v, err := c.view(ctx, j)
			if err != nil {
				return err
			}
			if m, ok := v[id]; ok && m.State != "removed" {
				return fmt.Errorf("n%d sees %s %q", j+1, id, m.State)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s never removed: %w", id, err)
	}
	c.mu.Lock()
	c.mu.removed[i] = true
	c.mu.Unlock()
	if _, err := docker(ctx, "stop", "-t", "10", c.name(i)); err != nil {
		return err
	}
	return waitFor(ctx, time.Minute, c.settled)
}

func (c *dockerCluster) RangeRoots(ctx context.Context) (map[string][]checker.RangeRoot, error) {
	return membersRoots(ctx, c.httpc, c.httpURL, c.Members())
}

func (c *dockerCluster) Repair(ctx context.Context) error {
	return repairMembers(ctx, c.httpc, c.httpURL, c.Members())
}

func (c *dockerCluster) RepairInterval() time.Duration { return repairInterval }

// TestDocker runs the workloads against real binaries, one container per
// node, through every fault, joins and decommissions included. The short run
// (the default, what CI runs) is sized to inject each fault once.
func TestDocker(t *testing.T) {
	dur := envDuration(t, 90*time.Second)
	for _, seed := range seeds(t, 1) {
		c := newDockerCluster(t, 3, seed)
		hold, calm := 4*time.Second, 4*time.Second
		if dur >= 5*time.Minute {
			hold, calm = 15*time.Second, 10*time.Second
		}
		// The long run's hold outlasts failure detection, so that a short
		// run can reproduce what a heal after a declared death does.
		if h := os.Getenv("RINGKV_CHAOS_HOLD"); h != "" {
			hold, calm = envDurationNamed(t, "RINGKV_CHAOS_HOLD", hold), 10*time.Second
		}
		run(t, c, runConfig{
			name: "docker", seed: seed, duration: dur, calm: calm, hold: hold,
			atFormation: []failpoint.Failpoint{failpoint.FormationKill},
			faults:      failpoint.All(),
			traffic: traffic.Config{
				WriteOnceWorkers: 2, Registers: 4, RegisterReaders: 3, DeleteWorkers: 2,
				Pause: 20 * time.Millisecond, OpTimeout: 3 * time.Second,
			},
			convergeWithin: convergeMargin,
		})
	}
}
