package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

// setClockOffset moves a node's wall clock through the debug endpoint.
func setClockOffset(t *testing.T, n *node, d time.Duration) {
	t.Helper()
	resp, err := httpc.Post("http://"+n.HTTP+"/debug/clock-offset?d="+d.String(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("setting %s's clock offset to %v: %s %s", n.ID, d, resp.Status, body)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Issue 29 case 2 on real processes: one node's clock an hour ahead. Its
// writes are never acknowledged, it refuses them with a clear error once it
// has measured its peers' clocks, and says why in /readyz, `ringkv status`
// and its metrics. A SET through a healthy node is then what a
// QUORUM GET through every node returns (it used to return the fast node's
// value: read repair copied it into the healthy replicas). With its clock
// back, the node takes writes again.
func TestClockFarAheadHidesNoWrite(t *testing.T) {
	nodes := startCluster(t, 3, "--debug-endpoints")
	n1, n2 := nodes[0], nodes[1]
	ctx := t.Context()
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = n.redis(withLevel("QUORUM"))
	}
	// Several keys, so that the QUORUM reads below ask n1 for some of them
	// whatever the replicas' order on the ring.
	keys := make([]string, 12)
	for j := range keys {
		keys[j] = fmt.Sprintf("k%d", j)
		if err := clients[1].Set(ctx, keys[j], "v0", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	setClockOffset(t, n1, time.Hour)
	// At once: not acknowledged. n1 refuses them itself, its clock having
	// stepped since its last round found it right; on main the peers
	// refused them and n1's own replica kept them, for the reads below to
	// find.
	for _, k := range keys {
		if err := clients[0].Set(ctx, k, "future-0", 0).Err(); err == nil {
			t.Fatalf("SET %s through n1 with its clock an hour ahead was acknowledged", k)
		}
	}
	// QUORUM reads through the healthy nodes used to copy n1's future value
	// into their own replicas by read repair, and return it.
	for _, k := range keys {
		for j, c := range clients[1:] {
			if v, err := c.Get(ctx, k).Result(); err != nil || v != "v0" {
				t.Fatalf("QUORUM GET %s through %s = %q %v, want v0", k, nodes[j+1].ID, v, err)
			}
		}
	}
	for _, k := range keys {
		if err := clients[1].Set(ctx, k, "v2", 0).Err(); err != nil {
			t.Fatalf("SET %s through healthy n2: %v", k, err)
		}
		for j, c := range clients[1:] {
			if v, err := c.Get(ctx, k).Result(); err != nil || v != "v2" {
				t.Fatalf("QUORUM GET %s through %s = %q %v, want v2", k, nodes[j+1].ID, v, err)
			}
		}
	}

	// Once n1 has measured its peers' clocks it refuses writes for its
	// clock; none is acknowledged meanwhile.
	i := 0
	testutil.Eventually(t, 30*time.Second, func() error {
		i++
		err := clients[0].Set(ctx, "k", fmt.Sprintf("future-%d", i), 0).Err()
		if err == nil {
			t.Fatalf("SET through n1 with its clock an hour ahead was acknowledged (try %d)", i)
		}
		if !strings.Contains(err.Error(), "clock skew") || !strings.Contains(err.Error(), "ahead of its peers") {
			return fmt.Errorf("SET through n1: %v", err)
		}
		return nil
	})
	// Every node, n1 included, reads the healthy write: n1 measures
	// versions against its peers' time, not its own clock.
	one := n1.redis(withLevel("ONE"))
	for _, k := range keys {
		for j, c := range clients {
			if v, err := c.Get(ctx, k).Result(); err != nil || v != "v2" {
				t.Fatalf("QUORUM GET %s through %s = %q %v, want v2", k, nodes[j].ID, v, err)
			}
		}
		if v, err := one.Get(ctx, k).Result(); err != nil || v != "v2" {
			t.Fatalf("ONE GET %s through n1 = %q %v, want v2", k, v, err)
		}
	}

	code, body := httpGet(t, "http://"+n1.HTTP+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "clock skew") {
		t.Fatalf("n1 /readyz = %d %s, want 503 naming the clock", code, body)
	}
	if code, body := httpGet(t, "http://"+n2.HTTP+"/readyz"); code != http.StatusOK {
		t.Fatalf("healthy n2 /readyz = %d %s", code, body)
	}
	_, metrics := httpGet(t, "http://"+n1.HTTP+"/metrics")
	for _, want := range []string{"ringkv_clock_skewed 1", `ringkv_clock_offset_seconds{peer="n2"} 3599.`, `ringkv_clock_offset_seconds{peer="n3"} 3599.`} {
		if !strings.Contains(metrics, want) && !strings.Contains(metrics, strings.Replace(want, "3599.", "3600", 1)) {
			t.Errorf("n1 metrics lack %s", want)
		}
	}
	out, err := operatorCommand(ctx, "status", "--addr", n1.HTTP).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SKEWED") || !strings.Contains(string(out), "not accepting writes") {
		t.Fatalf("ringkv status of n1: %v\n%s", err, out)
	}

	setClockOffset(t, n1, 0)
	testutil.Eventually(t, 30*time.Second, func() error {
		return clients[0].Set(ctx, "k", "v3", 0).Err()
	})
	for j, c := range clients {
		if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v3" {
			t.Fatalf("QUORUM GET through %s after n1's clock came back = %q %v, want v3", nodes[j].ID, v, err)
		}
	}
	// What n1 stamped while an hour ahead stays out of every answer.
	for _, k := range keys {
		for j, c := range clients {
			if v, err := c.Get(ctx, k).Result(); err != nil || v != "v2" {
				t.Fatalf("QUORUM GET %s through %s after n1's clock came back = %q %v, want v2", k, nodes[j].ID, v, err)
			}
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if code, body := httpGet(t, "http://"+n1.HTTP+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("n1 /readyz = %d %s", code, body)
		}
		return nil
	})
	_, metrics = httpGet(t, "http://"+n1.HTTP+"/metrics")
	if !strings.Contains(metrics, "ringkv_clock_skewed 0") {
		t.Error("n1's ringkv_clock_skewed is not back to 0")
	}
}
