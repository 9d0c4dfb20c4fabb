package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/testutil"
)

// repeatedKey returns a top-level key that a JSON log line has twice.
func repeatedKey(t *testing.T, line string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	seen := map[string]bool{}
	depth := 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
			expectKey = depth == 1 && v == '{'
			continue
		case string:
			if depth == 1 && expectKey {
				if seen[v] {
					return v
				}
				seen[v] = true
				expectKey = false
				continue
			}
		}
		expectKey = depth == 1
	}
}

// TestSignalsAgree starts two real nodes and checks what an operator reads:
// no log line names a key twice (component, node), "node started" is not
// logged by the node itself (the command logs it once, with the version),
// and INFO gives one version and one uptime, counts a key with a TTL in
// expires, and has a Replication section.
func TestSignalsAgree(t *testing.T) {
	var logs testutil.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := func(cfg config.Config) *Server {
		s, err := New(cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		return s
	}
	n1 := start(testConfig(t, "n1", t.TempDir()))
	n2 := start(testConfig(t, "n2", t.TempDir(), n1.Addrs().Gossip))
	testutil.Eventually(t, 60*time.Second, func() error { return upAndNormal(n1, 2) })
	testutil.Eventually(t, 60*time.Second, func() error { return upAndNormal(n2, 2) })

	c := redis.NewClient(&redis.Options{Addr: n1.Addrs().Client})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "p", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"redis_version:", "ringkv_version:", "uptime_in_seconds:", "tcp_port:"} {
		if n := strings.Count(info, "\n"+field); n != 1 {
			t.Errorf("INFO has %s %d times:\n%s", field, n, info)
		}
	}
	if !strings.Contains(info, "db0:keys=2,expires=1,") {
		t.Errorf("INFO keyspace after SET k EX 3600 and SET p: want keys=2,expires=1:\n%s", info)
	}
	if !strings.Contains(info, "# Replication\r\nrole:master\r\n") {
		t.Errorf("INFO has no Replication section with a role:\n%s", info)
	}

	n1.Shutdown(context.Background())
	n2.Shutdown(context.Background())
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 10 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for _, l := range lines {
		if k := repeatedKey(t, l); k != "" {
			t.Errorf("key %q twice in %s", k, l)
		}
		if strings.Contains(l, `"msg":"ringkv node started"`) {
			t.Errorf("the node logs its start itself (the command does, once): %s", l)
		}
	}
}
