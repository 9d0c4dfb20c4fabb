package resp

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/record"
)

func TestKeysTimeObject(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		for i := range 30 {
			must(c.Set(ctx, "user:"+strconv.Itoa(i), i, 0).Result())
		}
		must(c.Set(ctx, "other", "x", 0).Result())
		keys := must(c.Keys(ctx, "user:1*").Result())
		slices.Sort(keys)
		want := []string{"user:1", "user:10", "user:11", "user:12", "user:13", "user:14", "user:15", "user:16", "user:17", "user:18", "user:19"}
		if !slices.Equal(keys, want) {
			t.Fatalf("KEYS user:1* = %v, want %v", keys, want)
		}
		equal(t, "KEYS * count", len(must(c.Keys(ctx, "*").Result())), 31)
		equal(t, "KEYS none", len(must(c.Keys(ctx, "nope*").Result())), 0)

		tm := must(c.Time(ctx).Result())
		if !tm.Equal(ts.clock.Now()) {
			t.Fatalf("TIME = %v, want the backend clock %v", tm, ts.clock.Now())
		}

		must(c.Set(ctx, "big", strings.Repeat("v", 45), 0).Result())
		must(c.Set(ctx, "small", "hello", 0).Result())
		equal(t, "OBJECT ENCODING int", must(c.ObjectEncoding(ctx, "user:7").Result()), "int")
		equal(t, "OBJECT ENCODING embstr", must(c.ObjectEncoding(ctx, "small").Result()), "embstr")
		equal(t, "OBJECT ENCODING raw", must(c.ObjectEncoding(ctx, "big").Result()), "raw")
		_, err := c.ObjectEncoding(ctx, "missing").Result()
		isNil(t, "OBJECT ENCODING missing", err)
		// A counter record is "int" whatever its value, as in Redis after INCR.
		ts.b.mu.Lock()
		ts.b.mu.seq++
		ts.b.mu.data["hits"] = record.Record{Value: []byte("12"), Counter: []byte{1}, Version: record.Version{TS: ts.b.mu.seq, Node: "n1"}}
		ts.b.mu.Unlock()
		equal(t, "OBJECT ENCODING counter", must(c.ObjectEncoding(ctx, "hits").Result()), "int")
		equal(t, "TYPE counter", must(c.Type(ctx, "hits").Result()), "string")
		equal(t, "OBJECT REFCOUNT", must(c.ObjectRefCount(ctx, "small").Result()), int64(1))
		equal(t, "TYPE", must(c.Type(ctx, "user:7").Result()), "string")
		wantErr(t, c.ObjectIdleTime(ctx, "small").Err(),
			"ERR OBJECT IDLETIME is not served: ringkv keeps no per-key access time or frequency; the hot keys are at /v1/hotkeys")
	})
}

func TestClientList(t *testing.T) {
	ts := startServer(t, nil)
	ctx := t.Context()
	a := ts.client(t, 2).Conn()
	defer a.Close()
	b := ts.client(t, 3).Conn()
	defer b.Close()
	must(a.ClientSetName(ctx, "alpha").Result())
	must(b.ClientSetName(ctx, "beta").Result())
	idA, idB := must(a.ClientID(ctx).Result()), must(b.ClientID(ctx).Result())
	list := must(a.ClientList(ctx).Result())
	lines := strings.Split(strings.TrimSpace(list), "\n")
	equal(t, "CLIENT LIST lines", len(lines), 2)
	for i, w := range []string{"id=" + strconv.FormatInt(idA, 10) + " ", "id=" + strconv.FormatInt(idB, 10) + " "} {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("CLIENT LIST line %d = %q, want it to start %q", i, lines[i], w)
		}
	}
	for _, f := range []string{" name=alpha ", " cmd=client|list ", " resp=2 "} {
		if !strings.Contains(lines[0], f) {
			t.Fatalf("own line %q lacks %q", lines[0], f)
		}
	}
	for _, f := range []string{" name=beta ", " resp=3 ", " lib-name=go-redis"} {
		if !strings.Contains(lines[1], f) {
			t.Fatalf("other line %q lacks %q", lines[1], f)
		}
	}
	only := must(a.Do(ctx, "CLIENT", "LIST", "ID", strconv.FormatInt(idB, 10)).Text())
	if !strings.HasPrefix(only, "id="+strconv.FormatInt(idB, 10)+" ") || strings.Count(only, "\n") != 1 {
		t.Fatalf("CLIENT LIST ID %d = %q", idB, only)
	}
	wantErr(t, a.Do(ctx, "CLIENT", "LIST", "ID", "x").Err(), "ERR Invalid client ID")
	wantErr(t, a.Do(ctx, "CLIENT", "LIST", "BOGUS").Err(), errSyntax)
}

func TestRefusals(t *testing.T) {
	eachProto(t, func(t *testing.T, ts *testServer, c *redis.Client) {
		ctx := t.Context()
		wantErr(t, c.LPush(ctx, "l", "x").Err(), "ERR LPUSH is not supported: "+whyType)
		wantErr(t, c.HSet(ctx, "h", "f", "v").Err(), "ERR HSET is not supported: "+whyType)
		wantErr(t, c.SAdd(ctx, "s", "m").Err(), "ERR SADD is not supported: "+whyType)
		wantErr(t, c.ZAdd(ctx, "z", redis.Z{Score: 1, Member: "m"}).Err(), "ERR ZADD is not supported: "+whyType)
		wantErr(t, c.Eval(ctx, "return 1", nil).Err(), "ERR EVAL is not supported: "+whyScript)
		wantErr(t, c.Publish(ctx, "ch", "m").Err(), "ERR PUBLISH is not supported: "+whyPubSub)
		wantErr(t, c.Do(ctx, "EXEC").Err(), "ERR EXEC is not supported: "+whyTx)

		// A transaction pipeline: MULTI is refused and nothing queued behind
		// it runs, so the client does not see half a transaction applied.
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "tx", "1", 0)
			p.Get(ctx, "tx")
			return nil
		})
		if err == nil {
			t.Fatal("TxPipelined succeeded")
		}
		isNil(t, "GET tx after the refused transaction", c.Get(ctx, "tx").Err())

		conn := c.Conn()
		defer conn.Close()
		wantErr(t, conn.Do(ctx, "MULTI").Err(), "ERR MULTI is not supported: "+whyTx)
		wantErr(t, conn.Set(ctx, "k", "v", 0).Err(), notRun)
		wantErr(t, conn.Get(ctx, "k").Err(), notRun)
		wantErr(t, conn.Do(ctx, "EXEC").Err(), "EXECABORT Transaction discarded: MULTI is not supported: "+whyTx)
		isNil(t, "GET k", conn.Get(ctx, "k").Err())
		must(conn.Set(ctx, "k", "v", 0).Result())
		equal(t, "GET k after EXEC", must(conn.Get(ctx, "k").Result()), "v")

		// redis-py's pipeline(transaction=False) and go-redis' Pipeline()
		// are what works.
		cmds := must(c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "p", "1", 0)
			p.Get(ctx, "p")
			return nil
		}))
		equal(t, "pipelined GET", cmds[1].(*redis.StringCmd).Val(), "1")
	})
}
