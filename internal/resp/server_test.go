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
	t.Helper()
	eachProtoWith(t, nil, fn)
}

// eachProtoWith is eachProto on a server whose config mod adjusts.
func eachProtoWith(t *testing.T, mod func(*Config), fn func(t *testing.T, ts *testServer, c *redis.Client)) {
	t.Helper()
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
	go func() { _ = srv.Serve(ln) }() // returns at Shutdown
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
