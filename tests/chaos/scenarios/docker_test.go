package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// dockerCluster is one container per node on a user-defined network. Faults
// act from the host: iptables in a container's network namespace (nsenter),
// docker kill/start/pause, and the node's debug clock endpoint.
type dockerCluster struct {
	t       *testing.T
	prefix  string
	ips     []string
	useIPT  bool
	clients map[string][]*redis.Client // level -> per node
	httpc   *http.Client
	mu      sync.Mutex
}

var _ cluster = (*dockerCluster)(nil)

func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
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
	c := &dockerCluster{t: t, prefix: fmt.Sprintf("ringkv-chaos-%d", seed%1_000_000_000), httpc: &http.Client{Timeout: 5 * time.Second}}
	_, err := exec.LookPath("iptables")
	_, err2 := exec.LookPath("nsenter")
	c.useIPT = err == nil && err2 == nil && os.Geteuid() == 0
	if !c.useIPT {
		t.Logf("iptables/nsenter unusable (need both, as root): partitions use docker network disconnect, and one-way cuts become two-way")
	}

	dir := t.TempDir()
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
		for i := range n {
			if t.Failed() {
				if logs, err := docker(ctx, "logs", "--tail", "40", c.name(i)); err == nil {
					t.Logf("%s log tail:\n%s", c.name(i), logs)
				}
			}
			docker(ctx, "rm", "-f", c.name(i))
		}
		docker(ctx, "network", "rm", netName)
		docker(ctx, "rmi", "-f", image)
	})
	_, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatalf("network subnet %q: %v", subnet, err)
	}
	base := ipnet.IP.To4()
	for i := range n {
		ip := net.IPv4(base[0], base[1], base[2], base[3]+byte(10+i)).String()
		c.ips = append(c.ips, ip)
	}
	for i := range n {
		var join []string
		for j, ip := range c.ips {
			if j != i {
				join = append(join, ip+":"+gossipPort)
			}
		}
		ip := c.ips[i]
		if _, err := docker(ctx, "run", "-d", "--name", c.name(i), "--network", netName, "--ip", ip, image,
			"server", "--node-id", fmt.Sprintf("n%d", i+1), "--data-dir", "/data",
			"--client-addr", ip+":"+clientPort, "--http-addr", ip+":"+httpPort,
			"--peer-addr", ip+":"+peerPort, "--gossip-addr", ip+":"+gossipPort,
			"--join", strings.Join(join, ","), "--debug-endpoints", "--log-level", "warn",
			"--request-timeout", "1s"); err != nil {
			t.Fatalf("chaos: starting container: %v", err)
		}
	}
	c.clients = map[string][]*redis.Client{}
	for _, lvl := range []string{traffic.One, traffic.Quorum, traffic.All} {
		for i := range n {
			cl := redis.NewClient(&redis.Options{
				Addr: c.ips[i] + ":" + clientPort, DialTimeout: time.Second, MaxRetries: -1,
				ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, PoolSize: 8,
				OnConnect: func(ctx context.Context, cn *redis.Conn) error {
					return cn.Do(ctx, "RINGKV.CONSISTENCY", lvl).Err()
				},
			})
			t.Cleanup(func() { cl.Close() })
			c.clients[lvl] = append(c.clients[lvl], cl)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := c.WaitHealthy(wctx); err != nil {
		t.Fatalf("chaos: cluster never formed: %v", err)
	}
	return c
}

func (c *dockerCluster) name(i int) string { return fmt.Sprintf("%s-n%d", c.prefix, i+1) }

func (c *dockerCluster) Nodes() int { return len(c.ips) }

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
	return c.iptables(ctx, at, "-A", "INPUT", "-s", c.ips[from], "-j", "DROP")
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
	for a := range c.ips {
		for b := range c.ips {
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
	for i := range c.ips {
		if !c.useIPT {
			_, err := docker(ctx, "network", "connect", "--ip", c.ips[i], c.prefix, c.name(i))
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.ips[i]+":"+httpPort+"/debug/clock-offset?d="+d.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("clock offset on n%d: %s: %s", i+1, resp.Status, body)
	}
	return nil
}

func (c *dockerCluster) Put(ctx context.Context, node int, key, value string, ttl time.Duration, level string) error {
	return c.clients[level][node].Set(ctx, key, value, ttl).Err()
}

func (c *dockerCluster) Get(ctx context.Context, node int, key, level string) (string, bool, error) {
	v, err := c.clients[level][node].Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (c *dockerCluster) Del(ctx context.Context, node int, key, level string) error {
	return c.clients[level][node].Del(ctx, key).Err()
}

// Classify reads the server's error prefixes: UNAVAILABLE was not attempted;
// TIMEOUT, and any connection failure after the command may have been sent,
// may have been applied. A refused dial sent nothing.
func (c *dockerCluster) Classify(err error) traffic.Outcome {
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "UNAVAILABLE") {
		return traffic.Failed
	}
	var oerr *net.OpError
	if errors.As(err, &oerr) && oerr.Op == "dial" {
		return traffic.Failed
	}
	return traffic.Indeterminate
}

func (c *dockerCluster) Versions(ctx context.Context, key string) ([]string, error) {
	out := make([]string, len(c.ips))
	for i, ip := range c.ips {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ip+":"+httpPort+"/v1/kv/"+key+"?local=true", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.httpc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("n%d: %w", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			return nil, fmt.Errorf("n%d: local read of %s: %s", i+1, key, resp.Status)
		}
		out[i] = resp.Header.Get("X-Ringkv-Version")
	}
	return out, nil
}

// WaitHealthy waits until every node answers /readyz and lists every member
// as up in /v1/cluster.
func (c *dockerCluster) WaitHealthy(ctx context.Context) error {
	var last error
	for {
		last = nil
		for i, ip := range c.ips {
			resp, err := c.httpc.Get("http://" + ip + ":" + httpPort + "/v1/cluster")
			if err != nil {
				last = fmt.Errorf("n%d: %w", i+1, err)
				break
			}
			var view struct {
				Nodes []struct {
					ID string `json:"id"`
					Up bool   `json:"up"`
				} `json:"nodes"`
			}
			err = json.NewDecoder(resp.Body).Decode(&view)
			resp.Body.Close()
			ups := 0
			for _, nd := range view.Nodes {
				if nd.Up {
					ups++
				}
			}
			if err != nil || resp.StatusCode != http.StatusOK || ups < len(c.ips) {
				last = fmt.Errorf("n%d sees %d of %d nodes up (%s, %v)", i+1, ups, len(c.ips), resp.Status, err)
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// TestDocker runs the workloads against real binaries, one container per
// node, through every fault.
func TestDocker(t *testing.T) {
	dur := envDuration(t, 75*time.Second)
	for _, seed := range seeds(t, 1) {
		c := newDockerCluster(t, 3, seed)
		hold, calm := 5*time.Second, 4*time.Second
		if dur >= 5*time.Minute {
			hold, calm = 15*time.Second, 10*time.Second
		}
		run(t, c, runConfig{
			name: "docker", seed: seed, duration: dur, calm: calm, hold: hold,
			faults: failpoint.All(),
			traffic: traffic.Config{
				WriteOnceWorkers: 2, Registers: 4, RegisterReaders: 3, DeleteWorkers: 2,
				Pause: 20 * time.Millisecond, OpTimeout: 3 * time.Second,
			},
			convergeWithin: 20 * time.Second,
		})
	}
}
