package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

// FLUSHALL on real processes: refused while a node is down; once all are
// up it empties every node, a restarted node does not bring its data back,
// and writes made after it stay.
func TestFlushAll(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := t.Context()
	c1 := nodes[0].redis()
	writeMany(t, c1, "f", 500)
	if err := c1.Incr(ctx, "ctr").Err(); err != nil {
		t.Fatal(err)
	}

	nodes[2].Kill()
	waitDown(t, nodes[0], "n3")
	if err := c1.FlushAll(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "UNAVAILABLE") || !strings.Contains(err.Error(), "n3") {
		t.Fatalf("FLUSHALL with n3 down: %v, want UNAVAILABLE naming n3", err)
	}
	if v, err := c1.Get(ctx, "f7").Result(); err != nil || v != "v7" {
		t.Fatalf("a refused FLUSHALL removed data: %q %v", v, err)
	}
	// Written while n3 is down: n1 and n2 keep hints for it.
	writeMany(t, c1, "h", 100)
	nodes[2].Start()
	for _, n := range nodes {
		waitUp(t, n, 3)
	}

	c2 := nodes[1].redis()
	if err := c2.Do(ctx, "FLUSHALL", "bogus").Err(); err == nil || err.Error() != "ERR syntax error" {
		t.Fatalf("FLUSHALL bogus: %v", err)
	}
	if err := c2.Do(ctx, "FLUSHDB", "ASYNC").Err(); err != nil {
		t.Fatalf("FLUSHDB ASYNC: %v", err)
	}
	if err := c2.Do(ctx, "FLUSHALL", "SYNC").Err(); err != nil {
		t.Fatalf("FLUSHALL SYNC: %v", err)
	}
	for _, n := range nodes {
		c := n.redis(withLevel("ALL"))
		for _, k := range []string{"f1", "f499", "h5", "ctr"} {
			if err := c.Get(ctx, k).Err(); !errors.Is(err, redis.Nil) {
				t.Fatalf("%s through %s after FLUSHALL: %v", k, n.ID, err)
			}
		}
	}
	// Every node's own replica ends empty: hints, anti-entropy and the
	// restart below bring nothing back.
	testutil.Eventually(t, 20*time.Second, func() error {
		for _, n := range nodes {
			for _, k := range []string{"f3", "h3"} {
				if v, ok := localValue(t, n, k); ok {
					return fmt.Errorf("%s's replica holds %s = %q", n.ID, k, v)
				}
			}
			if size, err := n.redis().DBSize(ctx).Result(); err != nil || size != 0 {
				return fmt.Errorf("DBSIZE through %s = %d, %v", n.ID, size, err)
			}
		}
		return nil
	})
	nodes[1].Kill()
	nodes[1].Start()
	for _, n := range nodes {
		waitUp(t, n, 3)
	}
	if _, ok := localValue(t, nodes[1], "f9"); ok {
		t.Fatal("n2 holds flushed data after a restart")
	}

	// Writes after FLUSHALL, through every node, stay.
	for i, n := range nodes {
		if err := n.redis().Set(ctx, fmt.Sprint("after", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := nodes[0].redis().Incr(ctx, "ctr").Result(); err != nil || v != 1 {
		t.Fatalf("INCR after FLUSHALL: %d %v", v, err)
	}
	all := nodes[2].redis(withLevel("ALL"))
	for i := range nodes {
		if v, err := all.Get(ctx, fmt.Sprint("after", i)).Result(); err != nil || v != "v" {
			t.Fatalf("after%d: %q %v", i, v, err)
		}
	}
}
