package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

// A single node speaks RESP2 and RESP3 to go-redis, expires keys, and keeps
// its data across a graceful restart.
func TestSingleNodeCommandsAndRestart(t *testing.T) {
	n := newNode(t, "solo")
	n.Start()
	ctx := t.Context()
	for _, proto := range []int{2, 3} {
		c := n.redis(func(o *redis.Options) { o.Protocol = proto })
		k := fmt.Sprint("k", proto)
		if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("RESP%d SET: %v", proto, err)
		}
		if v, err := c.Get(ctx, k).Result(); err != nil || v != "v" {
			t.Fatalf("RESP%d GET = %q, %v", proto, v, err)
		}
		if _, err := c.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("RESP%d GET missing: %v", proto, err)
		}
		if ttl, err := c.TTL(ctx, k).Result(); err != nil || ttl != -1 {
			t.Fatalf("RESP%d TTL no expiry = %v, %v", proto, ttl, err)
		}
	}
	c := n.redis()
	if err := c.Set(ctx, "short", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if err := c.Get(ctx, "short").Err(); !errors.Is(err, redis.Nil) {
			return fmt.Errorf("short still readable: %v", err)
		}
		return nil
	})
	if err := c.Set(ctx, "long", "kept", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n.Start()
	c = n.redis()
	if v, err := c.Get(ctx, "long").Result(); err != nil || v != "kept" {
		t.Fatalf("after restart GET long = %q, %v", v, err)
	}
	if ttl, err := c.TTL(ctx, "long").Result(); err != nil || ttl <= 59*time.Minute {
		t.Fatalf("after restart TTL long = %v, %v", ttl, err)
	}
	if v, err := c.Get(ctx, "k2").Result(); err != nil || v != "v" {
		t.Fatalf("after restart GET k2 = %q, %v", v, err)
	}
}

// A single node with one replica per key runs a pipeline's GETs and SETs as
// batches, as a clustered node does: replies keep command order, each key sees
// its own commands in order, and a GET finds what an earlier command of the
// same pipeline wrote. The pipelines hold runs of SETs, of GETs, of GETs and
// SETs of different keys mixed, and DELs and an unbatched command between.
func TestSingleNodeRF1PipelinesKeepPerKeyOrder(t *testing.T) {
	n := newNode(t, "rf1", "--replicas", "1")
	n.Start()
	ctx := t.Context()
	c := n.redis()
	const keys = 40
	type check struct {
		get  *redis.StringCmd
		want string // "" for a missing key
	}
	for round := range 4 {
		pipe := c.Pipeline()
		var checks []check
		get := func(key, want string) { checks = append(checks, check{pipe.Get(ctx, key), want}) }
		p := func(k int) string { return fmt.Sprintf("p%d", k) }
		q := func(k int) string { return fmt.Sprintf("q%d", k) }
		v := func(tag string, k int) string { return fmt.Sprintf("%s%d-%d", tag, round, k) }
		for k := range keys {
			pipe.Set(ctx, p(k), v("a", k), 0)
		}
		for k := range keys {
			get(p(k), v("a", k))
		}
		for k := range keys {
			pipe.Set(ctx, p(k), v("b", k), 0)
			if k%5 == 0 {
				pipe.Del(ctx, p(k))
			}
			if k%7 == 0 {
				pipe.Echo(ctx, "between")
			}
		}
		for k := range keys {
			want := v("b", k)
			if k%5 == 0 {
				want = ""
			}
			get(p(k), want)
			pipe.Set(ctx, q(k), v("c", k), 0)
		}
		for k := range keys {
			get(q(k), v("c", k))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("round %d: %v", round, err)
		}
		for i, ck := range checks {
			got, err := ck.get.Result()
			if ck.want == "" {
				if !errors.Is(err, redis.Nil) {
					t.Fatalf("round %d, check %d: %v = %q, %v; want nil", round, i, ck.get.Args(), got, err)
				}
				continue
			}
			if err != nil || got != ck.want {
				t.Fatalf("round %d, check %d: %v = %q, %v; want %q", round, i, ck.get.Args(), got, err, ck.want)
			}
		}
	}
}

// With --sync always, every write acknowledged before a kill -9 is there after
// the restart, on both storage engines.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	for _, engine := range []string{"memory", "pebble"} {
		t.Run(engine, func(t *testing.T) { crashKeepsAcknowledgedWrites(t, engine) })
	}
}

func crashKeepsAcknowledgedWrites(t *testing.T, engine string) {
	t.Helper()
	n := newNode(t, "crash", "--sync", "always", "--engine", engine)
	n.Start()
	c := n.redis(func(o *redis.Options) { o.PoolSize = 16 })
	var mu sync.Mutex
	acked := map[string]string{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				if err := c.Set(context.Background(), k, v, 0).Err(); err != nil {
					return // the kill cut us off: not acknowledged
				}
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}()
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 500 {
			return fmt.Errorf("%d acknowledged writes so far", len(acked))
		}
		return nil
	})
	n.Kill()
	stop.Store(true)
	wg.Wait()
	n.Start()
	c = n.redis()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("checking %d acknowledged writes after kill -9", len(acked))
	missing := 0
	for k, v := range acked {
		got, err := c.Get(t.Context(), k).Result()
		if err != nil || got != v {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged %s=%s, after restart: %q %v", k, v, got, err)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", missing, len(acked))
	}
}

// Garbage and HTTP on the RESP port get an error or a dropped connection; the
// server, other clients and the data carry on.
func TestBadInputLeavesServerAndDataIntact(t *testing.T) {
	n := newNode(t, "bad")
	n.Start()
	c := n.redis()
	ctx := t.Context()
	if err := c.Set(ctx, "precious", "data", 0).Err(); err != nil {
		t.Fatal(err)
	}
	inputs := map[string]string{
		"http":          "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"negative bulk": "*2\r\n$3\r\nGET\r\n$-5\r\n",
		"huge array":    "*2147483647\r\n",
		"bad length":    "*1\r\n$abc\r\n",
		"binary":        "\x00\xff\xfe garbage \x01\r\n",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", n.Client)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, in)
			// Whatever the reply, the server must answer or close, not hang.
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err == nil && !strings.HasPrefix(line, "-") {
				t.Fatalf("reply to %s: %q, want an error", name, line)
			}
			if v, err := c.Get(ctx, "precious").Result(); err != nil || v != "data" {
				t.Fatalf("after %s: GET precious = %q, %v", name, v, err)
			}
		})
	}
	// An oversized value is refused and stores nothing.
	big := strings.Repeat("x", 3<<19) // 1.5 MiB
	small := newNode(t, "small", "--max-value-bytes", "1MiB")
	small.Start()
	sc := small.redis()
	if err := sc.Set(ctx, "big", big, 0).Err(); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("oversized SET: %v", err)
	}
	if err := sc.Get(ctx, "big").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("oversized value was stored: %v", err)
	}
	if err := sc.Ping(ctx).Err(); err != nil {
		t.Fatalf("server unusable after oversized value: %v", err)
	}
}

// redis-cli and redis-benchmark work unmodified.
func TestRedisToolsWork(t *testing.T) {
	for _, tool := range []string{"redis-cli", "redis-benchmark"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install redis-tools; .ci/run does): %v", tool, err)
		}
	}
	n := newNode(t, "tools")
	n.Start()
	host, port, _ := net.SplitHostPort(n.Client)
	cli := func(args ...string) string {
		out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port, "-a", e2ePassword, "--no-auth-warning"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := cli("SET", "tool", "works"); got != "OK" {
		t.Fatalf("redis-cli SET: %q", got)
	}
	if got := cli("GET", "tool"); got != "works" {
		t.Fatalf("redis-cli GET: %q", got)
	}
	out, err := exec.Command("redis-benchmark", "-h", host, "-p", port, "-a", e2ePassword, "-t", "set,get", "-n", "5000", "-P", "16", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, "SET:") || !strings.Contains(text, "GET:") || strings.Contains(strings.ToLower(text), "error") {
		t.Fatalf("redis-benchmark output:\n%s", text)
	}
}

// The HTTP API stores, reads and deletes keys, and honours ?ttl.
func TestHTTPAPI(t *testing.T) {
	n := newNode(t, "http")
	n.Start()
	base := "http://" + n.HTTP + "/v1/kv/"
	do := func(method, url, body string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("PUT", base+"a", "hello"); code/100 != 2 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := do("GET", base+"a", ""); code != 200 || body != "hello" {
		t.Fatalf("GET: %d %s", code, body)
	}
	// The same key through RESP: one store behind both APIs.
	if v, err := n.redis().Get(t.Context(), "a").Result(); err != nil || v != "hello" {
		t.Fatalf("RESP GET after HTTP PUT: %q %v", v, err)
	}
	if code, body := do("PUT", base+"t?ttl=bogus", "x"); code != 400 || !strings.Contains(body, "error") {
		t.Fatalf("bad ttl: %d %s", code, body)
	}
	if code, _ := do("DELETE", base+"a", ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, body := do("GET", base+"a", ""); code != 404 || !strings.Contains(body, "error") {
		t.Fatalf("GET deleted: %d %s", code, body)
	}
}
