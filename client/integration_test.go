package client

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/testproc"
	"github.com/ringkv/ringkv/internal/testutil"
)

// respCommands reads a node's count of RESP commands named cmd from /metrics.
func respCommands(t *testing.T, httpAddr, cmd string) int {
	t.Helper()
	return testproc.RESPCommands(t, http.DefaultClient, "http://"+httpAddr+"/metrics", cmd)
}

func TestClusterRequestsGoToThePrimary(t *testing.T) {
	c := newTestClient(t, shared.seeds(), nil)
	topo := c.topo.Load()
	for i := range 12 {
		key := fmt.Sprintf("route-%d", i)
		before := map[string]int{}
		for _, n := range shared.Running() {
			before[n.ID] = respCommands(t, n.Addrs().HTTP, "get")
		}
		if _, err := c.Get(t.Context(), key); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		primary := topo.replicas(key)[0]
		for _, n := range shared.Running() {
			id := n.ID
			got := respCommands(t, n.Addrs().HTTP, "get") - before[id]
			want := 0
			if id == primary {
				want = 1
			}
			if got != want {
				t.Errorf("key %s: node %s served %d GETs, want %d (primary %s)", key, id, got, want, primary)
			}
		}
	}
}

func TestClusterMSetMGetScan(t *testing.T) {
	c := newTestClient(t, shared.seeds(), nil)
	ctx := t.Context()
	const n = 500
	var kvs []KV
	var keys []string
	for i := range n {
		k := fmt.Sprintf("bulk:%04d", i)
		kvs = append(kvs, KV{Key: k, Value: []byte("v" + strconv.Itoa(i))})
		keys = append(keys, k)
	}
	if err := c.MSet(ctx, kvs); err != nil {
		t.Fatal(err)
	}
	vals, err := c.MGet(ctx, append(keys, "bulk:missing"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if want := "v" + strconv.Itoa(i); string(vals[i]) != want {
			t.Fatalf("MGET %s = %q, want %q", keys[i], vals[i], want)
		}
	}
	if vals[n] != nil {
		t.Errorf("MGET of a missing key = %q, want nil", vals[n])
	}
	var scanned []string
	for k, err := range c.Scan(ctx, Match("bulk:*"), Count(37)) {
		if err != nil {
			t.Fatal(err)
		}
		scanned = append(scanned, k)
	}
	slices.Sort(scanned)
	if !slices.Equal(scanned, keys) {
		t.Fatalf("SCAN found %d keys (duplicates or gaps), want exactly the %d written", len(scanned), n)
	}
	// Breaking out of the loop stops the iteration.
	seen := 0
	for _, err := range c.Scan(ctx, Match("bulk:*"), Count(10)) {
		if err != nil {
			t.Fatal(err)
		}
		seen++
		if seen == 3 {
			break
		}
	}
	if seen != 3 {
		t.Errorf("saw %d keys, want 3", seen)
	}
}

func TestClusterExpireAndTTL(t *testing.T) {
	c := newTestClient(t, shared.seeds(), nil)
	ctx := t.Context()
	if err := c.Set(ctx, "ttl:k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if ttl, err := c.TTL(ctx, "ttl:k"); err != nil || ttl != NoTTL {
		t.Fatalf("TTL = %v, %v; want NoTTL", ttl, err)
	}
	if ok, err := c.Expire(ctx, "ttl:k", time.Minute); err != nil || !ok {
		t.Fatalf("Expire = %v, %v", ok, err)
	}
	if ttl, err := c.TTL(ctx, "ttl:k"); err != nil || ttl <= 50*time.Second || ttl > time.Minute {
		t.Fatalf("TTL = %v, %v; want about a minute", ttl, err)
	}
	if ok, err := c.Expire(ctx, "ttl:absent", time.Minute); err != nil || ok {
		t.Fatalf("Expire of an absent key = %v, %v; want false", ok, err)
	}
	if err := c.Set(ctx, "ttl:short", []byte("v"), WithTTL(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := c.Get(ctx, "ttl:short")
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("Get after the TTL: %v", err)
		}
		return nil
	})
	if existed, err := c.Delete(ctx, "ttl:k"); err != nil || !existed {
		t.Fatalf("Delete = %v, %v", existed, err)
	}
	if _, err := c.TTL(ctx, "ttl:k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TTL after Delete: %v, want ErrNotFound", err)
	}
	if err := c.Set(ctx, "ttl:k", []byte("v2"), XX()); !errors.Is(err, ErrNotSet) {
		t.Fatalf("Set XX of a deleted key: %v, want ErrNotSet", err)
	}
}

// TestClusterNodeFailures runs on its own cluster: it kills a node, checks
// that reads move to the next replica and writes never go twice, then kills
// a second one and checks that the server's UNAVAILABLE maps to
// ErrUnavailable.
func TestClusterNodeFailures(t *testing.T) {
	cl := newTestCluster(t, 3, 3)
	c := newTestClient(t, cl.seeds(), func(cfg *Config) { cfg.RefreshInterval = time.Hour })
	ctx := t.Context()
	var keys []string
	for i := range 50 {
		k := fmt.Sprintf("fail:%d", i)
		if err := c.Set(ctx, k, []byte(k), WithConsistency(All)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	topo := c.topo.Load()
	cl.kill("n1")
	// Let the servers' failure detector see it: until then a coordinator
	// still counts n1 among the replicas it asks (a server matter, apart
	// from the client's retries tested here).
	if err := cl.WaitNormal(2, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// Reads whose primary is gone go to the next replica (the client's
	// topology still lists n1 up: it refreshes only hourly here).
	moved := 0
	for _, k := range keys {
		v, err := c.Get(ctx, k)
		if err != nil || string(v) != k {
			t.Fatalf("Get %s after killing n1 = %q, %v", k, v, err)
		}
		if topo.replicas(k)[0] == "n1" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no key had n1 as its primary; the test proved nothing")
	}

	// A write to a key whose primary is dead: a fresh client cannot connect
	// to n1, so the write provably was not sent and goes to the next
	// replica, once.
	c2 := newTestClient(t, cl.seeds(), nil)
	k := keyWithPrimary(t, c2, "n1")
	sets := func() int {
		n := 0
		for _, nd := range cl.Running() {
			n += respCommands(t, nd.Addrs().HTTP, "set")
		}
		return n
	}
	before := sets()
	if err := c2.Set(ctx, k, []byte("after")); err != nil {
		t.Fatalf("Set with a dead primary: %v", err)
	}
	if got := sets() - before; got != 1 {
		t.Errorf("the live nodes served %d SETs, want 1", got)
	}

	// With two of three replicas gone, QUORUM cannot be met: the nodes
	// answer UNAVAILABLE once they see n2 down, and nothing is written.
	cl.kill("n2")
	testutil.Eventually(t, 30*time.Second, func() error {
		err := c.Set(ctx, "fail:quorum", []byte("x"))
		if !errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("Set at QUORUM with 1 of 3 replicas: %v, want ErrUnavailable", err)
		}
		var se *ServerError
		if !errors.As(err, &se) || se.Prefix != "UNAVAILABLE" || se.Node != "n3" {
			return fmt.Errorf("want the UNAVAILABLE reply of n3, got %v", err)
		}
		return nil
	})
	if v, err := c.Get(ctx, "fail:0", WithConsistency(One)); err != nil || string(v) != "fail:0" {
		t.Fatalf("Get at ONE with one replica left = %q, %v", v, err)
	}
}

// TestClusterNearCacheStalenessBound has one client write a counter while
// another reads it through a near cache: every read must return a value that
// was current at some moment no earlier than TTL before the read began. A
// value stops being current when the write that replaces it is
// acknowledged: until then a QUORUM read may still return it, and the near
// cache promises only that its fill read began at most TTL earlier. (Timed
// from when the replacing write began, the bound was off by up to a write's
// latency, and CI on two loaded cores once saw 150.09 ms against 150.)
func TestClusterNearCacheStalenessBound(t *testing.T) {
	const ttl = 150 * time.Millisecond
	writer := newTestClient(t, shared.seeds(), nil)
	reader := newTestClient(t, shared.seeds(), func(cfg *Config) {
		cfg.NearCache = NearCache{Size: 100, TTL: ttl}
	})
	ctx := t.Context()
	const key = "nearcache:counter"
	// superseded[i] is when value i stopped being current: when the write
	// of i+1 was acknowledged.
	var mu sync.Mutex
	var superseded []time.Time
	if err := writer.Set(ctx, key, []byte("0")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := writer.Set(ctx, key, []byte(strconv.Itoa(i))); err != nil {
				done <- err
				return
			}
			mu.Lock()
			superseded = append(superseded, time.Now())
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	reads, stale := 0, 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		start := time.Now()
		v, err := reader.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(string(v))
		mu.Lock()
		var gone time.Time
		if n < len(superseded) {
			gone = superseded[n]
		}
		mu.Unlock()
		reads++
		if !gone.IsZero() && gone.Before(start) {
			stale++
			if age := start.Sub(gone); age > ttl {
				t.Fatalf("read at %v returned %d, superseded %v earlier: staler than the %v bound", start, n, age, ttl)
			}
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stale == 0 {
		t.Errorf("none of %d reads was served stale: the cache was not used", reads)
	}
	t.Logf("%d reads, %d served a superseded value, all within %v", reads, stale, ttl)

	// The reader's own write is visible to its next read at once.
	if err := reader.Set(ctx, key, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if v, err := reader.Get(ctx, key); err != nil || string(v) != "mine" {
		t.Fatalf("read after own write = %q, %v", v, err)
	}
}
