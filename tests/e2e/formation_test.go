package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testproc"
	"github.com/ringkv/ringkv/internal/testutil"
)

// readyz returns a node's /readyz status code and body.
func readyz(t testing.TB, n *node) (int, string) {
	t.Helper()
	resp, err := httpc.Get("http://" + n.HTTP + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitNotReady waits until n's /readyz answers 503 with a body holding every
// one of want.
func waitNotReady(t testing.TB, n *node, want ...string) string {
	t.Helper()
	var body string
	testutil.Eventually(t, 30*time.Second, func() error {
		var code int
		code, body = readyz(t, n)
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("%s /readyz: %d %s", n.ID, code, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("%s /readyz body %q lacks %q", n.ID, body, w)
			}
		}
		return nil
	})
	return body
}

// metrics returns a node's /metrics text.
func metrics(t testing.TB, n *node) string {
	t.Helper()
	resp, err := httpc.Get("http://" + n.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// formationNodes prepares n nodes that name each other in --initial-cluster
// (testproc: in the order they start, each names the members still to start
// at addresses that do not answer yet).
func formationNodes(t *testing.T, n int, extra ...string) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("n%d", i+1), extra...)
	}
	for _, nd := range nodes {
		nd.InitialCluster = procs(nodes)
	}
	return nodes
}

// Three nodes formed from scratch with --initial-cluster come up as a whole:
// while one is missing the others are not ready and refuse clients; once
// every /readyz is 200, killing any one node at once leaves every QUORUM
// write and read through the other two succeeding, and no node streamed.
//
// On the main branch before --initial-cluster (nodes started with --join),
// the later nodes were still joining and streaming here, and the writes
// failed with "got 1 of 3 acks".
func TestFormationInitialClusterSurvivesKill(t *testing.T) {
	nodes := formationNodes(t, 3)
	nodes[0].StartNoWait()
	nodes[1].StartNoWait()
	body := waitNotReady(t, nodes[0], "forming", "waiting for n3")
	t.Logf("n1 without n3: /readyz %q", strings.TrimSpace(body))
	err := nodes[0].redis().Set(t.Context(), "early", "v", 0).Err()
	if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") || !strings.Contains(err.Error(), "forming") {
		t.Fatalf("SET while forming: %v, want UNAVAILABLE ... forming", err)
	}
	if m := metrics(t, nodes[0]); !strings.Contains(m, `ringkv_node_not_ready{reason="forming"} 1`) {
		t.Errorf("n1 metrics lack the forming reason")
	}

	nodes[2].StartNoWait()
	for _, n := range nodes {
		n.WaitReady()
	}
	victim := rand.IntN(len(nodes))
	nodes[victim].Kill()
	t.Logf("every node ready; killed %s", nodes[victim].ID)

	var live []*node
	for i, n := range nodes {
		if i != victim {
			live = append(live, n)
		}
	}
	const keys = 500
	for i := range keys {
		c := live[i%2].redis(withLevel("QUORUM"))
		k, v := fmt.Sprintf("f%d", i), fmt.Sprintf("v%d", i)
		if err := c.Set(t.Context(), k, v, 0).Err(); err != nil {
			t.Fatalf("QUORUM SET %s through %s, %s killed: %v", k, live[i%2].ID, nodes[victim].ID, err)
		}
	}
	for i := range keys {
		c := live[(i+1)%2].redis(withLevel("QUORUM"))
		k := fmt.Sprintf("f%d", i)
		if got, err := c.Get(t.Context(), k).Result(); err != nil || got != fmt.Sprintf("v%d", i) {
			t.Fatalf("QUORUM GET %s through %s: %q, %v", k, live[(i+1)%2].ID, got, err)
		}
	}
	for _, n := range live {
		if b := streamedBytes(t, n); b != 0 {
			t.Errorf("%s streamed %d bytes while the cluster formed; want none", n.ID, b)
		}
		if !strings.Contains(n.Log(), "cluster formed") {
			t.Errorf("%s never logged that the cluster formed", n.ID)
		}
	}
}

// A node restarted with its data ignores --initial-cluster's waiting: it is a
// member, and comes back ready with one of the others still down.
func TestFormationRestartWithDataDoesNotWait(t *testing.T) {
	nodes := formationNodes(t, 3)
	testproc.StartAll(procs(nodes))
	if err := nodes[0].redis().Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	nodes[2].Kill()
	if err := nodes[1].Stop(); err != nil {
		t.Fatal(err)
	}
	nodes[1].Start() // waits for /readyz 200 with n3 still down
	if got, err := nodes[1].redis().Get(t.Context(), "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET after restart: %q, %v", got, err)
	}
}

// A node whose --join address never answers is not ready and says why, in
// /readyz, `ringkv status` and a metric; it retries with backoff, logging
// each attempt, fewer than one a second.
func TestReadyzJoinNeverAnswers(t *testing.T) {
	n := newNode(t, "lonely")
	n.Join = []string{testproc.Unanswered(t)}
	n.StartNoWait()
	body := waitNotReady(t, n, "joining", "no seed answered")
	t.Logf("/readyz: %q", strings.TrimSpace(body))
	if m := metrics(t, n); !strings.Contains(m, `ringkv_node_not_ready{reason="joining"} 1`) || !strings.Contains(m, "ringkv_node_ready 0") {
		t.Errorf("metrics lack ringkv_node_ready 0 and the joining reason")
	}
	out, err := operatorCommand(context.Background(), "status", "--addr", n.HTTP).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "readiness: joining") {
		t.Errorf("ringkv status: %v\n%s", err, out)
	}

	const window = 10 * time.Second
	before := strings.Count(n.Log(), "no seed answered")
	time.Sleep(window)
	logged := n.Log()
	attempts := strings.Count(logged, "no seed answered") - before
	t.Logf("%d join attempts logged in %s", attempts, window)
	if attempts >= int(window/time.Second) {
		t.Errorf("%d join attempts logged in %s: want fewer than one a second", attempts, window)
	}
	if !strings.Contains(logged, "next_in=") {
		t.Errorf("the join attempts do not log the next delay")
	}
}

// A decommissioned node ends removed: /readyz says so with 503, and it
// refuses client requests over RESP and HTTP instead of accepting them.
func TestReadyzRemovedNodeRefusesClients(t *testing.T) {
	nodes := startCluster(t, 3, "--in-memory")
	waitRing(t, 30*time.Second, nodes, "n1", "n2", "n3")
	out, err := operatorCommand(context.Background(), "decommission", "--addr", nodes[2].HTTP, "--timeout", "60s").CombinedOutput()
	if err != nil {
		t.Fatalf("decommission: %v: %s", err, out)
	}
	waitRing(t, 30*time.Second, nodes[:2], "n1", "n2")
	gone := nodes[2]
	body := waitNotReady(t, gone, "removed")
	t.Logf("/readyz of the removed node: %q", strings.TrimSpace(body))

	err = gone.redis().Set(t.Context(), "k", "v", 0).Err()
	if err == nil || !strings.Contains(err.Error(), "removed from the cluster") {
		t.Fatalf("SET on the removed node: %v, want an error saying it was removed", err)
	}
	if _, err := gone.redis().Get(t.Context(), "k").Result(); err == nil || errors.Is(err, redis.Nil) {
		t.Fatalf("GET on the removed node: %v, want an error", err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, "http://"+gone.HTTP+"/v1/kv/k", strings.NewReader("v"))
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "removed from the cluster") {
		t.Fatalf("HTTP PUT on the removed node: %s %s", resp.Status, b)
	}
	if m := metrics(t, gone); !strings.Contains(m, `ringkv_node_not_ready{reason="removed"} 1`) {
		t.Errorf("metrics lack the removed reason")
	}
	// The members still serve, and never saw the refused write.
	if _, err := nodes[0].redis().Get(t.Context(), "k").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k on n1: %v, want nil (the refused SET must not exist)", err)
	}
}
