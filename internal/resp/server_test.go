package resp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/testutil"
)

// epoch is the manual clock's start: a round second, so TTL arithmetic in the
// tests is exact.
var epoch = time.Unix(1_800_000_000, 0)

type testServer struct {
	srv   *Server
	b     *memBackend
	clock *clock.Manual
	addr  string
	reg   *prometheus.Registry
}

// tlogWriter sends server logs to t.Log.
type tlogWriter struct{ tb testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startServer runs a Server on a loopback port 0 over a fresh memBackend and
// shuts it down when the test ends. mod may adjust the config.
func startServer(tb testing.TB, mod func(*Config)) *testServer {
	tb.Helper()
	clk := clock.NewManual(epoch)
	b := newMemBackend(clk)
	reg := prometheus.NewRegistry()
	cfg := Config{
		Logger:     slog.New(slog.NewTextHandler(tlogWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv := New(cfg, b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			tb.Errorf("serve returned %v, want ErrServerClosed", err)
		}
	})
	return &testServer{srv: srv, b: b, clock: clk, addr: ln.Addr().String(), reg: reg}
}

func (ts *testServer) client(tb testing.TB, proto int, mod ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	opt := &redis.Options{Addr: ts.addr, Protocol: proto, MaxRetries: -1}
	for _, m := range mod {
		m(opt)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { c.Close() })
	return c
}

// eachProto runs fn against RESP2 and RESP3 clients of a fresh server.
func eachProto(t *testing.T, fn func(t *testing.T, ts *testServer, c *redis.Client)) {
	eachProtoWith(t, nil, fn)
}

// eachProtoWith is eachProto on a server whose config mod adjusts.
func eachProtoWith(t *testing.T, mod func(*Config), fn func(t *testing.T, ts *testServer, c *redis.Client)) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			ts := startServer(t, mod)
			fn(t, ts, ts.client(t, proto))
		})
	}
}

// must unwraps a go-redis result. It panics on error, which fails the test
// with a stack; Go cannot pass a multi-value call next to a testing.TB.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// isNil checks for go-redis' nil reply.
func isNil(tb testing.TB, what string, err error) {
	tb.Helper()
	if !errors.Is(err, redis.Nil) {
		tb.Fatalf("%s: err %v, want redis.Nil", what, err)
	}
}

func wantErr(tb testing.TB, err error, want string) {
	tb.Helper()
	if err == nil || err.Error() != want {
		tb.Fatalf("error %v, want %q", err, want)
	}
}

func equal[T comparable](tb testing.TB, what string, got, want T) {
	tb.Helper()
	if got != want {
		tb.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestGetSetBasics(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		_, err := c.Get(ctx, "k").Result()
		isNil(t, "GET missing", err)
		equal(t, "SET", must(c.Set(ctx, "k", "v1", 0).Result()), "OK")
		equal(t, "GET", must(c.Get(ctx, "k").Result()), "v1")
		equal(t, "PING", must(c.Ping(ctx).Result()), "PONG")
		equal(t, "PING msg", must(c.Do(ctx, "PING", "hi").Text()), "hi")
		equal(t, "ECHO", must(c.Echo(ctx, "e").Result()), "e")
		equal(t, "SELECT 0", must(c.Do(ctx, "SELECT", "0").Text()), "OK")
		wantErr(t, c.Do(ctx, "SELECT", "1").Err(), "ERR DB index is out of range")
		equal(t, "DBSIZE", must(c.DBSize(ctx).Result()), int64(1))
		equal(t, "TYPE", must(c.Type(ctx, "k").Result()), "string")
		equal(t, "TYPE none", must(c.Type(ctx, "nokey").Result()), "none")
		// Binary-safe values.
		bin := string([]byte{0, '\r', '\n', 0xff})
		must(c.Set(ctx, "bin", bin, 0).Result())
		equal(t, "GET bin", must(c.Get(ctx, "bin").Result()), bin)
	})
}

func TestSetOptions(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		// NX / XX.
		equal(t, "SET XX missing", c.SetXX(ctx, "k", "v", 0).Val(), false)
		equal(t, "SET NX missing", must(c.SetNX(ctx, "k", "v", 0).Result()), true)
		equal(t, "SET NX present", must(c.SetNX(ctx, "k", "w", 0).Result()), false)
		equal(t, "SET XX present", must(c.SetXX(ctx, "k", "x", 0).Result()), true)
		equal(t, "value", c.Get(ctx, "k").Val(), "x")
		// GET returns the old value, also when NX refuses the write.
		equal(t, "SET GET", must(c.SetArgs(ctx, "k", "y", redis.SetArgs{Get: true}).Result()), "x")
		equal(t, "SET NX GET", must(c.SetArgs(ctx, "k", "z", redis.SetArgs{Get: true, Mode: "NX"}).Result()), "y")
		equal(t, "value after NX GET", c.Get(ctx, "k").Val(), "y")
		_, err := c.SetArgs(ctx, "new", "v", redis.SetArgs{Get: true}).Result()
		isNil(t, "SET GET missing", err)
		// Expiry options.
		must(c.Set(ctx, "e", "v", 100*time.Second).Result())
		equal(t, "TTL EX", c.TTL(ctx, "e").Val(), 100*time.Second)
		must(c.Do(ctx, "SET", "e", "v", "PX", "1500").Result())
		equal(t, "PTTL PX", c.PTTL(ctx, "e").Val(), 1500*time.Millisecond)
		must(c.Do(ctx, "SET", "e", "v", "EXAT", strconv.FormatInt(epoch.Unix()+50, 10)).Result())
		equal(t, "TTL EXAT", c.TTL(ctx, "e").Val(), 50*time.Second)
		must(c.Do(ctx, "SET", "e", "v", "PXAT", strconv.FormatInt(epoch.UnixMilli()+2500, 10)).Result())
		equal(t, "PTTL PXAT", c.PTTL(ctx, "e").Val(), 2500*time.Millisecond)
		must(c.SetArgs(ctx, "e", "v2", redis.SetArgs{KeepTTL: true}).Result())
		equal(t, "PTTL KEEPTTL", c.PTTL(ctx, "e").Val(), 2500*time.Millisecond)
		must(c.Set(ctx, "e", "v3", 0).Result())
		equal(t, "TTL cleared by SET", c.TTL(ctx, "e").Val(), time.Duration(-1))
		// An absolute time in the past stores a delete.
		must(c.Do(ctx, "SET", "e", "v", "EXAT", "1").Result())
		equal(t, "EXISTS after past EXAT", c.Exists(ctx, "e").Val(), int64(0))
		if rec, ok := ts.b.record("e"); !ok || !rec.Tombstone {
			t.Fatalf("record after past EXAT = %+v, want a tombstone", rec)
		}
		// Errors, Redis' texts.
		for _, tc := range []struct {
			args []any
			want string
		}{
			{[]any{"SET", "k", "v", "EX", "0"}, "ERR invalid expire time in 'set' command"},
			{[]any{"SET", "k", "v", "PX", "-5"}, "ERR invalid expire time in 'set' command"},
			{[]any{"SET", "k", "v", "EX", "9223372036854775807"}, "ERR invalid expire time in 'set' command"},
			{[]any{"SET", "k", "v", "PX", "9223372036854775807"}, "ERR invalid expire time in 'set' command"},
			{[]any{"SET", "k", "v", "EX", "abc"}, "ERR value is not an integer or out of range"},
			{[]any{"SET", "k", "v", "NX", "XX"}, "ERR syntax error"},
			{[]any{"SET", "k", "v", "EX", "1", "PX", "1"}, "ERR syntax error"},
			{[]any{"SET", "k", "v", "KEEPTTL", "EX", "1"}, "ERR syntax error"},
			{[]any{"SET", "k", "v", "EX"}, "ERR syntax error"},
			{[]any{"SET", "k", "v", "PERSIST"}, "ERR syntax error"},
			{[]any{"SET", "k"}, "ERR wrong number of arguments for 'set' command"},
			{[]any{"SETEX", "k", "0", "v"}, "ERR invalid expire time in 'setex' command"},
			{[]any{"PSETEX", "k", "-1", "v"}, "ERR invalid expire time in 'psetex' command"},
			{[]any{"SETEX", "k", "x", "v"}, "ERR value is not an integer or out of range"},
		} {
			wantErr(t, c.Do(ctx, tc.args...).Err(), tc.want)
		}
		equal(t, "value untouched by errors", c.Get(ctx, "k").Val(), "y")
	})
}

func TestSetExSetNXGetExGetDel(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		must(c.SetEx(ctx, "a", "1", 10*time.Second).Result())
		equal(t, "TTL SETEX", c.TTL(ctx, "a").Val(), 10*time.Second)
		must(c.Do(ctx, "PSETEX", "a", "2500", "1").Result())
		equal(t, "PTTL PSETEX", c.PTTL(ctx, "a").Val(), 2500*time.Millisecond)

		equal(t, "SETNX new", must(c.Do(ctx, "SETNX", "n", "1").Int()), 1)
		equal(t, "SETNX present", must(c.Do(ctx, "SETNX", "n", "2").Int()), 0)
		equal(t, "SETNX value", c.Get(ctx, "n").Val(), "1")

		// GETEX: plain, with EX, PERSIST, and a past EXAT that deletes.
		_, err := c.GetEx(ctx, "missing", time.Second).Result()
		isNil(t, "GETEX missing", err)
		equal(t, "GETEX plain", must(c.Do(ctx, "GETEX", "n").Text()), "1")
		equal(t, "TTL after plain GETEX", c.TTL(ctx, "n").Val(), time.Duration(-1))
		equal(t, "GETEX EX", must(c.GetEx(ctx, "n", 30*time.Second).Result()), "1")
		equal(t, "TTL GETEX EX", c.TTL(ctx, "n").Val(), 30*time.Second)
		equal(t, "GETEX PERSIST", must(c.Do(ctx, "GETEX", "n", "PERSIST").Text()), "1")
		equal(t, "TTL GETEX PERSIST", c.TTL(ctx, "n").Val(), time.Duration(-1))
		wantErr(t, c.Do(ctx, "GETEX", "n", "EX", "0").Err(), "ERR invalid expire time in 'getex' command")
		wantErr(t, c.Do(ctx, "GETEX", "n", "PERSIST", "EX", "1").Err(), "ERR syntax error")
		wantErr(t, c.Do(ctx, "GETEX", "n", "NX").Err(), "ERR syntax error")
		equal(t, "GETEX EXAT past", must(c.Do(ctx, "GETEX", "n", "EXAT", "1").Text()), "1")
		equal(t, "EXISTS after GETEX EXAT past", c.Exists(ctx, "n").Val(), int64(0))

		must(c.Set(ctx, "d", "v", 0).Result())
		equal(t, "GETDEL", must(c.GetDel(ctx, "d").Result()), "v")
		_, err = c.GetDel(ctx, "d").Result()
		isNil(t, "GETDEL again", err)
	})
}

func TestDelExistsMGetMSet(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		equal(t, "MSET", must(c.MSet(ctx, "a", "1", "b", "2", "a", "3").Result()), "OK")
		equal(t, "last value of a repeated MSET key wins", c.Get(ctx, "a").Val(), "3")
		got := must(c.MGet(ctx, "a", "b", "c").Result())
		if !slices.Equal(got, []any{"3", "2", nil}) {
			t.Fatalf("MGET = %v", got)
		}
		equal(t, "EXISTS counts repeats", must(c.Exists(ctx, "a", "a", "b", "c").Result()), int64(3))
		equal(t, "DEL counts distinct live keys", must(c.Del(ctx, "a", "a", "c").Result()), int64(1))
		equal(t, "UNLINK", must(c.Unlink(ctx, "b", "a").Result()), int64(1))
		equal(t, "EXISTS after DEL", must(c.Exists(ctx, "a", "b").Result()), int64(0))
		wantErr(t, c.Do(ctx, "MSET", "a", "1", "b").Err(), "ERR wrong number of arguments for 'mset' command")
		wantErr(t, c.Do(ctx, "MGET").Err(), "ERR wrong number of arguments for 'mget' command")

		// Many keys go through the bounded fan-out and come back in order.
		var kv []any
		var keys []string
		for i := range 200 {
			kv = append(kv, fmt.Sprintf("k%03d", i), fmt.Sprintf("v%03d", i))
			keys = append(keys, fmt.Sprintf("k%03d", i))
		}
		must(c.MSet(ctx, kv...).Result())
		vals := must(c.MGet(ctx, keys...).Result())
		for i, v := range vals {
			equal(t, "MGET "+keys[i], v, any(fmt.Sprintf("v%03d", i)))
		}
		equal(t, "DEL many", must(c.Del(ctx, keys...).Result()), int64(200))
	})
}

func TestTTLAndExpiry(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		for _, cmd := range []string{"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"} {
			equal(t, cmd+" missing", must(c.Do(ctx, cmd, "k").Int64()), int64(-2))
		}
		must(c.Set(ctx, "k", "v", 0).Result())
		for _, cmd := range []string{"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"} {
			equal(t, cmd+" no expiry", must(c.Do(ctx, cmd, "k").Int64()), int64(-1))
		}
		equal(t, "EXPIRE", must(c.Expire(ctx, "k", 100*time.Second).Result()), true)
		equal(t, "TTL", must(c.Do(ctx, "TTL", "k").Int64()), int64(100))
		equal(t, "PTTL", must(c.Do(ctx, "PTTL", "k").Int64()), int64(100_000))
		equal(t, "EXPIRETIME", must(c.Do(ctx, "EXPIRETIME", "k").Int64()), epoch.Unix()+100)
		equal(t, "PEXPIRETIME", must(c.Do(ctx, "PEXPIRETIME", "k").Int64()), epoch.UnixMilli()+100_000)
		// TTL rounds to the nearest second, as Redis does.
		ts.clock.Advance(600 * time.Millisecond)
		equal(t, "TTL rounded", must(c.Do(ctx, "TTL", "k").Int64()), int64(99))
		ts.clock.Advance(99_400 * time.Millisecond)
		equal(t, "TTL at expiry", must(c.Do(ctx, "TTL", "k").Int64()), int64(-2))
		_, err := c.Get(ctx, "k").Result()
		isNil(t, "GET expired", err)
		equal(t, "EXPIRE expired key", must(c.Expire(ctx, "k", time.Minute).Result()), false)

		must(c.Set(ctx, "k", "v", 0).Result())
		equal(t, "EXPIRE NX no ttl", must(c.ExpireNX(ctx, "k", 100*time.Second).Result()), true)
		equal(t, "EXPIRE NX with ttl", must(c.ExpireNX(ctx, "k", 200*time.Second).Result()), false)
		equal(t, "EXPIRE XX with ttl", must(c.ExpireXX(ctx, "k", 300*time.Second).Result()), true)
		equal(t, "EXPIRE GT smaller", must(c.ExpireGT(ctx, "k", 200*time.Second).Result()), false)
		equal(t, "EXPIRE GT larger", must(c.ExpireGT(ctx, "k", 400*time.Second).Result()), true)
		equal(t, "EXPIRE LT larger", must(c.ExpireLT(ctx, "k", 500*time.Second).Result()), false)
		equal(t, "EXPIRE LT smaller", must(c.ExpireLT(ctx, "k", 50*time.Second).Result()), true)
		equal(t, "TTL after options", must(c.Do(ctx, "TTL", "k").Int64()), int64(50))
		equal(t, "PERSIST", must(c.Persist(ctx, "k").Result()), true)
		equal(t, "PERSIST again", must(c.Persist(ctx, "k").Result()), false)
		equal(t, "PERSIST missing", must(c.Persist(ctx, "nokey").Result()), false)
		equal(t, "EXPIRE XX no ttl", must(c.ExpireXX(ctx, "k", time.Minute).Result()), false)
		equal(t, "EXPIRE GT no ttl (infinite)", must(c.ExpireGT(ctx, "k", time.Minute).Result()), false)
		equal(t, "EXPIRE LT no ttl (infinite)", must(c.ExpireLT(ctx, "k", time.Minute).Result()), true)
		equal(t, "value kept through TTL changes", c.Get(ctx, "k").Val(), "v")

		// Absolute forms.
		now := ts.clock.Now()
		equal(t, "EXPIREAT", must(c.Do(ctx, "EXPIREAT", "k", now.Unix()+70).Int()), 1)
		equal(t, "TTL EXPIREAT", must(c.Do(ctx, "TTL", "k").Int64()), int64(70))
		equal(t, "PEXPIREAT", must(c.Do(ctx, "PEXPIREAT", "k", now.UnixMilli()+80_000).Int()), 1)
		equal(t, "PTTL PEXPIREAT", must(c.Do(ctx, "PTTL", "k").Int64()), int64(80_000))
		equal(t, "PEXPIRE", must(c.Do(ctx, "PEXPIRE", "k", 1234).Int()), 1)
		equal(t, "PTTL PEXPIRE", must(c.Do(ctx, "PTTL", "k").Int64()), int64(1234))

		// Zero, negative or past times delete, and say 1.
		for _, args := range [][]any{
			{"EXPIRE", "k", "0"}, {"EXPIRE", "k", "-10"}, {"PEXPIRE", "k", "0"},
			{"EXPIREAT", "k", "1"}, {"PEXPIREAT", "k", "1"},
		} {
			must(c.Set(ctx, "k", "v", 0).Result())
			equal(t, fmt.Sprint(args...), must(c.Do(ctx, args...).Int()), 1)
			equal(t, "EXISTS after "+fmt.Sprint(args...), c.Exists(ctx, "k").Val(), int64(0))
			if rec, _ := ts.b.record("k"); !rec.Tombstone {
				t.Fatalf("%v stored %+v, want a tombstone", args, rec)
			}
		}

		must(c.Set(ctx, "k", "v", 0).Result())
		for _, tc := range []struct {
			args []any
			want string
		}{
			{[]any{"EXPIRE", "k", "10", "NX", "XX"}, errNXXXGTLT},
			{[]any{"EXPIRE", "k", "10", "GT", "LT"}, errGTLT},
			{[]any{"EXPIRE", "k", "10", "FOO"}, "ERR Unsupported option FOO"},
			{[]any{"EXPIRE", "k", "ten"}, errNotInt},
			{[]any{"EXPIRE", "k", "9223372036854775807"}, "ERR invalid expire time in 'expire' command"},
			{[]any{"PEXPIRE", "k", "9223372036854775807"}, "ERR invalid expire time in 'pexpire' command"},
			{[]any{"EXPIREAT", "k", "9223372036854775807"}, "ERR invalid expire time in 'expireat' command"},
			{[]any{"TTL"}, "ERR wrong number of arguments for 'ttl' command"},
		} {
			wantErr(t, c.Do(ctx, tc.args...).Err(), tc.want)
		}
		equal(t, "TTL untouched by errors", must(c.Do(ctx, "TTL", "k").Int64()), int64(-1))
	})
}

func TestScanFullWalk(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		want := map[string]bool{}
		for i := range 500 {
			k := fmt.Sprintf("user:%d", i)
			want[k] = true
			must(c.Set(ctx, k, "v", 0).Result())
		}
		must(c.Set(ctx, "other", "v", 0).Result())
		must(c.Set(ctx, "gone", "v", 0).Result())
		must(c.Del(ctx, "gone").Result())

		seen := map[string]bool{}
		var cursor uint64
		calls := 0
		for {
			keys, next, err := c.Scan(ctx, cursor, "user:*", 50).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if !strings.HasPrefix(k, "user:") {
					t.Fatalf("SCAN MATCH returned %q", k)
				}
				seen[k] = true
			}
			calls++
			if cursor = next; cursor == 0 {
				break
			}
		}
		equal(t, "keys seen", len(seen), len(want))
		if calls < 500/50 {
			t.Fatalf("walk took %d calls; COUNT was not honoured", calls)
		}
		all := must(c.Do(ctx, "SCAN", "0", "COUNT", "1000", "TYPE", "string").Slice())
		equal(t, "SCAN TYPE string keys", len(all[1].([]any)), 501)
		none := must(c.Do(ctx, "SCAN", "0", "TYPE", "hash").Slice())
		equal(t, "SCAN TYPE hash cursor", none[0].(string), "0")
		equal(t, "SCAN TYPE hash keys", len(none[1].([]any)), 0)
		wantErr(t, c.Do(ctx, "SCAN", "x").Err(), errInvalidCurs)
		wantErr(t, c.Do(ctx, "SCAN", "0", "COUNT", "0").Err(), errSyntax)
		wantErr(t, c.Do(ctx, "SCAN", "0", "COUNT").Err(), errSyntax)
		wantErr(t, c.Do(ctx, "SCAN", "0", "BOGUS", "1").Err(), errSyntax)
	})
}

func TestConnectionCommands(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		// One connection, so CLIENT state is observable.
		conn := c.Conn()
		defer conn.Close()
		id := must(conn.ClientID(ctx).Result())
		if id <= 0 {
			t.Fatalf("CLIENT ID = %d", id)
		}
		_, err := conn.ClientGetName(ctx).Result()
		isNil(t, "CLIENT GETNAME unset", err)
		must(conn.ClientSetName(ctx, "worker-1").Result())
		equal(t, "CLIENT GETNAME", must(conn.ClientGetName(ctx).Result()), "worker-1")
		wantErr(t, conn.Do(ctx, "CLIENT", "SETNAME", "a b").Err(), errClientName)
		wantErr(t, conn.Do(ctx, "CLIENT", "NOPE").Err(), "ERR unknown subcommand 'NOPE'. Try CLIENT HELP.")
		wantErr(t, conn.Do(ctx, "CLIENT", "ID", "x").Err(), "ERR wrong number of arguments for 'client|id' command")
		info := must(conn.Do(ctx, "CLIENT", "INFO").Text())
		for _, f := range []string{"id=" + strconv.FormatInt(id, 10) + " ", " name=worker-1 ", " lib-name=go-redis"} {
			if !strings.Contains(info, f) {
				t.Fatalf("CLIENT INFO %q lacks %q", info, f)
			}
		}
		equal(t, "CLIENT SETINFO", must(conn.Do(ctx, "CLIENT", "SETINFO", "LIB-VER", "1.2").Text()), "OK")

		// Consistency level per connection, passed to the backend.
		equal(t, "default level", must(conn.Do(ctx, "RINGKV.CONSISTENCY").Text()), "QUORUM")
		must(conn.Do(ctx, "RINGKV.CONSISTENCY", "all").Result())
		equal(t, "level", must(conn.Do(ctx, "RINGKV.CONSISTENCY").Text()), "ALL")
		wantErr(t, conn.Do(ctx, "RINGKV.CONSISTENCY", "most").Err(), "ERR unknown consistency level 'most', want ONE, QUORUM or ALL")
		ts.b.mu.Lock()
		ts.b.mu.levels = nil
		ts.b.mu.Unlock()
		conn.Get(ctx, "k")
		ts.b.mu.Lock()
		levels := slices.Clone(ts.b.mu.levels)
		ts.b.mu.Unlock()
		if !slices.Equal(levels, []replication.Level{replication.All}) {
			t.Fatalf("backend saw levels %v, want [ALL]", levels)
		}

		// Introspection that redis-cli and redis-benchmark rely on.
		cfg := must(conn.ConfigGet(ctx, "save").Result())
		equal(t, "CONFIG GET save", len(cfg), 1)
		cfg = must(conn.ConfigGet(ctx, "append*").Result())
		equal(t, "CONFIG GET appendonly", cfg["appendonly"], "no")
		n := must(conn.Do(ctx, "COMMAND", "COUNT").Int())
		equal(t, "COMMAND COUNT", n, len(ts.srv.commands))
		cmds := must(conn.Command(ctx).Result())
		equal(t, "COMMAND get arity", cmds["get"].Arity, int8(2))
		equal(t, "COMMAND mset step", cmds["mset"].StepCount, int8(2))
		must(conn.Do(ctx, "COMMAND", "DOCS").Result())
		infoText := must(conn.Info(ctx).Result())
		for _, f := range []string{"# Server", "redis_version:", "connected_clients:1", "# Keyspace"} {
			if !strings.Contains(infoText, f) {
				t.Fatalf("INFO lacks %q:\n%s", f, infoText)
			}
		}
		wantErr(t, conn.Do(ctx, "NOSUCH", "a", "b").Err(), "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ")
		wantErr(t, conn.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
	})
}

func TestInfoRingkvSection(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Info = func() map[string]string { return map[string]string{"node_id": "n1", "ring_members": "3"} }
	})
	c := ts.client(t, 3)
	text := must(c.Info(t.Context(), "ringkv").Result())
	want := "# Ringkv\r\nnode_id:n1\r\nring_members:3\r\n"
	equal(t, "INFO ringkv", text, want)
}

func TestHelloSwitchesProtocol(t *testing.T) {
	ts := startServer(t, nil)
	nc, rd := dial(t, ts.addr)
	send(t, nc, "*1\r\n$3\r\nGET\r\n") // arity error in RESP2
	expect(t, rd, "-ERR wrong number of arguments for 'get' command\r\n")
	send(t, nc, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	expect(t, rd, "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n"+
		"$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"+
		"$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n")
	expect(t, rd, "_\r\n") // RESP3 null
	send(t, nc, "*2\r\n$5\r\nHELLO\r\n$1\r\n4\r\n")
	expect(t, rd, "-NOPROTO unsupported protocol version\r\n")
}

func TestPipelineOf1000(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		pipe := c.Pipeline()
		for i := range 500 {
			pipe.Set(ctx, fmt.Sprintf("p%d", i), i, 0)
		}
		gets := make([]*redis.StringCmd, 500)
		for i := range 500 {
			gets[i] = pipe.Get(ctx, fmt.Sprintf("p%d", i))
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "replies", len(cmds), 1000)
		for i, g := range gets {
			equal(t, "pipelined GET", g.Val(), strconv.Itoa(i))
		}
	})
}

func TestAuth(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Password = "s3cret" })
	ctx := t.Context()

	anon := ts.client(t, 2)
	wantErr(t, anon.Get(ctx, "k").Err(), errNoAuth)
	// Unknown commands and arity errors come first, as in Redis.
	wantErr(t, anon.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")

	// go-redis authenticates through HELLO 3 AUTH default <pass>.
	for _, proto := range []int{2, 3} {
		c := ts.client(t, proto, func(o *redis.Options) { o.Password = "s3cret" })
		must(c.Set(ctx, "k", "v", 0).Result())
		equal(t, "GET authed", must(c.Get(ctx, "k").Result()), "v")
	}
	bad := ts.client(t, 3, func(o *redis.Options) { o.Password = "wrong" })
	wantErr(t, bad.Ping(ctx).Err(), errWrongPass)

	nc, rd := dial(t, ts.addr)
	send(t, nc, "HELLO 3\r\n")
	expect(t, rd, "-"+errHelloNoAuth+"\r\n")
	send(t, nc, "AUTH nope\r\nGET k\r\nAUTH s3cret\r\nGET k\r\nAUTH bob s3cret\r\n")
	expect(t, rd, "-"+errWrongPass+"\r\n-"+errNoAuth+"\r\n+OK\r\n$1\r\nv\r\n-"+errWrongPass+"\r\n")

	// Before AUTH a client may not send large commands (Redis' limits).
	nc2, rd2 := dial(t, ts.addr)
	send(t, nc2, "*11\r\n")
	expect(t, rd2, "-ERR Protocol error: invalid multibulk length\r\n")
	expectClosed(t, rd2)

	noPass := startServer(t, nil)
	c := noPass.client(t, 2)
	wantErr(t, c.Do(ctx, "AUTH", "x").Err(), errNoPassword)
	equal(t, "AUTH default any (nopass user)", must(c.Do(ctx, "AUTH", "default", "x").Text()), "OK")
}

func TestSizeLimits(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MaxKeyBytes = 16
		c.MaxValueBytes = 64
	})
	ctx := t.Context()
	c := ts.client(t, 2)
	must(c.Set(ctx, "k", "keep", 0).Result())
	long := strings.Repeat("x", 17)
	wantErr(t, c.Set(ctx, long, "v", 0).Err(), "ERR key too large (max 16 bytes)")
	wantErr(t, c.Get(ctx, long).Err(), "ERR key too large (max 16 bytes)")
	wantErr(t, c.Set(ctx, "k", strings.Repeat("v", 65), 0).Err(), "ERR value too large (max 64 bytes)")
	wantErr(t, c.MSet(ctx, "a", "1", "k", strings.Repeat("v", 65)).Err(), "ERR value too large (max 64 bytes)")
	wantErr(t, c.Set(ctx, "", "v", 0).Err(), errEmptyKey)
	wantErr(t, c.Del(ctx, "a", long).Err(), "ERR key too large (max 16 bytes)")
	equal(t, "value intact", c.Get(ctx, "k").Val(), "keep")
	equal(t, "nothing stored", c.Exists(ctx, "a", long, "").Val(), int64(0))
}

func TestBackendErrors(t *testing.T) {
	ts := startServer(t, nil)
	ctx := t.Context()
	c := ts.client(t, 2)
	must(c.Set(ctx, "k", "v", 0).Result())
	for _, tc := range []struct {
		err  error
		want string
	}{
		{replication.ErrUnavailable, "UNAVAILABLE " + replication.ErrUnavailable.Error()},
		{fmt.Errorf("write k: %w", replication.ErrTimeout), "TIMEOUT write k: " + replication.ErrTimeout.Error()},
		{clock.ErrClockSkew, "ERR " + clock.ErrClockSkew.Error()},
		{errors.New("disk on fire\r\nsecond line"), "ERR disk on fire  second line"},
	} {
		ts.b.setErr(tc.err)
		// A read that timed out wrote nothing and must not say otherwise.
		wantRead := strings.Replace(tc.want, replication.ErrTimeout.Error(), "replication: too few replicas answered the read in time", 1)
		wantErr(t, c.Get(ctx, "k").Err(), wantRead)
		wantErr(t, c.Set(ctx, "k", "w", 0).Err(), tc.want)
		wantErr(t, c.MGet(ctx, "k", "j").Err(), wantRead)
		wantErr(t, c.Scan(ctx, 0, "", 10).Err(), wantRead)
	}
	ts.b.setErr(nil)
	equal(t, "value intact", c.Get(ctx, "k").Val(), "v")
}

func TestMaxClients(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxClients = 1 })
	nc, rd := dial(t, ts.addr)
	send(t, nc, "PING\r\n")
	expect(t, rd, "+PONG\r\n")
	_, rd2 := dial(t, ts.addr)
	expect(t, rd2, "-ERR max number of clients reached\r\n")
	expectClosed(t, rd2)
	send(t, nc, "PING\r\n")
	expect(t, rd, "+PONG\r\n")
}

func TestQuit(t *testing.T) {
	ts := startServer(t, nil)
	nc, rd := dial(t, ts.addr)
	send(t, nc, "SET k v\r\nQUIT\r\nGET k\r\n")
	expect(t, rd, "+OK\r\n+OK\r\n")
	expectClosed(t, rd)
}

// TestShutdownDrains checks that commands a client already sent are answered
// before its connection is closed, and that idle connections are closed too.
func TestShutdownDrains(t *testing.T) {
	clk := clock.NewManual(epoch)
	b := newMemBackend(clk)
	srv := New(Config{}, b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	idle, idleRd := dial(t, ln.Addr().String())
	send(t, idle, "PING\r\n")
	expect(t, idleRd, "+PONG\r\n")

	busy, busyRd := dial(t, ln.Addr().String())
	var batch strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&batch, "SET k%d v\r\n", i)
	}
	send(t, busy, batch.String())
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := must(b.DBSize(t.Context())); n == 0 {
			return errors.New("no command has run yet")
		}
		return nil
	})
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Every command the server ran was answered, and then it hung up cleanly
	// (EOF, not a reset that would have destroyed replies).
	replies := 0
	for {
		line, err := busyRd.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			break
		}
		if err != nil || line != "+OK\r\n" {
			t.Fatalf("after %d replies: %q, %v", replies, line, err)
		}
		replies++
	}
	equal(t, "replies = commands run", int64(replies), must(b.DBSize(t.Context())))
	expectClosed(t, idleRd)
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepts after Shutdown")
	}
}

func TestMetricsRegistered(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t, 2)
	c.Get(t.Context(), "k")
	c.Do(t.Context(), "NOSUCH")
	mfs := must(ts.reg.Gather())
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"ringkv_resp_commands_total", "ringkv_resp_errors_total", "ringkv_resp_command_duration_seconds", "ringkv_resp_connections"} {
		if !names[n] {
			t.Errorf("metric %s not registered; have %v", n, names)
		}
	}
}

// A connection adds up its commands' metrics and publishes them before it
// writes their replies: a client that has read a reply finds every command
// before it counted, in /metrics and in INFO, batched pipelines included.
func TestMetricsCountedBeforeReply(t *testing.T) {
	eachProtoWith(t, func(c *Config) { c.ConcurrentPipeline = true }, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		count := func(name string) (calls, timed uint64) {
			for _, mf := range must(ts.reg.Gather()) {
				for _, m := range mf.GetMetric() {
					if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != name {
						continue
					}
					switch mf.GetName() {
					case "ringkv_resp_commands_total":
						calls = uint64(m.GetCounter().GetValue())
					case "ringkv_resp_command_duration_seconds":
						timed = m.GetHistogram().GetSampleCount()
					}
				}
			}
			return calls, timed
		}
		getsBefore, _ := count("get")
		setsBefore, setsTimedBefore := count("set")
		// The pipeline ends in a run of GETs: the last series a tally holds
		// is published only by the flush before the replies.
		pipe := c.Pipeline()
		for i := range 10 {
			pipe.Set(ctx, fmt.Sprintf("m%d", i), "v", 0)
		}
		for i := range 10 {
			pipe.Get(ctx, fmt.Sprintf("m%d", i))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		gets, _ := count("get")
		sets, setsTimed := count("set")
		if gets-getsBefore != 10 || sets-setsBefore != 10 || setsTimed-setsTimedBefore != 10 {
			t.Fatalf("after the replies: %d GETs and %d SETs counted, %d SETs timed; want 10 each",
				gets-getsBefore, sets-setsBefore, setsTimed-setsTimedBefore)
		}
		pipe = c.Pipeline()
		for i := range 20 {
			pipe.Get(ctx, fmt.Sprintf("m%d", i))
		}
		info := pipe.Info(ctx, "stats")
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		// INFO ran after the 40 commands of the two pipelines and counts
		// them all.
		_, v, _ := strings.Cut(info.Val(), "total_commands_processed:")
		v, _, _ = strings.Cut(v, "\r\n")
		if n, err := strconv.Atoi(v); err != nil || n < 40 {
			t.Fatalf("INFO total_commands_processed = %q, want at least the 40 commands before it", v)
		}
	})
}

// Plain GETs and SETs of a pipeline run concurrently, but each key still sees
// its commands in order, and every reply goes back in command order, also
// when other commands and errors sit between them.
func TestPipelineBatchesKeepPerKeyOrder(t *testing.T) {
	eachProtoWith(t, func(c *Config) { c.ConcurrentPipeline = true }, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		pipe := c.Pipeline()
		var gets []*redis.StringCmd
		var want []string
		for round := range 5 {
			for k := range 40 {
				key := fmt.Sprintf("o%d", k%7) // keys repeat within a batch
				v := fmt.Sprintf("r%d-k%d", round, k)
				pipe.Set(ctx, key, v, 0)
				gets = append(gets, pipe.Get(ctx, key))
				want = append(want, v)
			}
			pipe.Incr(ctx, "o0")         // an unknown command between batches
			pipe.Set(ctx, "", "x", 0)    // refused by SET's own checks
			pipe.Del(ctx, "o1", "never") // a non-batched command
			gets = append(gets, pipe.Get(ctx, "o1"))
			want = append(want, "")
		}
		cmds, _ := pipe.Exec(ctx)
		equal(t, "replies", len(cmds), 5*(40*2+4))
		for i, g := range gets {
			got, err := g.Result()
			if want[i] == "" {
				if !errors.Is(err, redis.Nil) {
					t.Fatalf("GET %d after DEL: %q %v", i, got, err)
				}
				continue
			}
			if err != nil || got != want[i] {
				t.Fatalf("GET %d = %q %v, want %q", i, got, err, want[i])
			}
		}
	})
}

// The SETs of a pipeline reach a backend that writes in batches as one call,
// and a write it refuses fails alone, its error in its own reply's place; its
// GETs reach one that reads in batches the same way, replies in order.
func TestPipelineSetsGoThroughPutBatch(t *testing.T) {
	eachProtoWith(t, func(c *Config) { c.ConcurrentPipeline = true }, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		pipe := c.Pipeline()
		var sets []*redis.StatusCmd
		for i := range 16 {
			key := fmt.Sprint("b", i)
			if i == 5 {
				key = "refuse:5"
			}
			sets = append(sets, pipe.Set(ctx, key, fmt.Sprint("v", i), 0))
		}
		get := pipe.Get(ctx, "b3")
		if _, err := pipe.Exec(ctx); err == nil {
			t.Fatal("pipeline with a refused SET reported no error")
		}
		for i, s := range sets {
			err := s.Err()
			if i == 5 {
				if err == nil || !strings.Contains(err.Error(), "refused by the test backend") {
					t.Fatalf("SET %d: err %v, want the backend's refusal", i, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("SET %d: %v", i, err)
			}
		}
		if v, err := get.Result(); err != nil || v != "v3" {
			t.Fatalf("GET b3 = %q %v", v, err)
		}
		ts.b.mu.Lock()
		batches := slices.Clone(ts.b.mu.batches)
		getBatches := slices.Clone(ts.b.mu.getBatches)
		ts.b.mu.Unlock()
		pipe = c.Pipeline()
		var gets []*redis.StringCmd
		for i := range 8 {
			gets = append(gets, pipe.Get(ctx, fmt.Sprint("b", i)))
		}
		if _, err := pipe.Exec(ctx); !errors.Is(err, redis.Nil) {
			t.Fatalf("pipelined GETs: %v, want redis.Nil for the refused key", err)
		}
		for i, g := range gets {
			v, err := g.Result()
			if i == 5 {
				isNil(t, "GET b5 (its SET was refused)", err)
				continue
			}
			if err != nil || v != fmt.Sprint("v", i) {
				t.Fatalf("GET b%d = %q %v", i, v, err)
			}
		}
		// The connection's next batch of GETs reuses the answers' memory:
		// none of the values above may show through for keys that are missing.
		pipe = c.Pipeline()
		gets = gets[:0]
		for i := range 8 {
			gets = append(gets, pipe.Get(ctx, fmt.Sprint("nope", i)))
		}
		_, _ = pipe.Exec(ctx)
		for i, g := range gets {
			isNil(t, fmt.Sprint("GET nope", i, " after a batch that found values"), g.Err())
		}
		ts.b.mu.Lock()
		getBatches = ts.b.mu.getBatches[len(getBatches):]
		ts.b.mu.Unlock()
		if len(getBatches) == 0 || slices.Max(getBatches) < 2 {
			t.Fatalf("GetBatch calls %v: the pipeline's GETs were not batched", getBatches)
		}
		if len(batches) == 0 || slices.Max(batches) < 2 {
			t.Fatalf("PutBatch calls %v: the pipeline's SETs were not batched", batches)
		}
		total := 0
		for _, n := range batches {
			total += n
		}
		equal(t, "SETs through PutBatch", total, 16)
	})
}

// MSET writes its distinct keys in one PutBatch, each with its last value,
// and fails as a whole when one of them is refused.
func TestMSetGoesThroughPutBatch(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		ts.b.mu.Lock()
		ts.b.mu.batches = nil
		ts.b.mu.Unlock()
		if err := c.MSet(ctx, "m1", "a", "m2", "b", "m1", "c", "m3", "d").Err(); err != nil {
			t.Fatal(err)
		}
		ts.b.mu.Lock()
		batches := slices.Clone(ts.b.mu.batches)
		ts.b.mu.Unlock()
		if !slices.Equal(batches, []int{3}) {
			t.Fatalf("PutBatch calls %v, want one of the 3 distinct keys", batches)
		}
		got, err := c.MGet(ctx, "m1", "m2", "m3").Result()
		if err != nil || !slices.Equal(got, []any{"c", "b", "d"}) {
			t.Fatalf("MGET = %v %v, want [c b d]", got, err)
		}
		if err := c.MSet(ctx, "m4", "x", "refuse:m", "y").Err(); err == nil || !strings.Contains(err.Error(), "refused by the test backend") {
			t.Fatalf("MSET with a refused key: %v, want the backend's refusal", err)
		}
	})
}
