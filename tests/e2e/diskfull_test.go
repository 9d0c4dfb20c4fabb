package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testproc"
	"github.com/ringkv/ringkv/internal/testutil"
)

// Issue 29 case 3: a node whose data disk fills refuses writes with a clear
// error and keeps serving reads; /readyz and a metric say so; SIGTERM stops
// it; restarted on the full disk it serves reads; once space is freed it
// takes writes again by itself. On a real 40 MiB tmpfs, once per engine.
func TestDiskFullRefusesWritesKeepsReads(t *testing.T) {
	for _, engine := range engines(t) {
		name := engine
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) { testDiskFull(t, engine) })
	}
}

func testDiskFull(t *testing.T, engine string) {
	t.Helper()
	disk := mountTmpfs(t, 40<<20)
	n := newNode(t, "n1", append(engineArgs(engine), "--replicas", "1")...)
	n.DataDir = filepath.Join(disk, "data")
	n.Start()
	c := n.redis()
	ctx := t.Context()
	for i := range 20 {
		if err := c.Set(ctx, fmt.Sprintf("before%d", i), fmt.Sprintf("v%d", i), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Another process takes all but 6 MiB; the node's own writes take the rest.
	filler := filepath.Join(disk, "filler")
	fill(t, filler, freeBytes(t, disk)-6<<20)
	// The node reads free space at most 50 ms late while writes come in; a
	// burst in that window is what the reserve absorbs. Here the writes wait
	// for the reading, so they test the reserve, not the window.
	testutil.Eventually(t, 30*time.Second, func() error {
		if v, err := metricValue(n, "ringkv_disk_free_bytes"); err != nil || v > 7<<20 {
			return fmt.Errorf("ringkv_disk_free_bytes = %v, %v after the fill", v, err)
		}
		return nil
	})
	value := strings.Repeat("x", 100<<10)
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		full = c.Set(ctx, fmt.Sprintf("fill%d", i), value, 0).Err()
	}
	if full == nil {
		t.Fatal("1000 writes of 100 KiB on a 40 MiB disk were all accepted")
	}
	// Refused before it could reach the reserve, with the reason.
	if !strings.HasPrefix(full.Error(), "ERR disk full: "+n.DataDir+" has ") || !strings.Contains(full.Error(), "reserve") {
		t.Fatalf("a write that would go into the reserve got %q, want ERR disk full naming the directory", full)
	}
	// The other process takes what is left: below the reserve, the disk is full.
	fill(t, filler, freeBytes(t, disk)-(1<<20))
	testutil.Eventually(t, 30*time.Second, func() error {
		if code, _, err := nodeReadyz(n); err != nil || code != 503 {
			return fmt.Errorf("readyz %d %v with 1 MiB free", code, err)
		}
		return nil
	})
	checkFullNode(t, n, c)

	// Deletes take log space too: refused alike (docs/operations.md).
	if err := c.Del(ctx, "before0").Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("DEL on a full disk: %v, want disk full", err)
	}

	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM on a full disk: %v", err)
	}
	// Restarted on the full disk: the client port opens and serves reads.
	n.StartNoWait()
	c = n.redis()
	testutil.Eventually(t, 60*time.Second, func() error {
		v, err := c.Get(ctx, "before1").Result()
		if err == nil && v != "v1" {
			t.Fatalf("after a restart on a full disk before1 = %q", v)
		}
		return err
	})
	// The engine may free space as it opens (a log it no longer needs): if
	// so the other process takes it, and the node must turn full again.
	fill(t, filler, freeBytes(t, disk)-(1<<20))
	testutil.Eventually(t, 30*time.Second, func() error {
		if code, _, err := nodeReadyz(n); err != nil || code != 503 {
			return fmt.Errorf("readyz %d %v with 1 MiB free", code, err)
		}
		return nil
	})
	checkFullNode(t, n, c)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error { return c.Set(ctx, "after", "ok", 0).Err() })
	if code, body, err := nodeReadyz(n); err != nil || code != 200 {
		t.Fatalf("readyz after space was freed: %d %q %v", code, body, err)
	}
	if v, err := metricValue(n, "ringkv_disk_full"); err != nil || v != 0 {
		t.Fatalf("ringkv_disk_full after space was freed = %v, %v", v, err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(n.Log(), "disk full: refusing writes"); c > 2 {
		t.Errorf("the full state was logged %d times; want once per transition", c)
	}
}

// checkFullNode checks what a node on a full disk must show: reads served,
// writes refused, /readyz 503 naming the disk, the metric at 1, an alarm in
// the cluster status.
func checkFullNode(t *testing.T, n *node, c *redis.Client) {
	t.Helper()
	ctx := t.Context()
	for i := range 20 {
		k := fmt.Sprintf("before%d", i)
		v, err := c.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) && i == 0 {
			continue // deleted before the restart, if DEL was let through
		}
		if err != nil || v != fmt.Sprintf("v%d", i) {
			t.Fatalf("GET %s on a full disk: %q %v", k, v, err)
		}
	}
	if err := c.Set(ctx, "refused", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("SET on a full disk: %v", err)
	}
	code, body, err := nodeReadyz(n)
	if err != nil || code != 503 || !strings.Contains(body, "disk full") {
		t.Fatalf("readyz on a full disk: %d %q %v", code, body, err)
	}
	if v, err := metricValue(n, "ringkv_disk_full"); err != nil || v != 1 {
		t.Fatalf("ringkv_disk_full = %v, %v", v, err)
	}
	if v, err := metricValue(n, "ringkv_disk_free_bytes"); err != nil || v <= 0 || v > 40<<20 {
		t.Fatalf("ringkv_disk_free_bytes = %v, %v", v, err)
	}
	out, err := operatorCommand(context.Background(), "status", "--addr", n.HTTP).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ALARM on n1: disk full") {
		t.Fatalf("ringkv status on a full disk: %v\n%s", err, out)
	}
}

// A full disk on one node of three: the cluster keeps taking QUORUM writes
// and serving QUORUM reads through every node, the full one included; only
// that node reports not ready.
func TestDiskFullOneNodeClusterServes(t *testing.T) {
	disk := mountTmpfs(t, 40<<20)
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("n%d", i+1))
	}
	nodes[0].DataDir = filepath.Join(disk, "data")
	testproc.StartJoined(procs(nodes))
	for _, nd := range nodes {
		waitUp(t, nd, 3)
	}
	n1 := nodes[0]
	fill(t, filepath.Join(disk, "filler"), freeBytes(t, disk)-(1<<20))
	testutil.Eventually(t, 30*time.Second, func() error {
		if code, body, err := nodeReadyz(n1); err != nil || code != 503 || !strings.Contains(body, "disk full") {
			return fmt.Errorf("n1 readyz: %d %q %v", code, body, err)
		}
		return nil
	})
	for _, nd := range nodes {
		c := nd.redis(withLevel("QUORUM"))
		writeMany(t, c, nd.ID+"-k", 200)
		for _, other := range nodes {
			readMany(t, other.redis(withLevel("QUORUM")), nd.ID+"-k", 200)
		}
	}
	for _, nd := range nodes[1:] {
		if code, body, err := nodeReadyz(nd); err != nil || code != 200 {
			t.Fatalf("%s readyz beside a full node: %d %q %v", nd.ID, code, body, err)
		}
	}
	for _, nd := range nodes {
		if err := nd.Stop(); err != nil {
			t.Error(err)
		}
	}
}
