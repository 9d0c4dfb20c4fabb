package bench

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/internal/resp"
)

func TestSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	// 1000 req/s over 4 connections: each sends every 4 ms, staggered by 1 ms.
	for c := range 4 {
		s := newSchedule(start, 1000, 4, c)
		if s.interval != 4*time.Millisecond {
			t.Fatalf("conn %d interval %v, want 4ms", c, s.interval)
		}
		off := time.Duration(c) * time.Millisecond
		if got := s.at(0); !got.Equal(start.Add(off)) {
			t.Fatalf("conn %d first request at %v, want start+%v", c, got.Sub(start), off)
		}
		if got := s.at(10); !got.Equal(start.Add(off + 40*time.Millisecond)) {
			t.Fatalf("conn %d request 10 at %v, want start+%v", c, got.Sub(start), off+40*time.Millisecond)
		}
	}
	s := newSchedule(start, 1000, 4, 1) // requests at 1, 5, 9, … ms
	for _, tc := range []struct {
		at   time.Duration
		want int64
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Millisecond - 1, 0},
		{time.Millisecond, 1}, // due exactly at its intended time
		{5*time.Millisecond - 1, 1},
		{5 * time.Millisecond, 2},
		{time.Second, 250}, // 1 + (1000-1)/4
	} {
		if got := s.due(start.Add(tc.at)); got != tc.want {
			t.Errorf("due at start+%v = %d, want %d", tc.at, got, tc.want)
		}
	}
	// Over any whole second the connections together are due exactly the rate.
	var total int64
	for c := range 7 {
		total += newSchedule(start, 7000, 7, c).due(start.Add(time.Second - 1))
	}
	if total != 7000 {
		t.Fatalf("7 conns at 7000 req/s are due %d requests in the first second, want 7000", total)
	}
	// A rate beyond the clock's resolution still moves forward.
	if s := newSchedule(start, 1e12, 1, 0); s.interval <= 0 {
		t.Fatalf("interval %v, want > 0", s.interval)
	}
}

func TestZipfianShape(t *testing.T) {
	c := DefaultConfig()
	c.Dist, c.ZipfS, c.Keys = DistZipfian, 1.2, 10000
	w := newWorkload(c, 0)
	const draws = 200000
	counts := make([]int, c.Keys)
	for range draws {
		k := w.keyIndex()
		if k >= uint64(c.Keys) {
			t.Fatalf("key index %d outside the keyspace", k)
		}
		counts[k]++
	}
	// P(k) ∝ (1+k)^-s: rank 0 over rank 9 is 10^1.2 ≈ 15.8, and rank 0 alone
	// takes 1/H(10000, 1.2) of the draws.
	var h float64
	for k := range c.Keys {
		h += math.Pow(float64(k+1), -c.ZipfS)
	}
	want0 := draws / h
	if got := float64(counts[0]); math.Abs(got-want0) > 0.05*want0 {
		t.Errorf("hottest key drawn %v times, want about %.0f", got, want0)
	}
	if r := float64(counts[0]) / float64(counts[9]); r < 12 || r > 20 {
		t.Errorf("rank 0 / rank 9 = %.1f, want about 15.8", r)
	}
	// Counts fall with rank: compare decades to smooth out noise.
	sum := func(lo, hi int) (s int) {
		for _, n := range counts[lo:hi] {
			s += n
		}
		return s
	}
	if a, b, d := sum(0, 10), sum(10, 100), sum(1000, 10000); !(a > b && b > sum(100, 1000) && d > 0) {
		t.Errorf("decade sums %d, %d, %d, %d: want falling counts and a reachable tail", a, b, sum(100, 1000), d)
	}

	// Uniform covers the keyspace evenly.
	c.Dist, c.Keys = DistUniform, 100
	w = newWorkload(c, 0)
	counts = make([]int, c.Keys)
	for range 100000 {
		counts[w.keyIndex()]++
	}
	for k, n := range counts {
		if n < 800 || n > 1200 {
			t.Fatalf("uniform key %d drawn %d times of 100000, want about 1000", k, n)
		}
	}
}

// TestRequestsParse checks the encoder against the server's own parser.
func TestRequestsParse(t *testing.T) {
	c := DefaultConfig()
	c.Keys, c.ValueSize = 1_000_000, 7
	c.Ratio = Ratio{Get: 1, Set: 2, Del: 1}
	c.TTLShare, c.TTL = 0.5, 90*time.Second
	w := newWorkload(c, 3)
	var buf []byte
	var ops []Op
	for range 1000 {
		var op Op
		var keyAt int
		start := len(buf)
		buf, op, keyAt = w.appendRequest(buf)
		if key := string(buf[keyAt : keyAt+w.keyLen()]); !strings.HasPrefix(key, "key:") || keyAt <= start {
			t.Fatalf("request %d: key offset %d points at %q", len(ops), keyAt, key)
		}
		ops = append(ops, op)
	}
	r := resp.NewReader(bytes.NewReader(buf), resp.Limits{MaxArgs: 16, MaxBulk: 1 << 20, MaxQuery: 2 << 20})
	var withTTL, n int
	for {
		if err := r.Fill(); err != nil {
			break
		}
		for {
			args, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if args == nil {
				break
			}
			op := ops[n]
			n++
			if string(args[0]) != op.String() {
				t.Fatalf("request %d is %q, want %s", n, args[0], op)
			}
			key := string(args[1])
			if len(key) != 16 || !strings.HasPrefix(key, "key:") || strings.Trim(key[4:], "0123456789") != "" {
				t.Fatalf("key %q, want key: and 12 digits", key)
			}
			switch {
			case op == OpSet && len(args) == 5:
				withTTL++
				if string(args[3]) != "EX" || string(args[4]) != "90" || string(args[2]) != "xxxxxxx" {
					t.Fatalf("SET with TTL %q", args)
				}
			case op == OpSet && len(args) != 3, op != OpSet && len(args) != 2:
				t.Fatalf("request %q", args)
			}
		}
	}
	if n != 1000 {
		t.Fatalf("parsed %d requests, want 1000", n)
	}
	if withTTL < 150 || withTTL > 350 {
		t.Fatalf("%d SETs with TTL of about 500, want about half", withTTL)
	}
	if got := string(appendKey(nil, "k", 42)); got != "k000000000042" {
		t.Fatalf("appendKey = %q", got)
	}
	w.ttlArg = newWorkload(Config{TTL: 1500 * time.Millisecond, Keys: 1, Ratio: Ratio{Get: 1}}, 0).ttlArg
	if w.ttlArg != [2]string{"PX", "1500"} {
		t.Fatalf("sub-second TTL sent as %v, want PX 1500", w.ttlArg)
	}
}

func TestReplyReader(t *testing.T) {
	in := "+OK\r\n" +
		"$5\r\nhello\r\n" +
		"$-1\r\n" +
		":42\r\n" +
		"-ERR value too large\r\n" +
		"*3\r\n$1\r\na\r\n:1\r\n*-1\r\n" +
		"*2\r\n-ERR inner\r\n+x\r\n" +
		"_\r\n" +
		"%1\r\n+k\r\n$1\r\nv\r\n" +
		"!9\r\nSYNTAX xy\r\n" +
		"|1\r\n+ttl\r\n:3\r\n+after-attr\r\n" +
		"=7\r\ntxt:abc\r\n"
	want := []string{"", "", "", "", "ERR value too large", "", "ERR inner", "", "", "SYNTAX xy", "", ""}
	r := newReplyReader(strings.NewReader(in))
	for i, w := range want {
		got, err := r.next()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if got != w {
			t.Fatalf("reply %d: error %q, want %q", i, got, w)
		}
	}
	if _, err := r.next(); err == nil {
		t.Fatal("read past the end without an error")
	}

	for _, bad := range []string{"?\r\n", "$abc\r\n", "+OK\n", "*-5\r\n", strings.Repeat("*1\r\n", 40) + "+x\r\n"} {
		if _, err := newReplyReader(strings.NewReader(bad)).next(); !errors.Is(err, errProtocol) {
			t.Errorf("%q: error %v, want a protocol error", bad, err)
		}
	}
}

func TestParseRatioAndValidate(t *testing.T) {
	for in, want := range map[string]Ratio{"50:50:0": {50, 50, 0}, "9:1": {9, 1, 0}, "0:0:1": {0, 0, 1}} {
		if got, err := ParseRatio(in); err != nil || got != want {
			t.Errorf("ParseRatio(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "1:2:3:4", "a:b", "-1:2", "0:0:0"} {
		if _, err := ParseRatio(in); err == nil {
			t.Errorf("ParseRatio(%q) accepted", in)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"no addr":     func(c *Config) { c.Addrs = nil },
		"zipf s <= 1": func(c *Config) { c.Dist, c.ZipfS = DistZipfian, 1 },
		"bad dist":    func(c *Config) { c.Dist = "gaussian" },
		"no end":      func(c *Config) { c.Duration, c.Requests = 0, 0 },
		"pipeline 0":  func(c *Config) { c.Pipeline = 0 },
		"ttl share 2": func(c *Config) { c.TTLShare = 2 },
		"keys 0":      func(c *Config) { c.Keys = 0 },
	} {
		c := DefaultConfig()
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
