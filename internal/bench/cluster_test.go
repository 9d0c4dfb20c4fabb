package bench

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/testproc"
	"github.com/ringkv/ringkv/internal/testutil"
)

func TestKeySlot(t *testing.T) {
	// CLUSTER KEYSLOT of redis-server 7.0.15 for each key.
	for key, want := range map[string]uint16{
		"foo":                  12182,
		"bar":                  5061,
		"hello":                866,
		"123456789":            12739,
		"{user1000}.following": 3443,
		"{user1000}.followers": 3443,
		"user1000":             3443,
		"{}foo":                9500, // an empty tag hashes the whole key
		"foo{}{bar}":           8363, // the first tag is empty: the whole key
		"foo{{bar}}zap":        4015, // the tag is "{bar"
		"foo{bar}{zap}":        5061, // only the first tag counts: "bar"
		"key:000000000000":     13053,
		"key:000000999999":     5172,
		"":                     0,
	} {
		if got := keySlot([]byte(key)); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestParseRedirect(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want redirect
		ok   bool
	}{
		{"MOVED 3999 127.0.0.1:6381", redirect{slot: 3999, addr: "127.0.0.1:6381"}, true},
		{"ASK 12 10.0.0.2:7000", redirect{ask: true, slot: 12, addr: "10.0.0.2:7000"}, true},
		{"MOVED 7 [::1]:7000", redirect{slot: 7, addr: "[::1]:7000"}, true},
		{"MOVED 7 :7000", redirect{slot: 7, addr: ":7000"}, true}, // empty host: the answering node's
		{"MOVED 16384 127.0.0.1:1", redirect{}, false},
		{"MOVED x 127.0.0.1:1", redirect{}, false},
		{"MOVED 1 nohostport", redirect{}, false},
		{"MOVED 1", redirect{}, false},
		{"ERR MOVED 1 127.0.0.1:1", redirect{}, false},
		{"CLUSTERDOWN Hash slot not served", redirect{}, false},
	} {
		got, ok := parseRedirect(tc.msg)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseRedirect(%q) = %+v, %v; want %+v, %v", tc.msg, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseSlots(t *testing.T) {
	node := func(host string, port int64) []any { return []any{host, port, "id"} }
	full := []any{
		[]any{int64(0), int64(8000), node("10.0.0.1", 7000), node("10.0.0.4", 7003)},
		[]any{int64(8001), int64(16383), node("", 7001)},
	}
	m, err := parseSlots(full, "10.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.addrs; len(got) != 2 || got[0] != "10.0.0.1:7000" || got[1] != "10.0.0.9:7001" {
		t.Fatalf("masters %v, want 10.0.0.1:7000 and the seed's host for the empty one", got)
	}
	if m.owner[0] != 0 || m.owner[8000] != 0 || m.owner[8001] != 1 || m.owner[16383] != 1 {
		t.Fatal("slots assigned to the wrong master")
	}
	for name, bad := range map[string]any{
		"not an array":     "OK",
		"a slot unserved":  []any{[]any{int64(0), int64(100), node("h", 1)}},
		"end out of range": []any{[]any{int64(0), int64(16384), node("h", 1)}},
		"no master":        []any{[]any{int64(0), int64(16383)}},
		"unknown endpoint": []any{[]any{int64(0), int64(16383), node("?", 1)}},
		"port not integer": []any{[]any{int64(0), int64(16383), []any{"h", "1"}}},
	} {
		if _, err := parseSlots(bad, "h"); err == nil {
			t.Errorf("%s: parseSlots accepted %v", name, bad)
		}
	}
}

// TestRunRingkvIsACluster: ringkv describes its ring as slots, so auto and on
// route by slot, and off drives it as a plain server.
func TestRunRingkvIsACluster(t *testing.T) {
	addrs := startCluster(t, 1, func(c *config.Config) { c.Replicas = 1 })
	c := testConfig(addrs)
	for _, mode := range []string{ClusterAuto, ClusterOn, ClusterOff} {
		c.Cluster = mode
		res, err := Run(t.Context(), c)
		if err != nil {
			t.Fatalf("--cluster %s: %v", mode, err)
		}
		if res.Cluster != (mode != ClusterOff) || res.Total().Count != c.Requests || res.Total().Errors != 0 || res.Redirects != 0 {
			t.Fatalf("--cluster %s: cluster %v, %d requests, %d errors, %d redirects: want %d without errors or redirects",
				mode, res.Cluster, res.Total().Count, res.Total().Errors, res.Redirects, c.Requests)
		}
	}
}

// TestRunPlainServerIsNotACluster: a redis-server without cluster-enabled
// answers CLUSTER with an error, so auto drives it as a plain server and on
// refuses it.
func TestRunPlainServerIsNotACluster(t *testing.T) {
	addr := testproc.RedisServer(t, false)
	c := testConfig([]string{addr})
	c.Consistency = ""
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cluster || res.Total().Count != c.Requests || res.Total().Errors != 0 {
		t.Fatalf("cluster %v, %d requests, %d errors: want a plain run of %d without errors",
			res.Cluster, res.Total().Count, res.Total().Errors, c.Requests)
	}
	c.Cluster = ClusterOn
	if _, err := Run(t.Context(), c); err == nil || !strings.Contains(err.Error(), "not a Redis Cluster") {
		t.Fatalf("--cluster on against a plain redis-server: error %v, want it refused", err)
	}
}

// clusterStub is a fake cluster node at the unit test's seam: it answers
// CLUSTER SLOTS with slots, ASKING with +OK, and every other command with
// reply(command, asked), where asked says ASKING came just before it.
func clusterStub(t *testing.T, slots func() string, reply func(args [][]byte, asked bool) string) string {
	t.Helper()
	return serveRESP(t, func() func([][]byte) (string, bool) {
		asked := false
		return func(args [][]byte) (string, bool) {
			switch strings.ToUpper(string(args[0])) {
			case "CLUSTER":
				return slots(), false
			case "ASKING":
				asked = true
				return "+OK\r\n", false
			}
			out := reply(args, asked)
			asked = false
			return out, false
		}
	})
}

// slotsReply is a CLUSTER SLOTS reply giving every slot to addr.
func slotsReply(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$%d\r\n%s\r\n:%s\r\n$2\r\nid\r\n", len(host), host, port)
}

// TestRunFollowsMovedAndAsk: the topology names node A for every slot, but A
// answers every key MOVED to B; B answers half the keys ASK to C, which
// serves a key only after ASKING. Every request must end served, and the
// map learnt from MOVED must send later requests to B directly.
func TestRunFollowsMovedAndAsk(t *testing.T) {
	var atA, atB, atC, unasked atomic.Int64
	var c, b string
	c = clusterStub(t, func() string { return slotsReply(c) }, func(args [][]byte, asked bool) string {
		atC.Add(1)
		if !asked {
			unasked.Add(1)
			return fmt.Sprintf("-MOVED %d %s\r\n", keySlot(args[1]), b)
		}
		return "+OK\r\n"
	})
	b = clusterStub(t, func() string { return slotsReply(b) }, func(args [][]byte, asked bool) string {
		atB.Add(1)
		if slot := keySlot(args[1]); slot%2 == 0 {
			// The port only: the node that answers is on C's host.
			_, port, _ := net.SplitHostPort(c)
			return fmt.Sprintf("-ASK %d :%s\r\n", slot, port)
		}
		return "+OK\r\n"
	})
	var a string
	a = clusterStub(t, func() string { return slotsReply(a) }, func(args [][]byte, _ bool) string {
		atA.Add(1)
		return fmt.Sprintf("-MOVED %d %s\r\n", keySlot(args[1]), b)
	})

	cfg := testConfig([]string{a})
	cfg.Consistency = ""
	cfg.Cluster = ClusterOn
	cfg.Keys = 50
	cfg.Requests = 4000
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tot := res.Total()
	if !res.Cluster || tot.Count != cfg.Requests || tot.Errors != 0 {
		t.Fatalf("cluster %v, %d requests, %d errors %v: want %d, all served", res.Cluster, tot.Count, tot.Errors, res.ErrorSamples, cfg.Requests)
	}
	if unasked.Load() != 0 {
		t.Fatalf("%d requests reached C without ASKING first", unasked.Load())
	}
	// A request goes to A only in its connection's first batch holding its
	// slot (50 keys, 4 connections, 8 per batch: a few hundred at most),
	// never the whole load.
	if n := atA.Load(); n == 0 || n > cfg.Requests/4 {
		t.Fatalf("A got %d requests: MOVED did not update the slot map", n)
	}
	// ASK never updates the map: every even-slot request goes to B, then C.
	if atB.Load() != cfg.Requests || atC.Load() == 0 || atC.Load() >= cfg.Requests {
		t.Fatalf("B got %d, C %d of %d requests: want all at B and the ASKed share at C", atB.Load(), atC.Load(), cfg.Requests)
	}
	if res.Redirects != atA.Load()+atC.Load() {
		t.Fatalf("%d redirects counted, want %d (MOVED from A) + %d (ASK from B)", res.Redirects, atA.Load(), atC.Load())
	}
}

// TestRunRedirectLoopIsAnError: a node that always answers MOVED to itself
// must not keep a request in flight for ever; it ends as an error reply.
func TestRunRedirectLoopIsAnError(t *testing.T) {
	var a string
	a = clusterStub(t, func() string { return slotsReply(a) }, func(args [][]byte, _ bool) string {
		return fmt.Sprintf("-MOVED %d %s\r\n", keySlot(args[1]), a)
	})
	cfg := testConfig([]string{a})
	cfg.Consistency = ""
	cfg.Requests = 200
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tot := res.Total(); tot.Count != 200 || tot.Errors != 200 {
		t.Fatalf("%d requests, %d errors: want every request counted as an error", tot.Count, tot.Errors)
	}
	if res.Redirects != 200*maxRedirects {
		t.Fatalf("%d redirects followed, want %d per request", res.Redirects, maxRedirects)
	}
}

// redisCluster starts a real Redis Cluster of masters redis-server
// processes (no replicas) on loopback (testproc.RedisServer) and returns
// their addresses once every node reports the cluster ok.
func redisCluster(t *testing.T, masters int) []string {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli not installed (apt-get install redis-tools; .ci/run does): %v", err)
	}
	var addrs []string
	for range masters {
		addrs = append(addrs, testproc.RedisServer(t, true))
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, a := range addrs {
			if info := redisCLI(t, a, "CLUSTER", "INFO"); !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: %s", a, info)
			}
		}
		return nil
	})
	return addrs
}

// redisCLI runs one redis-cli command against addr and returns its output.
func redisCLI(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("redis-cli: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// commandCalls returns INFO commandstats' calls and rejected_calls of cmd.
func commandCalls(t *testing.T, addr, cmd string) (calls, rejected int64) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(redisCLI(t, addr, "INFO", "commandstats")))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(line, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "calls":
				calls = n
			case "rejected_calls":
				rejected = n
			}
		}
	}
	return calls, rejected
}

// TestRunRedisCluster drives a real 3-master Redis Cluster, given one seed:
// every request must be served, by the master of its key's slot (a request
// sent elsewhere would be rejected with MOVED, counted in rejected_calls
// and in Redirects), and the load must reach all three masters.
func TestRunRedisCluster(t *testing.T) {
	addrs := redisCluster(t, 3)
	t.Run("consistency level refused", func(t *testing.T) {
		c := testConfig(addrs[:1])
		_, err := Run(t.Context(), c)
		if err == nil || !strings.Contains(err.Error(), `--consistency ""`) {
			t.Fatalf("RINGKV.CONSISTENCY against Redis: error %v, want it refused with the way out", err)
		}
	})
	for _, open := range []bool{false, true} {
		t.Run(fmt.Sprintf("open=%v", open), func(t *testing.T) {
			before := map[string][2]int64{}
			for _, a := range addrs {
				g, _ := commandCalls(t, a, "get")
				s, _ := commandCalls(t, a, "set")
				before[a] = [2]int64{g, s}
			}
			c := testConfig(addrs[1:2])
			c.Consistency = ""
			c.Keys = 10_000
			if open {
				c.Pipeline, c.Rate = 1, 2000
			}
			res, err := Run(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			tot := res.Total()
			if !res.Cluster || len(res.Addrs) != 3 {
				t.Fatalf("cluster %v, masters %v: want the 3-master topology", res.Cluster, res.Addrs)
			}
			if tot.Count != c.Requests || tot.Errors != 0 || res.Redirects != 0 {
				t.Fatalf("%d requests, %d errors %v, %d redirects: want %d served, each at its slot's master",
					tot.Count, tot.Errors, res.ErrorSamples, res.Redirects, c.Requests)
			}
			var served int64
			for _, a := range addrs {
				g, gr := commandCalls(t, a, "get")
				s, sr := commandCalls(t, a, "set")
				dg, ds := g-before[a][0], s-before[a][1]
				t.Logf("%s: %d GET, %d SET", a, dg, ds)
				if gr != 0 || sr != 0 {
					t.Fatalf("%s rejected %d GETs and %d SETs: sent to the wrong master", a, gr, sr)
				}
				// Each master owns a third of the slots: with uniform keys
				// each gets about a third of the load, surely over a tenth.
				if dg+ds < c.Requests/10 {
					t.Fatalf("%s served %d of %d requests: the load is not spread over the masters", a, dg+ds, c.Requests)
				}
				served += dg + ds
			}
			if served != c.Requests {
				t.Fatalf("the masters served %d requests, the bench counted %d", served, c.Requests)
			}
		})
	}
}

func TestReplyReaderValue(t *testing.T) {
	in := "*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$-1\r\n" +
		"+OK\r\n" +
		"_\r\n" +
		"-ERR unknown command 'cluster'\r\n" +
		"*1\r\n-MOVED 1 h:1\r\n"
	rr := newReplyReader(strings.NewReader(in))
	v, err := rr.value(0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(v); got != "[0 16383 [127.0.0.1 7000 <nil>]]" {
		t.Fatalf("array decoded as %s", got)
	}
	if v, err := rr.value(0); v != "OK" || err != nil {
		t.Fatalf("simple string: %v, %v", v, err)
	}
	if v, err := rr.value(0); v != nil || err != nil {
		t.Fatalf("RESP3 null: %v, %v", v, err)
	}
	for range 2 { // a top-level error, then one inside an array
		var se serverError
		if _, err := rr.value(0); !errors.As(err, &se) {
			t.Fatalf("error reply decoded as %v, want a serverError", err)
		}
	}
	deep := strings.Repeat("*1\r\n", maxNesting+2) + ":1\r\n"
	if _, err := newReplyReader(strings.NewReader(deep)).value(0); !errors.Is(err, errProtocol) {
		t.Fatalf("nesting past %d: %v, want a protocol error", maxNesting, err)
	}
	huge := "$1000000000\r\n"
	if _, err := newReplyReader(strings.NewReader(huge)).value(0); !errors.Is(err, errProtocol) {
		t.Fatalf("a 1 GB bulk string in a topology reply: %v, want a protocol error", err)
	}
}
