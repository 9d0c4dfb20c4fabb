package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
)

// testConfig is a small closed-loop run bounded by count.
func testConfig(addrs []string) Config {
	c := DefaultConfig()
	c.Addrs = addrs
	c.Keys = 100
	c.Conns = 4
	c.Pipeline = 8
	c.Duration = 0
	c.Requests = 2000
	c.Warmup = 0
	c.Consistency = "QUORUM"
	return c
}

// command sends one command on a fresh connection and returns the raw reply line.
func command(t *testing.T, addr string, args ...string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(appendCommand(nil, args...)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func TestRunCountsEveryRequestAndWritesTheKeyspace(t *testing.T) {
	addrs := startCluster(t, 1, func(c *config.Config) { c.Replicas = 1 })

	c := testConfig(addrs)
	c.Ratio = Ratio{Set: 1}
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Op(OpSet); got.Count != 2000 || got.Errors != 0 {
		t.Fatalf("SET row %+v, want 2000 requests without errors", got)
	}
	if got := res.Total(); got.Count != 2000 || got.OpsPerSec <= 0 || got.P50 <= 0 || got.Max < got.P99 || got.P99 < got.P50 {
		t.Fatalf("ALL row %+v", got)
	}
	if got := res.Op(OpGet); got.Count != 0 {
		t.Fatalf("GET row %+v with a SET-only mix", got)
	}
	// 2000 uniform draws over 100 keys miss one with probability ~100·e⁻²⁰:
	// every key was written, so the server really executed the SETs.
	if got := command(t, addrs[0], "DBSIZE"); got != ":100" {
		t.Fatalf("DBSIZE %s, want :100", got)
	}
	if got := command(t, addrs[0], "GET", "key:000000000042"); got != "$100" {
		t.Fatalf("GET key:000000000042 answered %q, want a 100-byte value", got)
	}

	// A mixed run splits the same count by the ratio.
	c.Ratio = Ratio{Get: 1, Set: 1, Del: 1}
	c.Requests = 3000
	res, err = Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	g, s, d := res.Op(OpGet), res.Op(OpSet), res.Op(OpDel)
	if g.Count+s.Count+d.Count != 3000 || res.Total().Count != 3000 {
		t.Fatalf("GET %d + SET %d + DEL %d, want 3000", g.Count, s.Count, d.Count)
	}
	for _, o := range []OpStats{g, s, d} {
		if o.Count < 700 || o.Count > 1300 || o.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors; want about 1000 and none", o.Op, o.Count, o.Errors)
		}
	}
}

func TestRunCountsErrorReplies(t *testing.T) {
	addrs := startCluster(t, 1, func(c *config.Config) { c.Replicas = 1; c.MaxValueBytes = 64 })

	c := testConfig(addrs)
	c.Ratio = Ratio{Get: 1, Set: 1}
	c.ValueSize = 100 // above the node's limit: every SET is refused
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	s, g := res.Op(OpSet), res.Op(OpGet)
	if s.Count == 0 || s.Errors != s.Count {
		t.Fatalf("SET row %+v: want every SET counted as an error", s)
	}
	if g.Count == 0 || g.Errors != 0 {
		t.Fatalf("GET row %+v: want GETs of missing keys to succeed", g)
	}
	if res.Total().Errors != s.Errors {
		t.Fatalf("ALL errors %d, want %d", res.Total().Errors, s.Errors)
	}
	if len(res.ErrorSamples) != 1 {
		t.Fatalf("error samples %v, want the one refusal", res.ErrorSamples)
	}
	for msg, n := range res.ErrorSamples {
		if !strings.HasPrefix(msg, "ERR") || n != s.Errors {
			t.Fatalf("sample %q ×%d, want an ERR reply ×%d", msg, n, s.Errors)
		}
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "error reply ×") {
		t.Fatalf("table does not show the error replies:\n%s", out.String())
	}
}

func TestRunWarmupIsNotCounted(t *testing.T) {
	addrs := startCluster(t, 1, func(c *config.Config) { c.Replicas = 1 })
	c := testConfig(addrs)
	c.Warmup = 300 * time.Millisecond
	c.Requests = 500
	var progress bytes.Buffer
	c.Progress, c.ProgressInterval = &lockedWriter{w: &progress}, 100*time.Millisecond
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Total().Count; got != 500 {
		t.Fatalf("%d requests measured, want exactly the 500 asked for after warmup", got)
	}
	if !strings.Contains(progress.String(), "(warmup)") || !strings.Contains(progress.String(), "ops/s") {
		t.Fatalf("progress lines %q: want live lines that mark the warmup", progress.String())
	}
}

func TestRunDurationEndsTheRun(t *testing.T) {
	addrs := startCluster(t, 1, func(c *config.Config) { c.Replicas = 1 })
	c := testConfig(addrs)
	c.Requests, c.Duration = 0, 500*time.Millisecond
	start := time.Now()
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	// Lower bounds only: a loaded machine may run late, never early.
	if res.Seconds < 0.5 || time.Since(start) < 500*time.Millisecond || res.Total().Count == 0 {
		t.Fatalf("ran %.3fs with %d requests, want at least 0.5s of load", res.Seconds, res.Total().Count)
	}
	var out bytes.Buffer
	if err := res.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Total().Count != res.Total().Count || back.Mode != "closed" {
		t.Fatalf("JSON round trip: %v, %+v", err, back)
	}
}

func TestRunConsistencyHandshake(t *testing.T) {
	addrs := startCluster(t, 1, func(c *config.Config) { c.Replicas = 1 })
	c := testConfig(addrs)
	c.Consistency = "ONE"
	if _, err := Run(t.Context(), c); err != nil {
		t.Fatalf("consistency ONE: %v", err)
	}
	c.Consistency = "SOMETIMES"
	_, err := Run(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "RINGKV.CONSISTENCY SOMETIMES") {
		t.Fatalf("bad level: error %v, want the server's refusal of RINGKV.CONSISTENCY", err)
	}
}

func TestRunAuthenticates(t *testing.T) {
	addrs := startCluster(t, 1, func(c *config.Config) { c.Replicas, c.Password = 1, "s3cret" })
	c := testConfig(addrs)
	c.Requests = 200
	_, err := Run(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("no password: error %v, want the server's NOAUTH", err)
	}
	c.Password = "wrong"
	if _, err := Run(t.Context(), c); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: error %v, want WRONGPASS", err)
	}
	c.User, c.Password = "default", "s3cret"
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if res.Total().Errors != 0 {
		t.Fatalf("right password: %d error replies", res.Total().Errors)
	}
}

func TestRunFailsOnRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Run(t.Context(), testConfig([]string{addr})); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %v, want a connect error naming %s", err, addr)
	}
}

func TestRunFailsWhenTheServerDropsTheConnection(t *testing.T) {
	// The server answers 100 commands per connection, then hangs up.
	addr := stubServer(t, func(n int64) (reply string, closeConn bool) { return "+OK\r\n", n >= 100 })
	c := testConfig([]string{addr})
	c.Consistency = ""
	c.Cluster = ClusterOff // the stub would answer CLUSTER SLOTS with +OK
	c.Requests, c.Duration = 0, time.Minute
	_, err := Run(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "connection") {
		t.Fatalf("error %v, want the lost connection reported", err)
	}
}

// TestOpenLoopCountsTheStall is the coordinated-omission check: the server
// stalls 300 ms once, and the open loop must charge that stall to every
// request that was due during it, not only to the one in flight.
func TestOpenLoopCountsTheStall(t *testing.T) {
	var stalled atomic.Bool
	addr := stubServer(t, func(n int64) (string, bool) {
		if n == 200 && stalled.CompareAndSwap(false, true) {
			time.Sleep(300 * time.Millisecond)
		}
		return "+OK\r\n", false
	})
	c := testConfig([]string{addr})
	c.Consistency = ""
	c.Cluster = ClusterOff // the stub would answer CLUSTER SLOTS with +OK
	c.Conns, c.Pipeline = 1, 1
	c.Rate = 1000
	c.Requests, c.Duration = 0, time.Second
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !stalled.Load() {
		t.Fatal("the server never stalled")
	}
	// ~300 of ~1000 requests were due during the stall, waiting 0..300 ms:
	// more than 10% waited over 100 ms. Measured from the send, only one
	// request would have been slow and p90 would be well under 100 ms.
	if tot := res.Total(); tot.P90 < 100 || tot.Max < 290 {
		t.Fatalf("p90 %.1f ms, max %.1f ms: the stall was not charged to the requests due during it", tot.P90, tot.Max)
	}
	if res.Due < 900 || res.Due > 1100 || res.Total().Count < res.Due*9/10 {
		t.Fatalf("%d of %d due requests completed, want about 1000 due and nearly all done", res.Total().Count, res.Due)
	}
	if res.Mode != "open" || res.Total().Count < 500 {
		t.Fatalf("mode %s, %d requests, want an open loop of about 1000", res.Mode, res.Total().Count)
	}
}

// stubServer serves RESP commands on a loopback port, answering the n-th
// command of each connection (from 1) with reply(n).
func stubServer(t *testing.T, reply func(n int64) (string, bool)) string {
	t.Helper()
	return serveRESP(t, func() func([][]byte) (string, bool) {
		var n int64
		return func([][]byte) (string, bool) {
			n++
			return reply(n)
		}
	})
}

// lockedWriter serialises writes for a buffer read after the run.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestOpenLoopReportsFallingBehind(t *testing.T) {
	// 5 ms per reply caps one connection at 200 req/s, a fifth of the rate.
	addr := stubServer(t, func(int64) (string, bool) { time.Sleep(5 * time.Millisecond); return "+OK\r\n", false })
	c := testConfig([]string{addr})
	c.Consistency = ""
	c.Cluster = ClusterOff // the stub would answer CLUSTER SLOTS with +OK
	c.Conns, c.Pipeline, c.Rate = 1, 1, 1000
	c.Requests, c.Duration = 0, 500*time.Millisecond
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Due < 450 || res.Total().Count > res.Due/2 {
		t.Fatalf("%d of %d due completed, want about 500 due and at most half done", res.Total().Count, res.Due)
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "FELL BEHIND") {
		t.Fatalf("table does not say the open loop fell behind:\n%s", out.String())
	}
}

// The open loop's own timer can wake late: Go wakes an idle process with
// millisecond granularity. A request that came due while the worker waited
// with nothing in flight was delayed by the client, not the server, and must
// not count that delay. Here every wait oversleeps by 20 ms against an
// instant server, one request every 50 ms: charged to the requests, every
// latency would exceed 20 ms.
func TestOpenLoopDoesNotChargeItsOwnOversleep(t *testing.T) {
	addr := stubServer(t, func(int64) (string, bool) { return "+OK\r\n", false })
	c := testConfig([]string{addr})
	c.Consistency = ""
	c.Cluster = ClusterOff // the stub would answer CLUSTER SLOTS with +OK
	c.Conns, c.Pipeline = 1, 1
	c.Rate = 20
	c.Requests, c.Duration = 0, time.Second
	var sleeps atomic.Int64
	c.sleep = func(ctx context.Context, d time.Duration) {
		sleeps.Add(1)
		sleep(ctx, d+20*time.Millisecond)
	}
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if sleeps.Load() < 10 || res.Total().Count < 10 {
		t.Fatalf("%d waits, %d requests: the open loop did not wait on its schedule", sleeps.Load(), res.Total().Count)
	}
	if p50 := res.Total().P50; p50 >= 10 {
		t.Fatalf("p50 %.1f ms: the timer's 20 ms oversleep was charged to the requests", p50)
	}
}

func TestSendFrom(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	for _, tc := range []struct {
		name                 string
		intended, woke, want time.Time
	}{
		{"due while the worker waited: counts from the wake", t0, t0.Add(ms), t0.Add(ms)},
		{"due after the wake (a reply was in flight): counts from its schedule", t0.Add(2 * ms), t0.Add(ms), t0.Add(2 * ms)},
		{"never waited", t0, time.Time{}, t0},
	} {
		if got := sendFrom(tc.intended, tc.woke); !got.Equal(tc.want) {
			t.Errorf("%s: sendFrom = %v, want %v", tc.name, got, tc.want)
		}
	}
}
