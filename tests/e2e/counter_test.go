package e2e

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/testutil"
)

// incrEach runs rounds of INCRBY on key through every client at once, each
// with its own positive deltas, and returns their sum. Every call must
// succeed: an error is an increment of unknown fate, which this check does
// not allow for.
func incrEach(t *testing.T, clients []*redis.Client, key string, rounds int) int64 {
	t.Helper()
	var sum atomic.Int64
	var wg sync.WaitGroup
	for i, c := range clients {
		for g := range 2 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(i), uint64(g)))
				for range rounds {
					d := int64(1 + r.IntN(9))
					if _, err := c.IncrBy(t.Context(), key, d).Result(); err != nil {
						t.Errorf("INCRBY via %s: %v", c.Options().Addr, err)
						return
					}
					sum.Add(d)
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return sum.Load()
}

// Increments through three real nodes at once all count; so do those made
// through the two left while the third is killed, and after it is back;
// every node then reads the exact sum, and holds it on its own replica.
func TestCounterConcurrentIncrAcrossKill(t *testing.T) {
	nodes := startCluster(t, 3)
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = n.redis()
	}
	ctx := t.Context()
	if err := clients[0].Set(ctx, "ctr", "1000", 0).Err(); err != nil {
		t.Fatal(err)
	}
	want := int64(1000) + incrEach(t, clients, "ctr", 150)

	n3 := nodes[2]
	n3.Kill()
	// Increments through n1 and n2 while n3 is dead, some of them before
	// they notice it is.
	want += incrEach(t, clients[:2], "ctr", 150)
	waitDown(t, nodes[0], "n3")
	want += incrEach(t, clients[:2], "ctr", 50)

	n3.Start()
	for _, n := range nodes {
		waitUp(t, n, 3)
	}
	clients[2] = n3.redis()
	want += incrEach(t, clients, "ctr", 50)

	for _, n := range nodes {
		all := n.redis(withLevel("ALL"))
		// A node that dialled n3 while it was dead may still hold back its
		// requests for a moment after gossip says n3 is up again: wait for
		// the read to be answered, then require the exact value.
		var v string
		testutil.Eventually(t, 10*time.Second, func() error {
			var err error
			v, err = all.Get(ctx, "ctr").Result()
			return err
		})
		if v != strconv.FormatInt(want, 10) {
			t.Fatalf("ALL read through %s: %q, want %d", n.ID, v, want)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, n := range nodes {
			if v, _ := localValue(t, n, "ctr"); v != strconv.FormatInt(want, 10) {
				return fmt.Errorf("%s's replica holds %q, want %d", n.ID, v, want)
			}
		}
		return nil
	})
}

// The INCR family's replies and errors, as Redis gives them.
func TestCounterReplies(t *testing.T) {
	nodes := startCluster(t, 3)
	c := nodes[0].redis()
	c2 := nodes[1].redis()
	ctx := t.Context()
	do := func(args ...any) (any, error) { return c.Do(ctx, args...).Result() }
	expect := func(want any, args ...any) {
		t.Helper()
		if got, err := do(args...); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%v = %v, %v; want %v", args, got, err, want)
		}
	}
	expectErr := func(want string, args ...any) {
		t.Helper()
		if _, err := do(args...); err == nil || err.Error() != want {
			t.Fatalf("%v: error %v, want %q", args, err, want)
		}
	}
	expect(1, "INCR", "a")
	expect(0, "DECR", "a")
	expect(-10, "DECRBY", "a", 10)
	expect(5, "INCRBY", "a", 15)
	if v, err := c2.Get(ctx, "a").Result(); err != nil || v != "5" {
		t.Fatalf("GET of the counter through n2: %q %v", v, err)
	}
	if v, err := c2.Incr(ctx, "a").Result(); err != nil || v != 6 {
		t.Fatalf("INCR through n2: %d %v", v, err)
	}
	expect(11, "INCRBY", "a", 5)

	// A string holding an integer is where a counter starts; SET and DEL
	// replace a counter.
	expect("OK", "SET", "s", "41")
	expect(42, "INCR", "s")
	expect("OK", "SET", "s", "7")
	expect(8, "INCR", "s")
	expect(1, "DEL", "s")
	expect(1, "INCR", "s")

	// A TTL survives INCR, as in Redis.
	expect("OK", "SET", "t", "1", "EX", "100")
	expect(2, "INCR", "t")
	if ttl, err := c.TTL(ctx, "t").Result(); err != nil || ttl <= 0 {
		t.Fatalf("TTL after INCR: %v %v", ttl, err)
	}

	const notInt = "ERR value is not an integer or out of range"
	expect("OK", "SET", "str", "abc")
	expectErr(notInt, "INCR", "str")
	expectErr(notInt, "INCRBY", "a", "x")
	expectErr(notInt, "INCRBY", "a", "1.5")
	expect("OK", "SET", "big", "9223372036854775807")
	expectErr("ERR increment or decrement would overflow", "INCR", "big")
	expect("OK", "SET", "small", "-9223372036854775808")
	expectErr("ERR increment or decrement would overflow", "DECR", "small")
	expectErr("ERR decrement would overflow", "DECRBY", "a", "-9223372036854775808")
	expectErr("ERR wrong number of arguments for 'incr' command", "INCR")

	expect("OK", "SET", "f", "10.50")
	expect("10.6", "INCRBYFLOAT", "f", "0.1")
	expect("OK", "SET", "nf", "5.0e3")
	expect("5200", "INCRBYFLOAT", "nf", "2.0e2")
	expect("5200", "GET", "nf")
	expectErr("ERR value is not a valid float", "INCRBYFLOAT", "f", "abc")
	expectErr("ERR value is not a valid float", "INCRBYFLOAT", "str", "1")
	expectErr("ERR increment would produce NaN or Infinity", "INCRBYFLOAT", "f", "inf")
}
