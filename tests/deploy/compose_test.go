//go:build docker

package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/testutil"
)

// testVersion is stamped into the image the test builds, so that what the
// nodes report can only have come from the build's -ldflags.
const testVersion = "v0.0.0-composetest"

// composeCmd is how compose runs here: the Docker CLI plugin, else the
// standalone docker-compose.
func composeCmd(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Fatal("compose: neither `docker compose` nor docker-compose is installed; the compose test needs one")
	return nil
}

// cluster is one compose project brought up from deploy/compose.yaml.
type cluster struct {
	t        *testing.T
	compose  []string
	project  string
	env      []string
	password string
	client   map[string]string // node -> published RESP address
	http     map[string]string // node -> published HTTP address
}

func (c *cluster) run(ctx context.Context, args ...string) (string, error) {
	full := append(append(append([]string{}, c.compose[1:]...), "-p", c.project, "-f", filepath.Join(repoRoot, "deploy", "compose.yaml")), args...)
	cmd := exec.CommandContext(ctx, c.compose[0], full...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", strings.Join(c.compose, " "), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// published returns the host address Docker published node's container
// port on. The test leaves the host ports to Docker ("127.0.0.1::7379"),
// which picks free ones: a fixed port could clash with a demo or another
// test on this machine. A container started again may get new ones.
func (c *cluster) published(ctx context.Context, node string, containerPort int) (string, error) {
	out, err := c.run(ctx, "port", node, strconv.Itoa(containerPort))
	if err != nil {
		return "", err
	}
	// The last line: compose may warn on the lines before.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	addr := strings.TrimSpace(lines[len(lines)-1])
	if host, p, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || p == "0" {
		return "", fmt.Errorf("compose port %s %d: %q, want a port on 127.0.0.1", node, containerPort, out)
	}
	return addr, nil
}

// readPorts learns where Docker published the nodes' client and HTTP ports.
func (c *cluster) readPorts(ctx context.Context, nodes ...string) {
	c.t.Helper()
	for _, n := range nodes {
		var err error
		if c.client[n], err = c.published(ctx, n, 7379); err != nil {
			c.t.Fatal(err)
		}
		if c.http[n], err = c.published(ctx, n, 8379); err != nil {
			c.t.Fatal(err)
		}
	}
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// redisCLI runs redis-cli against node with one command per line of script
// on a single connection, so RINGKV.CONSISTENCY holds for what follows it,
// and returns one reply per command.
func (c *cluster) redisCLI(ctx context.Context, node string, script ...string) ([]string, error) {
	out, err := c.redisCLIRaw(ctx, node, strings.Join(script, "\n")+"\n")
	if err != nil {
		return nil, err
	}
	var replies []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		replies = append(replies, sc.Text())
	}
	if len(replies) != len(script) {
		return replies, fmt.Errorf("redis-cli on %s: %d replies to %d commands: %q", node, len(replies), len(script), out)
	}
	return replies, nil
}

// redisCLIRaw feeds stdin to redis-cli on node and returns what it printed.
func (c *cluster) redisCLIRaw(ctx context.Context, node, stdin string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "redis-cli", "-p", port(c.client[node]))
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+c.password)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli on %s: %w: %s", node, err, out)
	}
	return out, nil
}

// health is a container's Docker health status (its HEALTHCHECK: ringkv ready).
func (c *cluster) health(ctx context.Context, node string) (string, error) {
	id, err := c.run(ctx, "ps", "-q", node)
	if err != nil {
		return "", err
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return "", fmt.Errorf("%s has no container", node)
	}
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Health.Status}}", id).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (c *cluster) waitHealthy(ctx context.Context, nodes ...string) {
	c.t.Helper()
	testutil.EventuallyEvery(c.t, 90*time.Second, 500*time.Millisecond, func() error {
		for _, n := range nodes {
			h, err := c.health(ctx, n)
			if err != nil {
				return err
			}
			if h != "healthy" {
				return fmt.Errorf("%s is %s", n, h)
			}
		}
		return nil
	})
}

// getHTTP fetches path from node's published HTTP port as the default user.
func (c *cluster) getHTTP(ctx context.Context, node, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.http[node]+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("default", c.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// TestComposeCluster builds the image with `make image`, brings up
// deploy/compose.yaml as shipped (peer TLS, gossip key, password), writes and
// reads through redis-cli, stops one node and keeps writing and reading at
// QUORUM, starts it again and checks it caught up on what it missed, then
// tears everything down.
func TestComposeCluster(t *testing.T) {
	ctx := t.Context()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("compose: Docker is required and is not usable here: %v: %s", err, out)
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("compose: redis-cli is required (apt-get install redis-tools)")
	}
	id := strconv.Itoa(os.Getpid())
	image := "ringkv-compose-test:" + id
	c := &cluster{t: t, compose: composeCmd(t), project: "ringkv-compose-test-" + id, password: "compose-" + id,
		client: map[string]string{}, http: map[string]string{}}

	build := exec.CommandContext(ctx, "make", "-C", repoRoot, "image", "IMAGE="+image, "VERSION="+testVersion)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() }) // best effort

	secrets := filepath.Join(t.TempDir(), "secrets")
	gen := exec.CommandContext(ctx, "make", "-C", repoRoot, "compose-secrets", "COMPOSE_SECRETS="+secrets)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("make compose-secrets: %v\n%s", err, out)
	}

	c.env = append(os.Environ(), "RINGKV_IMAGE="+image, "RINGKV_SECRETS="+secrets, "RINGKV_PASSWORD="+c.password)
	nodes := []string{"n1", "n2", "n3"}
	for i := range nodes {
		// Empty: compose.yaml then publishes on a port Docker picks.
		c.env = append(c.env, fmt.Sprintf("RINGKV_N%d_PORT=", i+1), fmt.Sprintf("RINGKV_N%d_HTTP_PORT=", i+1))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			if out, err := c.run(ctx, "logs", "--tail", "30"); err == nil {
				t.Logf("compose logs:\n%s", out)
			}
		}
		if out, err := c.run(ctx, "down", "-v", "--timeout", "40"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	if _, err := c.run(ctx, "up", "-d"); err != nil {
		t.Fatal(err)
	}
	c.readPorts(ctx, nodes...)
	c.waitHealthy(ctx, nodes...)

	// Every node reports the version the build stamped, as the binary's own
	// `ringkv version` does.
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", image, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("ringkv version in the image: %v", err)
	}
	var bin struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
		Date    string `json:"date"`
	}
	if err := json.Unmarshal(out, &bin); err != nil || bin.Version != testVersion || bin.Commit == "unknown" || bin.Date == "unknown" {
		t.Fatalf("ringkv version -o json = %s (%v), want version %s with a commit and a date", out, err, testVersion)
	}
	for _, n := range nodes {
		info, err := c.redisCLIRaw(ctx, n, "INFO server\n")
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range []string{"ringkv_version:" + bin.Version, "ringkv_commit:" + bin.Commit, "ringkv_build_date:" + bin.Date} {
			if !strings.Contains(string(info), kv+"\r\n") {
				t.Fatalf("%s: INFO server lacks %s:\n%s", n, kv, info)
			}
		}
		code, body, err := c.getHTTP(ctx, n, "/v1/cluster")
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s: /v1/cluster: %d %v %s", n, code, err, body)
		}
		var st struct {
			Version   string `json:"version"`
			Commit    string `json:"commit"`
			BuildDate string `json:"build_date"`
			Nodes     []struct {
				ID string `json:"id"`
				Up bool   `json:"up"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal(body, &st); err != nil || st.Version != bin.Version || st.Commit != bin.Commit || st.BuildDate != bin.Date || len(st.Nodes) != 3 {
			t.Fatalf("%s: /v1/cluster = %+v (%v), want %+v and 3 nodes", n, st, err, bin)
		}
		code, body, err = c.getHTTP(ctx, n, "/metrics")
		wantMetric := fmt.Sprintf(`ringkv_build_info{commit=%q,date=%q,`, bin.Commit, bin.Date)
		if err != nil || code != http.StatusOK || !strings.Contains(string(body), wantMetric) ||
			!strings.Contains(string(body), `version="`+bin.Version+`"} 1`) {
			t.Fatalf("%s: /metrics has no %s...version=%q} 1: %d %v", n, wantMetric, bin.Version, code, err)
		}
	}

	// The client port refuses a client without the password.
	if out, _ := exec.CommandContext(ctx, "redis-cli", "-p", port(c.client["n1"]), "GET", "x").CombinedOutput(); !strings.Contains(string(out), "NOAUTH") {
		t.Fatalf("GET without the password answered %q", out)
	}

	const keys = 50
	write := func(node, prefix, val string) {
		t.Helper()
		script := []string{"RINGKV.CONSISTENCY QUORUM"}
		for i := range keys {
			script = append(script, fmt.Sprintf("SET %s%d %s%d", prefix, i, val, i))
		}
		replies, err := c.redisCLI(ctx, node, script...)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range replies {
			if r != "OK" {
				t.Fatalf("%s: %q answered %q", node, script[i], r)
			}
		}
	}
	read := func(node, prefix, val string) {
		t.Helper()
		script := []string{"RINGKV.CONSISTENCY QUORUM"}
		for i := range keys {
			script = append(script, fmt.Sprintf("GET %s%d", prefix, i))
		}
		replies, err := c.redisCLI(ctx, node, script...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range keys {
			if want := fmt.Sprintf("%s%d", val, i); replies[i+1] != want {
				t.Fatalf("%s: GET %s%d = %q, want %q", node, prefix, i, replies[i+1], want)
			}
		}
	}
	write("n1", "before:", "v")
	read("n2", "before:", "v")
	read("n3", "before:", "v")

	// One node down: QUORUM (2 of 3) still writes and reads, through both
	// survivors.
	if _, err := c.run(ctx, "stop", "--timeout", "40", "n3"); err != nil {
		t.Fatal(err)
	}
	write("n1", "during:", "d")
	write("n2", "before:", "w") // overwrites n3 missed
	read("n2", "during:", "d")
	read("n1", "before:", "w")

	if _, err := c.run(ctx, "start", "n3"); err != nil {
		t.Fatal(err)
	}
	c.readPorts(ctx, "n3")
	c.waitHealthy(ctx, "n3")
	// Caught up: n3's own copy (?local=true reads only its store) holds every
	// write it missed, delivered by hints or anti-entropy.
	testutil.EventuallyEvery(t, 90*time.Second, 500*time.Millisecond, func() error {
		for i := range keys {
			for _, kv := range [][2]string{{"during:", "d"}, {"before:", "w"}} {
				code, body, err := c.getHTTP(ctx, "n3", fmt.Sprintf("/v1/kv/%s%d?local=true", kv[0], i))
				if err != nil {
					return err
				}
				if want := fmt.Sprintf("%s%d", kv[1], i); code != http.StatusOK || string(body) != want {
					return fmt.Errorf("n3's own copy of %s%d: %d %q, want %q", kv[0], i, code, body, want)
				}
			}
		}
		return nil
	})
	read("n3", "during:", "d")
}
