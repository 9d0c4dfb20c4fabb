package resp

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

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
		must(c.SetEx(ctx, "a", "1", 10*time.Second).Result()) //nolint:staticcheck // SETEX is the command under test
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
