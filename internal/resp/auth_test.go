package resp

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/auth/authtest"
)

// startUsersServer serves with --password "rootpw" and a users file: reader
// (read), writer (read, write) and ops (admin).
func startUsersServer(t *testing.T, mod func(*auth.Config)) *testServer {
	t.Helper()
	acfg := auth.Config{Password: "rootpw", UsersFile: authtest.WriteUsersFile(t, nil, authtest.ReaderWriterOps()...)}
	if mod != nil {
		mod(&acfg)
	}
	a, err := auth.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, func(c *Config) { c.Auth = a })
}

func userClient(t *testing.T, ts *testServer, proto int, user, pass string) *redis.Client {
	t.Helper()
	return ts.client(t, proto, func(o *redis.Options) { o.Username, o.Password = user, pass })
}

func TestAuthNamedUsersWithGoRedis(t *testing.T) {
	ts := startUsersServer(t, nil)
	ctx := t.Context()
	// Protocol 2: go-redis sends AUTH user pass; 3: HELLO 3 AUTH user pass.
	for _, proto := range []int{2, 3} {
		w := userClient(t, ts, proto, "writer", "writepw")
		must(w.Set(ctx, "k", "v", 0).Result())
		equal(t, "writer GET", must(w.Get(ctx, "k").Result()), "v")
		equal(t, "writer WHOAMI", must(w.Do(ctx, "ACL", "WHOAMI").Text()), "writer")

		r := userClient(t, ts, proto, "reader", "readpw")
		equal(t, "reader GET", must(r.Get(ctx, "k").Result()), "v")
		equal(t, "reader MGET", must(r.MGet(ctx, "k", "nope").Result())[0], any("v"))
		wantErr(t, r.Set(ctx, "k", "x", 0).Err(), "NOPERM this user has no permissions to run the 'set' command")
		wantErr(t, r.Del(ctx, "k").Err(), "NOPERM this user has no permissions to run the 'del' command")
		wantErr(t, r.Do(ctx, "CONFIG", "GET", "maxclients").Err(), "NOPERM this user has no permissions to run the 'config' command")

		o := userClient(t, ts, proto, "ops", "opspw")
		wantErr(t, o.Get(ctx, "k").Err(), "NOPERM this user has no permissions to run the 'get' command")
		if _, err := o.Do(ctx, "CONFIG", "GET", "maxclients").Result(); err != nil {
			t.Fatalf("admin CONFIG GET: %v", err)
		}

		d := userClient(t, ts, proto, "", "rootpw") // the default user of --password
		equal(t, "default WHOAMI", must(d.Do(ctx, "ACL", "WHOAMI").Text()), "default")
		must(d.Set(ctx, "k", "v", 0).Result())

		bad := userClient(t, ts, proto, "writer", "readpw")
		wantErr(t, bad.Ping(ctx).Err(), errWrongPass)
		ghost := userClient(t, ts, proto, "ghost", "readpw")
		wantErr(t, ghost.Ping(ctx).Err(), errWrongPass)
	}
	equal(t, "value unchanged by refused writes", must(userClient(t, ts, 2, "reader", "readpw").Get(ctx, "k").Result()), "v")
}

// TestAuthPipelineHonoursRights sends a reader's pipeline of SETs and GETs,
// which the server runs as batches: every SET must still be refused.
func TestAuthPipelineHonoursRights(t *testing.T) {
	ts := startUsersServer(t, nil)
	ctx := t.Context()
	must(userClient(t, ts, 2, "writer", "writepw").Set(ctx, "p", "orig", 0).Result())
	r := userClient(t, ts, 2, "reader", "readpw")
	pipe := r.Pipeline()
	sets := make([]*redis.StatusCmd, 50)
	gets := make([]*redis.StringCmd, 50)
	for i := range 50 {
		sets[i] = pipe.Set(ctx, "p", "evil", 0)
		gets[i] = pipe.Get(ctx, "p")
	}
	_, _ = pipe.Exec(ctx)
	for i := range 50 {
		wantErr(t, sets[i].Err(), "NOPERM this user has no permissions to run the 'set' command")
		equal(t, "pipelined GET", gets[i].Val(), "orig")
	}
}

func TestAuthRawProtocol(t *testing.T) {
	ts := startUsersServer(t, nil)
	nc, rd := dial(t, ts.addr)
	// Before AUTH: NOAUTH; AUTH user pass and AUTH pass; HELLO 3 AUTH.
	send(t, nc, "GET k\r\nAUTH reader nope\r\nAUTH reader readpw\r\nSET k v\r\nAUTH rootpw\r\nSET k v\r\nACL WHOAMI\r\n")
	expect(t, rd, "-"+errNoAuth+"\r\n-"+errWrongPass+"\r\n+OK\r\n"+
		"-NOPERM this user has no permissions to run the 'set' command\r\n+OK\r\n+OK\r\n$7\r\ndefault\r\n")

	nc2, rd2 := dial(t, ts.addr)
	send(t, nc2, "HELLO 3 AUTH ops wrong\r\nHELLO 3 AUTH ops opspw\r\n")
	expect(t, rd2, "-"+errWrongPass+"\r\n")
	if line, err := rd2.ReadString('\n'); err != nil || !strings.HasPrefix(line, "%7") {
		t.Fatalf("HELLO 3 AUTH: got %q, want a map", line)
	}
}

func TestAuthFailuresRateLimited(t *testing.T) {
	ts := startUsersServer(t, func(c *auth.Config) { c.FailBurst = 5; c.FailRate = 0.001 })
	ctx := t.Context()
	must(userClient(t, ts, 2, "writer", "writepw").Ping(ctx).Result())
	nc, rd := dial(t, ts.addr)
	var want strings.Builder
	for range 5 {
		send(t, nc, "AUTH reader wrong\r\n")
		want.WriteString("-" + errWrongPass + "\r\n")
	}
	// The right password too is refused once the source's bucket is empty.
	send(t, nc, "AUTH reader readpw\r\nAUTH rootpw\r\n")
	want.WriteString("-ERR " + auth.ErrTooMany.Error() + "\r\n-ERR " + auth.ErrTooMany.Error() + "\r\n")
	expect(t, rd, want.String())
	// Credentials verified before are still honoured from the cache: a
	// reconnect storm of a legitimate client is not what the limit is for.
	equal(t, "cached login", must(userClient(t, ts, 2, "writer", "writepw").Ping(ctx).Result()), "PONG")
}
